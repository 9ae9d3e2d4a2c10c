package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// term is a private tmux server running one relctl in a 120×40 window.
type term struct {
	t        *testing.T
	socket   string
	exitFile string
}

func newTerm(t *testing.T, env []string, dir string, args ...string) *term {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is required in CI")
		}
		t.Skip("tmux is not installed")
	}
	tm := &term{t: t, socket: fmt.Sprintf("relctl-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())}
	exit := filepath.Join(t.TempDir(), "exit")
	cmdline := fmt.Sprintf("cd %q && env %s %q %s; echo $? > %q; sleep 600",
		dir, strings.Join(env, " "), relctlBin, strings.Join(args, " "), exit)
	tm.tmux("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40", cmdline)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", tm.socket, "kill-server").Run() })
	tm.exitFile = exit
	return tm
}

func (tm *term) tmux(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (tm *term) screen() string { return tm.tmux("capture-pane", "-p", "-t", "e2e") }

func (tm *term) keys(keys ...string) {
	tm.t.Helper()
	for _, k := range keys {
		tm.tmux("send-keys", "-t", "e2e", k)
		time.Sleep(150 * time.Millisecond)
	}
}

// wait polls the screen until it shows want.
func (tm *term) wait(want string, timeout time.Duration) string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	var s string
	for time.Now().Before(deadline) {
		s = tm.screen()
		if strings.Contains(s, want) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	tm.t.Fatalf("the screen never showed %q within %s; last screen:\n%s", want, timeout, s)
	return ""
}

// exitCode waits for relctl to exit and returns its code.
func (tm *term) exitCode(timeout time.Duration) string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(tm.exitFile); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(100 * time.Millisecond)
	}
	tm.t.Fatalf("relctl did not exit; last screen:\n%s", tm.screen())
	return ""
}

// upgradeThenRollBack drives the fleet screen: pick the newest version,
// read the plan, start, promote the canary, press r mid-run, confirm, and
// watch the switched hosts go back.
func upgradeThenRollBack(t *testing.T, tm *term, demo bool) string {
	// The fleet screen is ready once every host was observed.
	tm.wait("▸ 2.0.0", time.Minute)
	tm.keys("Enter")
	tm.wait("POINT OF NO RETURN", 30*time.Second)
	// The preview scrolls to its end and stops there.
	tm.keys("NPage", "NPage", "NPage", "NPage", "NPage", "NPage")
	tm.wait("(end)", 10*time.Second)
	tm.wait("What rollback can and cannot undo", 10*time.Second)
	tm.keys("Enter")
	tm.wait("Start this upgrade?", 10*time.Second)
	tm.keys("y")
	s := tm.wait("Canary gate", time.Minute)
	if demo && !strings.Contains(s, "0 failed") {
		t.Errorf("the gate does not show the traffic:\n%s", s)
	}
	// r right behind p (one key gap): the run is then surely in hop 1's
	// later batches, which take seconds. Waiting for "batch 2/" on the
	// screen first left r only the 2–3 s of those batches under load; a
	// later r would meet the second hop's gate instead.
	tm.keys("p", "r")
	s = tm.wait("go back to 1.0.0", 10*time.Second)
	if !strings.Contains(s, "paused while you decide") {
		t.Errorf("the rollback confirmation does not hold the run:\n%s", s)
	}
	tm.keys("y")
	s = tm.wait("ROLLED BACK", 2*time.Minute)
	t.Logf("final screen:\n%s", s)
	// After the run: a host's full log, then back to the summary.
	tm.keys("Enter")
	tm.wait("log: ", 10*time.Second)
	tm.wait("── deploy ", 10*time.Second)
	tm.keys("Escape")
	s = tm.wait("ROLLED BACK", 10*time.Second)
	return s
}

// TestTUIOnRealFleet: the operator's TUI against real sshd hosts behind
// real HAProxy.
func TestTUIOnRealFleet(t *testing.T) {
	s := newStage(t, 4, "haproxy", "rollout:\n  batches: [1, 1]\n  pause_after_canary: true\n  on_failure: rollback\n", nil)
	tm := newTerm(t, []string{"RELCTL_FLEET=" + s.fleetFile, "XDG_STATE_HOME=" + s.state}, s.dir)
	final := upgradeThenRollBack(t, tm, false)
	if !strings.Contains(final, "post-migrate: not run") {
		t.Errorf("summary:\n%s", final)
	}
	tm.keys("q")
	if code := tm.exitCode(30 * time.Second); code != "3" {
		t.Errorf("exit %s, want 3 (rolled back)", code)
	}
	s.wantAll("1.0.0")
}

// TestTUIDemo: the newcomer's relctl demo, in a terminal.
func TestTUIDemo(t *testing.T) {
	tmp := t.TempDir()
	tm := newTerm(t, []string{"TMPDIR=" + tmp}, tmp, "demo", "--hosts", "4", "--balancer", "builtin")
	upgradeThenRollBack(t, tm, true)
	tm.keys("q")
	// README: the TUI demo exits with its run's code, 3 after r.
	if code := tm.exitCode(30 * time.Second); code != "3" {
		t.Errorf("exit %s, want 3 (rolled back)", code)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "relctl-demo-*"))
	if len(left) != 0 {
		t.Errorf("the demo left %v behind", left)
	}
	if ps := liveProcessesMentioning(filepath.Join(tmp, "relctl-demo-")); len(ps) != 0 {
		t.Errorf("the demo left processes running:\n%s", strings.Join(ps, "\n"))
	}
}
