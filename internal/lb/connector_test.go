package lb_test

import (
	"context"
	"errors"
	"github.com/relctl/relctl/internal/demo/proc"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

// readPID waits for the script to write a pid into path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	lbtest.Eventually(t, 10*time.Second, "pid file "+path, func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0, string(b)
	})
	return pid
}

// killSleep kills, by the PID in pidFile, the sleep a test script started,
// if it still runs (and is still a sleep: a PID can be reused).
func killSleep(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !proc.Alive(pid) {
		return
	}
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// A command that forks a child holding the stdout pipe used to keep RunOn
// waiting for the child long after its timeout (issue 12: a 1 s timeout
// returned after 6 s). The whole process group is killed now.
func TestLocalRunOnKillsForkedChildAtTimeout(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	out, err := lb.LocalConnector{}.RunOn(ctx, "", "echo started; sleep 30 & echo $! > "+pidFile+"; sleep 30")
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunOn past its timeout = %q, %v; want an error wrapping context.DeadlineExceeded", out, err)
	}
	if out != "started\n" {
		t.Errorf("output before the kill = %q, want it kept", out)
	}
	// 1 s timeout + kill + reaping; far below the child's 30 s even on a
	// loaded machine.
	if took > 10*time.Second {
		t.Fatalf("RunOn with a 1s timeout took %s", took)
	}
	t.Logf("RunOn with a 1s timeout returned after %s: %v", took.Round(time.Millisecond), err)
	child := readPID(t, pidFile)
	lbtest.Eventually(t, 10*time.Second, "forked child gone", func() (bool, string) {
		return !proc.Alive(child), "pid " + strconv.Itoa(child) + " still runs"
	})
}

// A child that leaves the process group (setsid) and keeps stdout open
// cannot be killed with the group; RunOn still returns within WaitDelay
// instead of waiting for it.
func TestLocalRunOnBoundedWhenChildLeavesGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	t.Cleanup(func() {
		killSleep(pidFile)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := lb.LocalConnector{}.RunOn(ctx, "", "setsid sleep 30 & echo $! > "+pidFile+"; sleep 30")
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunOn = %v, want context.DeadlineExceeded", err)
	}
	if took > 12*time.Second {
		t.Fatalf("RunOn with a 1s timeout and an escaped child took %s", took)
	}
	t.Logf("returned after %s with a child outside the group", took.Round(time.Millisecond))
}

// A script that exits at once but leaves a background child holding its
// output is reported, not waited on for the child's lifetime.
func TestLocalRunOnChildOutlivesScript(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	t.Cleanup(func() {
		killSleep(pidFile)
	})
	start := time.Now()
	_, err := lb.LocalConnector{}.RunOn(context.Background(), "", "sleep 30 & echo $! > "+pidFile)
	if err == nil || !strings.Contains(err.Error(), "still held its output open") {
		t.Fatalf("RunOn = %v, want the leaked child reported", err)
	}
	if took := time.Since(start); took > 12*time.Second {
		t.Fatalf("RunOn took %s", took)
	}
	child := readPID(t, pidFile)
	lbtest.Eventually(t, 10*time.Second, "the child holding the output gone", func() (bool, string) {
		return !proc.Alive(child), "pid " + strconv.Itoa(child) + " still runs"
	})
}

func TestLocalRunOnErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	out, err := lb.LocalConnector{}.RunOn(ctx, "", "echo partial; echo broken >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "exit status 3: broken") || out != "partial\n" {
		t.Fatalf("RunOn failing = %q, %v", out, err)
	}
	if _, err := (lb.LocalConnector{}).RunOn(ctx, "lb1", "true"); err == nil || !strings.Contains(err.Error(), "lb1") {
		t.Fatalf("RunOn via ssh = %v, want refusal naming the host", err)
	}
	if out, err := (lb.LocalConnector{}).RunOn(ctx, "", "echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("RunOn = %q, %v", out, err)
	}
}
