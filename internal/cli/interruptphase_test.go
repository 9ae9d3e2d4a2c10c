package cli

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/testkit/syncbuf"
)

// In a phase with its own words (demo --keep's hold), an interrupt says
// what it does there, and never the run's "finishing or reverting the host
// in flight" or "forcing"; it still cancels, and the second still forces.
func TestInterruptsSayThePhase(t *testing.T) {
	sigs := make(chan os.Signal, 3)
	done := make(chan struct{})
	defer close(done)
	ctx := t.Context()
	cctx, cancel := context.WithCancel(ctx)
	force := make(chan struct{})
	note := &phaseNote{}
	setPhase(withPhaseNote(ctx, note), demoKeepWords)
	var errb syncbuf.Buffer
	go interruptsNoted(sigs, done, cancel, force, &errb, note)
	sigs <- syscall.SIGINT
	select {
	case <-cctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first interrupt did not cancel")
	}
	sigs <- syscall.SIGTERM
	select {
	case <-force:
	case <-time.After(10 * time.Second):
		t.Fatal("the second interrupt did not force")
	}
	want := "\nrelctl: interrupt: stopping the demo fleet (every process it started; its directory stays)…\n" +
		"\nrelctl: terminated: the demo fleet is already stopping; relctl exits once every process it started is gone\n"
	deadline := time.Now().Add(10 * time.Second)
	for errb.String() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := errb.String(); got != want {
		t.Errorf("stderr %q\nwant   %q", got, want)
	}
}

// End to end: `relctl demo --keep` (the test binary as relctl, through
// Main and its signal handling) holding the fleet gets SIGINT: it says it
// stops the demo fleet, not the run's words, stops it and exits 0.
func TestDemoKeepCtrlCSaysItStopsTheFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo fleet")
	}
	tmp := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self)
	child.Env = append(os.Environ(), "TMPDIR="+tmp, demoMainEnv+"=demo --plain --keep --hosts 2 --rate 20 --to 1.1.0")
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
			t.Fatalf("the demo ended before Ctrl-C:\n%s", errb.String())
		default:
		}
		return strings.Contains(errb.String(), "Ctrl-C stops every process above")
	})
	held := len(errb.String())
	if err := child.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("demo --keep did not end after Ctrl-C:\n%s", errb.String())
	}
	after := errb.String()[held:]
	if code := child.ProcessState.ExitCode(); code != ExitOK {
		t.Errorf("exit %d after Ctrl-C, want 0:\n%s", code, after)
	}
	if !strings.Contains(after, "relctl: interrupt: stopping the demo fleet (every process it started; its directory stays)…") {
		t.Errorf("Ctrl-C during --keep does not say it stops the demo fleet:\n%s", after)
	}
	for _, wrong := range []string{"finishing or reverting", "host in flight", "forcing"} {
		if strings.Contains(after, wrong) {
			t.Errorf("Ctrl-C during --keep says %q, which does not apply there:\n%s", wrong, after)
		}
	}
	if !strings.Contains(after, "demo: stopped every process it started; kept ") {
		t.Errorf("no final word after Ctrl-C:\n%s", after)
	}
}
