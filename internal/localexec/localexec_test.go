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
// Run returns within the wait delay. The context ends once the child's pid
// is written: a fixed 300ms deadline could end before the shell had even
// forked on a busy machine (5 of 150 runs under CPU burners found no pid
// file), and then there was no child to prove anything with.
func TestGroupKillsForkedChildOnDeadline(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `sleep 60 & echo $! > "$1"; wait`, "sh", pidFile)
	Group(cmd, time.Second)
	var ended time.Time
	pidc := make(chan int, 1)
	go func() {
		defer cancel()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			b, _ := os.ReadFile(pidFile)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && strings.HasSuffix(string(b), "\n") {
				ended = time.Now()
				pidc <- pid
				return
			}
		}
		pidc <- 0
	}()
	err := Run(cmd)
	pid := <-pidc
	if pid == 0 {
		t.Fatalf("the command never wrote its child's pid (Run = %v)", err)
	}
	if el := time.Since(ended); el > 5*time.Second {
		t.Fatalf("Run returned %s after its context ended", el)
	}
	if err == nil || ctx.Err() == nil {
		t.Fatalf("Run = %v, ctx %v: want a killed command", err, ctx.Err())
	}
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
