package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// writePidfile records pid in dir as "<pid> <start time> <name>".
func writePidfile(dir, name string, pid int) (string, error) {
	s, err := readStat(pid)
	if err != nil {
		return "", fmt.Errorf("pidfile: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("pidfile: %w", err)
	}
	path := filepath.Join(dir, strconv.Itoa(pid)+".pid")
	line := fmt.Sprintf("%d %d %s\n", pid, s.startTime, name)
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		return "", fmt.Errorf("pidfile: %w", err)
	}
	return path, nil
}

// same reports whether pid is alive and started at startTime: the process a
// pidfile or a lifeline names, not a later one that got its pid again.
func same(pid int, startTime uint64) bool {
	if !Alive(pid) {
		return false
	}
	s, err := readStat(pid)
	return err == nil && s.startTime == startTime
}

// Reap stops every process still running from the pidfiles Start wrote in
// dir (started by a process that was killed before it could stop them):
// SIGTERM to its process group, SIGKILL after timeout. A pidfile whose pid
// now names another process is only removed. It returns the pids that
// survive SIGKILL; a missing dir is nothing to reap.
func Reap(dir string, timeout time.Duration) ([]int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return nil, err
	}
	var live []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var pid int
		var start uint64
		if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil || pid <= 1 {
			_ = os.Remove(f) // not ours to read: never signal on a guess
			continue
		}
		if same(pid, start) {
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			live = append(live, pid)
		}
		_ = os.Remove(f)
	}
	var left []int
	for _, pid := range live {
		if WaitGone(pid, timeout) {
			continue
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		if !WaitGone(pid, 5*time.Second) {
			left = append(left, pid)
		}
	}
	if len(left) > 0 {
		return left, fmt.Errorf("processes survive SIGKILL: %v", left)
	}
	return nil, nil
}

// LifelineEnv is the environment variable that ties a process to an owner
// process: its value, from Lifeline, names the owner. A process that finds
// it set ends when the owner does (see WithLifeline), even when the owner
// was SIGKILLed and its children were inherited by init.
const LifelineEnv = "RELCTL_LIFELINE"

// Lifeline returns the value of LifelineEnv that names this process:
// "<pid>:<start time>", which no later process with the same pid matches.
func Lifeline() (string, error) {
	pid := os.Getpid()
	s, err := readStat(pid)
	if err != nil {
		return "", fmt.Errorf("lifeline: %w", err)
	}
	return fmt.Sprintf("%d:%d", pid, s.startTime), nil
}

// OwnerAlive reports whether the process a Lifeline value names still runs.
func OwnerAlive(lifeline string) (bool, error) {
	p, s, ok := strings.Cut(strings.TrimSpace(lifeline), ":")
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(s, 10, 64)
	if !ok || err1 != nil || err2 != nil || pid <= 0 {
		return false, fmt.Errorf("lifeline %q: want <pid>:<start time>", lifeline)
	}
	return same(pid, start), nil
}

// ErrOwnerGone is the cause of a WithLifeline context that ended because
// its owner did.
var ErrOwnerGone = errors.New("the owner process is gone")

// WithLifeline returns a context that is cancelled (cause ErrOwnerGone)
// once the process the lifeline names has ended; it checks every interval.
// A malformed lifeline is an error, so a typo cannot leave a process
// unowned without anyone noticing.
func WithLifeline(ctx context.Context, lifeline string, every time.Duration) (context.Context, context.CancelFunc, error) {
	if _, err := OwnerAlive(lifeline); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if alive, _ := OwnerAlive(lifeline); !alive {
					cancel(ErrOwnerGone)
					return
				}
			}
		}
	}()
	return ctx, func() { cancel(context.Canceled) }, nil
}
