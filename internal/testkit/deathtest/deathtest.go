// Package deathtest checks that what relctl starts on the operator's
// machine dies with it: a test re-executes its own binary as a helper that
// plays relctl and runs a command recording its pid and a grandchild's,
// SIGKILLs the helper, and polls until both pids are gone.
//
// It is test code only; no product package imports it.
package deathtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/proc"
)

// Env names the directory a helper process works in; it is set only in
// the helper.
const Env = "DEATHTEST_DIR"

// Script is the shell text of the command a helper runs: it records its
// own pid in "$DIR/cmd" and a grandchild `sleep 300`'s in
// "$DIR/grandchild" (each written whole), then waits. DIR is the helper's
// directory, passed on as the DEATHTEST_DIR variable.
const Script = `d="$DEATHTEST_DIR"
echo $$ > "$d/cmd.tmp" && mv "$d/cmd.tmp" "$d/cmd"
sleep 300 & echo $! > "$d/grandchild.tmp" && mv "$d/grandchild.tmp" "$d/grandchild"
wait`

// Dir returns the helper's directory, "" when this process is not a
// helper (the helper test should then skip).
func Dir() string { return os.Getenv(Env) }

// Pids are the processes a helper's command recorded.
type Pids struct{ Cmd, Grandchild int }

// Start re-executes the test binary to run only the test named run, as a
// helper with Env set to a new directory, and returns once the command the
// helper runs has recorded both pids. The helper and both pids are killed
// at cleanup if still alive.
func Start(t *testing.T, run string) (*exec.Cmd, Pids) {
	t.Helper()
	dir := t.TempDir()
	h := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1", "-test.v")
	h.Env = append(os.Environ(), Env+"="+dir)
	out := &lockedBuffer{}
	h.Stdout, h.Stderr = out, out
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = h.Wait(); close(exited) }()
	t.Cleanup(func() { _ = h.Process.Kill(); <-exited })
	read := func(name string) int {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		p := Pids{Cmd: read("cmd"), Grandchild: read("grandchild")}
		if p.Cmd > 0 && p.Grandchild > 0 {
			t.Cleanup(func() {
				for _, pid := range []int{p.Cmd, p.Grandchild} {
					if proc.Alive(pid) {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
			if !proc.Alive(p.Cmd) || !proc.Alive(p.Grandchild) {
				t.Fatalf("command %d or grandchild %d not running before the kill", p.Cmd, p.Grandchild)
			}
			return h, p
		}
		select {
		case <-exited:
			t.Fatalf("helper exited before its command recorded its pids: %v\n%s", h.ProcessState, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the helper's command did not record its pids within 60s\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KillAndWaitGone SIGKILLs the helper, as relctl would be killed, and
// polls with a generous deadline until the command and its grandchild are
// both gone.
func KillAndWaitGone(t *testing.T, h *exec.Cmd, p Pids) {
	t.Helper()
	if err := h.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var alive []string
		if proc.Alive(p.Cmd) {
			alive = append(alive, "command "+strconv.Itoa(p.Cmd))
		}
		if proc.Alive(p.Grandchild) {
			alive = append(alive, "grandchild "+strconv.Itoa(p.Grandchild))
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still running 30s after the process that started it was SIGKILLed", strings.Join(alive, " and "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockedBuffer is the helper's output, written by exec's copier and read
// by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
