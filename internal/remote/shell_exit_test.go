package remote

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A command that exits 143 by itself reads as "exit status 143", with or
// without a timeout (a watchdog that never fired); only a command the
// host's watchdog killed at its timeout reads as timed out and killed.
func TestShellExitAbove128IsNotASignal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{KillGrace: 300 * time.Millisecond})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for _, timeout := range []time.Duration{0, time.Minute} {
		res, err := c.Run(ctx, Command{Script: "echo bye >&2; exit 143", Timeout: timeout})
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != 143 || ee.Signal != "" || res.ExitCode != 143 || res.Signal != "" {
			t.Fatalf("timeout %s: exit 143 = %+v, %v; want exit status 143, no signal", timeout, res, err)
		}
		if got := err.Error(); got != "web1: exit status 143: bye" {
			t.Errorf("timeout %s: error %q, want %q", timeout, got, "web1: exit status 143: bye")
		}
		if errors.Is(err, ErrTimeout) {
			t.Errorf("timeout %s: exit 143 read as a timeout: %v", timeout, err)
		}
	}
	start := time.Now()
	res, err := c.Run(ctx, Command{Script: "sleep 300", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("a timed-out command = %v, want timed out and killed", err)
	}
	if res.Signal != "TERM" || res.ExitCode != 143 {
		t.Errorf("a timed-out command's result %+v: want killed by TERM (143)", res)
	}
	if el := time.Since(start); el > time.Minute {
		t.Errorf("timed-out command took %s", el)
	}
	// The shell goes on: the next command runs on it.
	if out, err := c.Output(ctx, "echo next"); err != nil || out != "next" {
		t.Fatalf("next command: %q %v", out, err)
	}
}
