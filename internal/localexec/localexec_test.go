package localexec

import (
	"context"
	"errors"
	"github.com/relctl/relctl/internal/demo/proc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A command whose context ends is killed with every process it forked, and
// Run returns within the wait delay.
func TestGroupKillsForkedChildOnDeadline(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `sleep 60 & echo $! > "$1"; wait`, "sh", pidFile)
	Group(cmd, time.Second)
	t0 := time.Now()
	err := Run(cmd)
	if el := time.Since(t0); el > 5*time.Second {
		t.Fatalf("Run took %s after a 300ms deadline", el)
	}
	if err == nil || ctx.Err() == nil {
		t.Fatalf("Run = %v, ctx %v: want a killed command", err, ctx.Err())
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for proc.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("forked child %d still runs after its group was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A command that exits while a child it left behind holds its output: Wait
// gives up after the delay and KillGroup ends the child.
func TestKillGroupAfterWaitDelay(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	cmd := exec.CommandContext(context.Background(), "sh", "-c", `sleep 60 & echo $! > "$1"`, "sh", pidFile)
	var out strings.Builder
	cmd.Stdout = &out
	Group(cmd, 200*time.Millisecond)
	err := Run(cmd)
	if !errors.Is(err, exec.ErrWaitDelay) {
		t.Fatalf("Run = %v, want ErrWaitDelay", err)
	}
	if err := KillGroup(cmd); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for proc.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still runs after KillGroup", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := KillGroup(cmd); err != nil {
		t.Fatalf("KillGroup of a gone group = %v, want nil", err)
	}
}
