package cli

import (
	"context"
	"github.com/relctl/relctl/internal/demo/proc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/sandbox"
	"github.com/relctl/relctl/internal/testkit/syncbuf"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDemoKeep runs `relctl demo --plain --keep` in this process: after the
// upgrade the fleet must still run, reachable by other relctl commands with
// the inventory it printed, every pid it printed alive; Ctrl-C (the
// context's end) must stop every one of them and keep the directory, which
// a later demo does not take for an orphan.
func TestDemoKeep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo fleet")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// runDemo points XDG_STATE_HOME at the demo; put it back after.
	t.Setenv("XDG_STATE_HOME", os.Getenv("XDG_STATE_HOME"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"demo", "--plain", "--keep", "--hosts", "2", "--balancer", "builtin", "--rate", "20", "--to", "1.1.0"},
			strings.NewReader(""), &out, &errb)
	}()
	waitFor(t, 5*time.Minute, "the demo to say it keeps running", func() bool {
		select {
		case code := <-done:
			t.Fatalf("demo --keep exited %d before Ctrl-C:\n%s\n%s", code, out.String(), errb.String())
		default:
		}
		return strings.Contains(errb.String(), "Ctrl-C stops every process above")
	})
	said := errb.String()
	if !strings.Contains(out.String(), "0 failed") {
		t.Errorf("the upgrade's traffic figures: %s", out.String())
	}
	m := regexp.MustCompile(`(?m)^  directory: (\S+)$`).FindStringSubmatch(said)
	if m == nil {
		t.Fatalf("no directory in:\n%s", said)
	}
	dir := m[1]
	fleetFile := filepath.Join(dir, "fleet.yaml")
	for _, w := range []string{"relctl -f " + fleetFile + " status", "export XDG_STATE_HOME=" + filepath.Join(dir, "state"), "kill -TERM " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(said, w) {
			t.Errorf("--keep does not say %q:\n%s", w, said)
		}
	}
	var pids []int
	for _, p := range regexp.MustCompile(`app pid (\d+)`).FindAllStringSubmatch(said, -1) {
		n, _ := strconv.Atoi(p[1])
		pids = append(pids, n)
	}
	sshAddrs := regexp.MustCompile(`ssh (127\.0\.0\.1:\d+)`).FindAllStringSubmatch(said, -1)
	if len(pids) != 2 || len(sshAddrs) != 2 {
		t.Fatalf("want 2 app pids and 2 ssh addresses in:\n%s", said)
	}
	for _, pid := range pids {
		if !proc.Alive(pid) {
			t.Errorf("app pid %d it said runs is not alive", pid)
		}
	}

	// The fleet is usable with what it printed: status over SSH, both
	// hosts on the version the demo upgraded to.
	code, st, stErr := run(t, "status", "-f", fleetFile)
	if code != ExitOK || strings.Count(st, "1.1.0") < 2 {
		t.Errorf("status on the kept fleet: exit %d\n%s\n%s", code, st, stErr)
	}

	// Ctrl-C: every process stops, the directory stays.
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("demo --keep after Ctrl-C: exit %d\n%s", code, errb.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("demo --keep did not end after Ctrl-C")
	}
	if !strings.Contains(errb.String(), "stopped every process it started; kept "+dir) {
		t.Errorf("no final word:\n%s", errb.String())
	}
	for _, pid := range pids {
		if proc.Alive(pid) {
			t.Errorf("app pid %d still alive after Ctrl-C", pid)
		}
	}
	for _, a := range sshAddrs {
		if c, err := net.DialTimeout("tcp", a[1], time.Second); err == nil {
			c.Close()
			t.Errorf("ssh %s still accepts after Ctrl-C", a[1])
		}
	}
	if left := sandbox.Processes(dir); len(left) > 0 {
		t.Errorf("processes of the demo left: %v", left)
	}
	for _, f := range []string{"fleet.yaml", "state", "hosts/web1/srv/shop/current"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err != nil {
			t.Errorf("kept directory lacks %s: %v", f, err)
		}
	}
	// A later demo reaps orphans only: this directory was stopped cleanly
	// and is left for the operator.
	sandbox.ReapOrphans(tmp, t.Logf)
	if _, err := os.Stat(fleetFile); err != nil {
		t.Errorf("a later demo removed the kept directory: %v", err)
	}
	os.RemoveAll(dir)
}

// runAsRelctl runs this test binary as relctl when it is a child of the
// demo tests: "<binary> demoapp ..." is what the demo's releases run, and
// demoChildEnv holds the arguments of a relctl the test may SIGKILL.
func runAsRelctl() (int, bool) {
	var args []string
	switch {
	case len(os.Args) > 1 && os.Args[1] == "demoapp":
		args = os.Args[1:]
	case os.Getenv(demoChildEnv) != "":
		args = strings.Fields(os.Getenv(demoChildEnv))
	case os.Getenv(demoMainEnv) != "":
		// Through Main: relctl's own signal handling, as a terminal's
		// Ctrl-C meets it.
		return Main(strings.Fields(os.Getenv(demoMainEnv)), os.Stdin, os.Stdout, os.Stderr), true
	default:
		return 0, false
	}
	return Run(context.Background(), args, os.Stdin, os.Stdout, os.Stderr), true
}

// demoChildEnv makes this test binary run relctl with the arguments it
// holds (see TestMain): a relctl that the test can SIGKILL.
const demoChildEnv = "RELCTL_CLI_TEST_RELCTL"

// demoMainEnv is demoChildEnv for a relctl run through Main, which a test
// interrupts with signals.
const demoMainEnv = "RELCTL_CLI_TEST_RELCTL_MAIN"

// TestDemoKeepSIGKILLed kills a `relctl demo --keep` while it holds the
// fleet: nothing it started may outlive it (the apps watch its lifeline,
// HAProxy has its parent-death signal), and a later demo removes the
// directory of a demo that died (ReapOrphans).
func TestDemoKeepSIGKILLed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo fleet")
	}
	tmp := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self)
	child.Env = append(os.Environ(), "TMPDIR="+tmp, demoChildEnv+"=demo --plain --keep --hosts 2 --rate 20 --to 1.1.0")
	var errb syncbuf.Buffer
	child.Stderr = &errb
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = child.Wait(); close(exited) }()
	t.Cleanup(func() { _ = child.Process.Kill(); <-exited })
	waitFor(t, 5*time.Minute, "the child demo to hold the fleet", func() bool {
		select {
		case <-exited:
			t.Fatalf("the demo ended before it was killed:\n%s", errb.String())
		default:
		}
		return strings.Contains(errb.String(), "Ctrl-C stops every process above")
	})
	said := errb.String()
	m := regexp.MustCompile(`(?m)^  directory: (\S+)$`).FindStringSubmatch(said)
	if m == nil {
		t.Fatalf("no directory in:\n%s", said)
	}
	dir := m[1]
	var pids []int
	for _, p := range regexp.MustCompile(`(?:app pid|\(pid) (\d+)`).FindAllStringSubmatch(said, -1) {
		n, _ := strconv.Atoi(p[1])
		pids = append(pids, n)
	}
	if len(pids) < 2 {
		t.Fatalf("no pids in:\n%s", said)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	waitFor(t, time.Minute, "every process the killed demo left to end", func() bool {
		for _, pid := range pids {
			if proc.Alive(pid) {
				return false
			}
		}
		return len(sandbox.Processes(dir)) == 0
	})
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the directory went with the process: %v", err)
	}
	sandbox.ReapOrphans(tmp, t.Logf) // what the next `relctl demo` does first
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a later demo did not reap %s: %v", dir, err)
	}
}
