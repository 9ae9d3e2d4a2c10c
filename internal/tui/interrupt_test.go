package tui

import (
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/rollout"
)

// isQuit reports whether cmd (run now) quits the program.
func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

// Ctrl-C inside the TUI is a key, not a signal: it means what it means to
// the CLI. The first stops after the hosts in flight (said on screen, with
// their names), the second forces, a third changes nothing; the TUI quits
// once the run has ended, on the summary naming every host not in service.
func TestCtrlCStopsAfterTheHostsInFlightThenForces(t *testing.T) {
	m := midRun(t, 100, 30, Options{}) // web2 and web3 in flight
	h := m.handle.(*fakeHandle)

	press(t, m, "ctrl+c")
	if !h.has("abort: interrupted (Ctrl-C)") || h.has("force") {
		t.Fatalf("first Ctrl-C: calls %v", h.Calls())
	}
	scr := screenText(m)
	if !strings.Contains(scr, "stopping after web2, web3… Ctrl-C again to force") {
		t.Fatalf("first Ctrl-C not said on screen:\n%s", scr)
	}
	if m.screen != screenRun {
		t.Fatalf("screen %v after the first Ctrl-C", m.screen)
	}

	press(t, m, "ctrl+c")
	if !h.has("force") {
		t.Fatalf("second Ctrl-C did not force: calls %v", h.Calls())
	}
	if scr := screenText(m); !strings.Contains(scr, "FORCED") {
		t.Fatalf("forcing not said on screen:\n%s", scr)
	}
	n := len(h.Calls())
	press(t, m, "ctrl+c")
	if len(h.Calls()) != n {
		t.Fatalf("a third Ctrl-C called the run again: %v", h.Calls())
	}

	sum := &event.Summary{Kind: "upgrade", From: "1.3.2", To: "1.4.0", Upgraded: []string{"web1"}, Forced: true,
		LeftDrained: map[string]string{"web2": "web2: stop: command stopped: forced"}, Failed: []string{"web3"},
		Versions: map[string]string{"web3": "1.3.2"}}
	cmd := feed(t, m, event.Event{Type: event.Control, Control: event.CtlForced, Message: "forced"},
		event.Event{Type: event.RunFinished, Outcome: event.OutcomeAborted, Summary: sum})
	if !isQuit(cmd) {
		t.Fatal("the TUI did not quit once the forced run had ended")
	}
	scr = screenText(m)
	for _, want := range []string{"LEFT DRAINED", "web2", "failed (1):", "web3", "forced: a second interrupt"} {
		if !strings.Contains(scr, want) {
			t.Errorf("the final screen does not say %q:\n%s", want, scr)
		}
	}
	if m.screen != screenDone || m.outcome != event.OutcomeAborted || m.summary != sum {
		t.Errorf("final state: screen %v outcome %q", m.screen, m.outcome)
	}
}

// Ctrl-C reaches the run wherever the focus is: in the filter, the log
// view or a dialog it is the interrupt, not a quit of that part.
func TestCtrlCInterruptsFromAnyFocus(t *testing.T) {
	for name, keys := range map[string][]string{
		"filter":     {"/"},
		"log":        {"l"},
		"log-search": {"l", "/"},
		"abort-dlg":  {"a"},
		"quit-dlg":   {"q"},
		"rollback":   {"r"},
	} {
		t.Run(name, func(t *testing.T) {
			m := midRun(t, 100, 30, Options{})
			press(t, m, keys...)
			press(t, m, "ctrl+c")
			h := m.handle.(*fakeHandle)
			if !h.has("abort: interrupted (Ctrl-C)") || m.dialog != dlgNone || m.filtering || m.logv != nil {
				t.Fatalf("calls %v, dialog %v, filtering %v, log %v", h.Calls(), m.dialog, m.filtering, m.logv != nil)
			}
		})
	}
}

// An abort already asked for (the quit dialog's y) is the first interrupt:
// Ctrl-C then forces.
func TestCtrlCAfterQuitForces(t *testing.T) {
	m := midRun(t, 100, 30, Options{})
	press(t, m, "q", "y")
	press(t, m, "ctrl+c")
	if h := m.handle.(*fakeHandle); !h.has("force") {
		t.Fatalf("calls %v", h.Calls())
	}
}

