package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/testkit/syncbuf"
)

// TestVerdictTable is the contract of README.md's exit code table: outcome
// × hosts left drained × hosts reverted within the budget × hosts failed →
// exit code, and the lines name every host not in service on the target.
func TestVerdictTable(t *testing.T) {
	drained := map[string]string{"web3": "not healthy; going back to 1.0.0 failed"}
	versions := map[string]string{"web1": "1.1.0", "web2": "1.0.0", "web3": "", "web4": "1.0.0"}
	outcomes := []event.Outcome{event.OutcomeSucceeded, event.OutcomePartial, event.OutcomeRolledBack,
		event.OutcomeFailed, event.OutcomeAborted, event.OutcomePaused}
	for _, o := range outcomes {
		for _, left := range []bool{false, true} {
			for _, reverted := range []bool{false, true} {
				for _, failed := range []bool{false, true} {
					s := event.Summary{From: "1.0.0", To: "1.1.0", Upgraded: []string{"web1"}, Versions: versions}
					if left {
						s.LeftDrained = drained
					}
					if reverted {
						s.RolledBack = []string{"web2"}
					}
					if failed {
						s.Failed = []string{"web4"}
					}
					want := expectCode(o, left, reverted, failed)
					name := fmt.Sprintf("%s/drained=%t/reverted=%t/failed=%t", o, left, reverted, failed)
					t.Run(name, func(t *testing.T) {
						code, lines := Verdict(RunEnd{Outcome: o, Summary: s})
						if code != want {
							t.Errorf("exit %d, want %d (lines %q)", code, want, lines)
						}
						text := strings.Join(lines, "\n")
						if left && !strings.Contains(text, "web3 is LEFT DRAINED") {
							t.Errorf("the drained host is not named: %q", text)
						}
						if failed && !strings.Contains(text, "web4 on 1.0.0") {
							t.Errorf("the failed host is not named with its version: %q", text)
						}
						if code == ExitPartial && reverted && !strings.Contains(text, "web2 on 1.0.0") {
							t.Errorf("partially upgraded without naming the host left behind: %q", text)
						}
						if code == ExitOK && text != "" {
							t.Errorf("a clean success with lines: %q", text)
						}
					})
				}
			}
		}
	}
}

// expectCode is the README table written out independently of Verdict.
func expectCode(o event.Outcome, left, reverted, failed bool) int {
	if left {
		return 6 // any host out of rotation
	}
	switch o {
	case event.OutcomePaused:
		return 6
	case event.OutcomePartial:
		return 7
	case event.OutcomeSucceeded:
		if reverted || failed {
			return 7
		}
		return 0
	case event.OutcomeRolledBack:
		if failed {
			return 1
		}
		return 3
	case event.OutcomeAborted:
		return 5
	}
	return 1
}

// A rollback run that sent every host back succeeded: its hosts are
// listed as rolled back, and that is not a partial upgrade.
func TestVerdictRollbackRunSucceeded(t *testing.T) {
	s := event.Summary{Kind: plan.KindRollback, From: "1.1.0", To: "1.0.0", RolledBack: []string{"web1", "web2"}}
	if code, lines := Verdict(RunEnd{Outcome: event.OutcomeSucceeded, Summary: s}); code != ExitOK {
		t.Errorf("exit %d: %q", code, lines)
	}
}

func TestVerdictLockedAndStated(t *testing.T) {
	code, _ := Verdict(RunEnd{Outcome: event.OutcomeFailed, Locked: true})
	if code != ExitLocked {
		t.Errorf("locked: exit %d", code)
	}
	// A locked refusal never outranks a host out of rotation.
	code, _ = Verdict(RunEnd{Outcome: event.OutcomeFailed, Locked: true, Summary: event.Summary{LeftDrained: map[string]string{"web1": "x"}}})
	if code != ExitPaused {
		t.Errorf("locked with a drained host: exit %d", code)
	}
	code, lines := Verdict(RunEnd{Outcome: event.OutcomeAborted, Summary: event.Summary{Forced: true, Lock: "still held on web1 by run r1"}})
	text := strings.Join(lines, "\n")
	if code != ExitAborted || !strings.Contains(text, "forced") || !strings.Contains(text, "still held on web1") {
		t.Errorf("forced abort: exit %d, lines %q", code, text)
	}
}

// The first signal cancels (finish or revert the host in flight), the
// second closes force, later ones change nothing.
func TestInterruptsFirstCancelsSecondForces(t *testing.T) {
	sigs := make(chan os.Signal, 3)
	done := make(chan struct{})
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	force := make(chan struct{})
	var errb syncbuf.Buffer
	go interrupts(sigs, done, cancel, force, &errb)
	sigs <- syscall.SIGINT
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first interrupt did not cancel")
	}
	select {
	case <-force:
		t.Fatal("the first interrupt forced")
	default:
	}
	sigs <- syscall.SIGTERM
	select {
	case <-force:
	case <-time.After(10 * time.Second):
		t.Fatal("the second interrupt did not force")
	}
	sigs <- syscall.SIGHUP // must not panic on a closed channel
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(errb.String(), "already forcing") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if out := errb.String(); !strings.Contains(out, "interrupt again to force") || !strings.Contains(out, "already forcing") {
		t.Errorf("stderr %q", out)
	}
}