// Without a run, Ctrl-C quits at once.
func TestCtrlCWithoutARunQuits(t *testing.T) {
	m := testModel(t, newFakeBackend(2), Options{}, 80, 24)
	if _, cmd := m.Update(keyMsg("ctrl+c")); !isQuit(cmd) {
		t.Fatal("Ctrl-C on the fleet screen did not quit")
	}
}

// Ctrl-C (or q) while the run is starting: the TUI does not quit and
// leave a run going unwatched; the run is stopped as soon as it has
// started (forced after a second Ctrl-C), and the TUI quits once it ends.
func TestCtrlCWhileStarting(t *testing.T) {
	for name, keys := range map[string][]string{
		"ctrl+c":        {"ctrl+c"},
		"ctrl+c twice":  {"ctrl+c", "ctrl+c"},
		"q":             {"q"},
		"q then ctrl+c": {"q", "ctrl+c"},
	} {
		t.Run(name, func(t *testing.T) {
			b := newFakeBackend(3)
			p := upgradePlan(t, 3)
			m := testModel(t, b, Options{Plan: p}, 80, 24)
			press(t, m, "enter")
			_, startCmd := m.Update(keyMsg("y")) // the start is in flight
			if !m.starting {
				t.Fatal("not starting")
			}
			for _, k := range keys {
				if _, cmd := m.Update(keyMsg(k)); isQuit(cmd) {
					t.Fatalf("%s quit while the run was starting", k)
				}
			}
			drain(t, m, startCmd, 0)
			if !m.runActive() {
				t.Fatalf("the run did not start: %q", m.err)
			}
			if !b.handle.has("abort: interrupted (Ctrl-C)") {
				t.Fatalf("the started run was not stopped: %v", b.handle.Calls())
			}
			if forced := b.handle.has("force"); forced != (len(keys) == 2) {
				t.Fatalf("forced %v after %v: %v", forced, keys, b.handle.Calls())
			}
			if cmd := feed(t, m, newScript().started(p).add(event.Event{Type: event.RunFinished, Outcome: event.OutcomeAborted, Summary: &event.Summary{}}).evs...); !isQuit(cmd) {
				t.Fatal("the TUI did not quit once the stopped run had ended")
			}
		})
	}
}

// Ctrl-C while starting, and the start is refused: nothing runs, the TUI
// quits.
func TestCtrlCWhileStartingRefused(t *testing.T) {
	b := newFakeBackend(3)
	m := testModel(t, b, Options{Plan: upgradePlan(t, 3)}, 80, 24)
	press(t, m, "enter")
	_, startCmd := m.Update(keyMsg("y"))
	m.Update(keyMsg("ctrl+c"))
	b.setLock(&rollout.LockInfo{Owner: "bob@ops2", RunID: "20260314T080000Z-77aa", LeaseUntil: 300, Now: 200})
	var quit bool
	for _, msg := range runCmd(startCmd) {
		_, cmd := m.Update(msg)
		quit = quit || isQuit(cmd)
	}
	if !quit || len(b.started) != 0 {
		t.Fatalf("quit %v, started %d, err %q", quit, len(b.started), m.err)
	}
}

// A rollback of an unfinished run with nothing to roll back: what the
// backend says (a migration still running on its host) is shown whole,
// not as an error, and nothing runs.
func TestNothingToRollBackIsSaidNotAnError(t *testing.T) {
	b := newFakeBackend(3)
	p := upgradePlan(t, 3)
	b.resumeErr = &Nothing{Msg: "nothing to roll back: run X switched no host\npre-deploy migration to 1.4.0 (step migrate) still running on web1 (pid 4242) — it will finish once; relctl did not switch any host"}
	m := testModel(t, b, Options{Unfinished: unfinishedRun(p)}, 100, 30)
	press(t, m, "r")
	flat := strings.Join(strings.Fields(screenText(m)), " ")
	if !strings.Contains(flat, "still running on web1 (pid 4242) — it will finish once") || strings.Contains(flat, "error:") || m.run != nil {
		t.Fatalf("run %v, screen:\n%s", m.run != nil, screenText(m))
	}
}
