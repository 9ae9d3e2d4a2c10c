package tui

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/event"
)

// keyStates builds the model in every state an operator meets, each
// freshly (a key must not see another key's effect).
var keyStates = map[string]func(t *testing.T) *model{
	"fleet": func(t *testing.T) *model { return screens["fleet"](t, 80, 24) },
	"fleet-downgrade-pick": func(t *testing.T) *model {
		b := newFakeBackend(4)
		for i := range b.hosts {
			b.hosts[i].Version = "1.4.0"
		}
		b.plans["down 1.3.2"] = downgradePlan(t, 4)
		m := testModel(t, b, Options{}, 80, 24)
		drain(t, m, m.Init(), 0)
		press(t, m, "d")
		return m
	},
	"fleet-unfinished":  func(t *testing.T) *model { return screens["fleet-locked-unfinished"](t, 80, 24) },
	"plan-top":          func(t *testing.T) *model { return screens["plan"](t, 80, 24) },
	"plan-locked":       func(t *testing.T) *model { return screens["plan-locked"](t, 80, 24) },
	"plan-confirm":      func(t *testing.T) *model { return screens["plan-confirm"](t, 80, 24) },
	"run":               func(t *testing.T) *model { return screens["run"](t, 80, 24) },
	"run-gate":          func(t *testing.T) *model { return screens["run-gate"](t, 80, 24) },
	"run-gate2":         func(t *testing.T) *model { return screens["run-gate2"](t, 80, 24) },
	"run-rollback-dlg":  func(t *testing.T) *model { return screens["run-rollback-confirm"](t, 80, 24) },
	"run-past-pnr":      func(t *testing.T) *model { return screens["run-past-pnr"](t, 80, 24) },
	"run-emergency":     func(t *testing.T) *model { return screens["run-emergency"](t, 80, 24) },
	"done":              func(t *testing.T) *model { return screens["done"](t, 80, 24) },
	"done-left-drained": func(t *testing.T) *model { return screens["done-left-drained"](t, 80, 24) },
	"done-timeline": func(t *testing.T) *model {
		m := screens["done"](t, 80, 24)
		press(t, m, "t")
		return m
	},
	"log": func(t *testing.T) *model { return screens["log"](t, 80, 24) },
	"run-abort-dlg": func(t *testing.T) *model {
		m := screens["run"](t, 80, 24)
		press(t, m, "a")
		return m
	},
	"run-quit-dlg": func(t *testing.T) *model {
		m := screens["run"](t, 80, 24)
		press(t, m, "q")
		return m
	},
	"run-paused": func(t *testing.T) *model {
		m := screens["run"](t, 80, 24)
		press(t, m, "space")
		feed(t, m, event.Event{Type: event.Control, Control: event.CtlPauseRequested, Message: "pause requested"})
		return m
	},
	"run-failed-gate": func(t *testing.T) *model {
		b := newFakeBackend(3)
		p := upgradePlan(t, 3)
		s := newScript().prelude(p).deployStart("web1").
			state("web1", event.HostFailed, "", "web1: health: not healthy within 1m0s").
			add(event.Event{Type: event.Control, Control: event.CtlPausedForFailure, Message: "paused for the operator (on_failure: pause): web1: health: not healthy"})
		return runningModelAt(t, b, p, Options{}, s.evs, 80, 24)
	},
}

var allKeys = []string{"q", "?", "up", "down", "k", "j", "pgup", "pgdown", "ctrl+u", "ctrl+d", "/", "esc", "enter",
	"d", "R", "space", "a", "r", "y", "n", "p", "s", "c", "l", "t", "f", "w", "N", "x", "g", "G", "home"}

func keyPress(k string) tea.KeyPressMsg {
	switch k {
	case "ctrl+u":
		return tea.KeyPressMsg{Code: 'u', Mod: tea.ModCtrl}
	case "ctrl+d":
		return tea.KeyPressMsg{Code: 'd', Mod: tea.ModCtrl}
	case "home":
		return tea.KeyPressMsg{Code: tea.KeyHome}
	}
	return keyMsg(k)
}

// shown reports whether an enabled binding (one the help lists) has k.
func shown(m *model, k string) bool {
	for _, b := range m.keys.all() {
		if b.Enabled() && slices.Contains(b.Keys(), k) {
			return true
		}
	}
	return false
}

// snapshot is what an operator (and the run) can tell apart.
func snapshot(m *model, calls int) string {
	return fmt.Sprintf("%s\x00%d\x00%v\x00%v", screenText(m), calls, m.dialog, m.screen)
}

func handleCalls(m *model) int {
	if h, ok := m.handle.(*fakeHandle); ok {
		return len(h.Calls())
	}
	return 0
}

// TestEveryKeyInEveryState: a key the help shows changes something (the
// screen, a dialog, or a command it starts); a key it does not show
// changes nothing.
func TestEveryKeyInEveryState(t *testing.T) {
	for name, build := range keyStates {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			probe := build(t)
			if probe.textInput() {
				t.Fatalf("%s is a text input state", name)
			}
			for _, k := range allKeys {
				m := build(t)
				m.notice = "" // the next key clears it either way
				before := snapshot(m, handleCalls(m))
				want := shown(m, k)
				_, cmd := m.Update(keyPress(k))
				after := snapshot(m, handleCalls(m))
				changed := before != after || cmd != nil
				switch {
				case want && !changed:
					t.Errorf("%s: %q is shown but does nothing", name, k)
				case !want && changed:
					t.Errorf("%s: %q is not shown but changed the screen (cmd %v):\n%s", name, k, cmd != nil, screenText(m))
				}
			}
		})
	}
}

// TestHelpBarListsOnlyEnabledKeys: the short help never names a key that
// is disabled.
func TestHelpBarListsOnlyEnabledKeys(t *testing.T) {
	for name, build := range keyStates {
		m := build(t)
		bar := m.keys.shortHelp(m.st, 200, false)
		for _, b := range m.keys.all() {
			h := b.Help()
			if !b.Enabled() && strings.Contains(bar, h.Key+" "+h.Desc) {
				t.Errorf("%s: disabled %q in the help bar %q", name, h.Key+" "+h.Desc, bar)
			}
		}
	}
}

// inputStates are the states where a text input has the keys: the
// emergency downgrade's reason, the host filter (fleet, run, done) and the
// log view's search.
var inputStates = map[string]func(t *testing.T) *model{
	"reason": func(t *testing.T) *model { return screens["reason"](t, 80, 24) },
	"reason-from-picker": func(t *testing.T) *model {
		m := keyStates["fleet-downgrade-pick"](t)
		press(t, m, "enter")
		return m
	},
	"filter-fleet": func(t *testing.T) *model {
		m := keyStates["fleet"](t)
		press(t, m, "/")
		return m
	},
	"filter-run": func(t *testing.T) *model {
		m := keyStates["run"](t)
		press(t, m, "/", "w", "e", "b")
		return m
	},
	"filter-done": func(t *testing.T) *model {
		m := keyStates["done"](t)
		press(t, m, "/")
		return m
	},
	"log-search": func(t *testing.T) *model {
		m := keyStates["log"](t)
		press(t, m, "/", "r", "e", "q")
		return m
	},
}

// inputValue is the text of the input that has the keys.
func inputValue(m *model) string {
	switch {
	case m.logv != nil && m.logv.searching:
		return m.logv.search.Value()
	case m.filtering:
		return m.filter.Value()
	case m.screen == screenReason:
		return m.reason.Value()
	}
	return ""
}

// TestEveryKeyInEveryInputState: in a text input every key leaves the
// model consistent — a printable key types (q and ? included: they do
// not quit or toggle the help), nothing reaches the run, the screen and
// dialog stay, only the input's own keys are offered — and esc always
// leaves the input.
func TestEveryKeyInEveryInputState(t *testing.T) {
	own := func(m *model) []string {
		k := &m.keys
		return []string{k.AcceptFilter.Help().Key, k.ClearFilter.Help().Key, k.SubmitReason.Help().Key, k.Back.Help().Key}
	}
	for name, build := range inputStates {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			probe := build(t)
			if !probe.textInput() {
				t.Fatalf("%s is not a text input state (screen %v)", name, probe.screen)
			}
			for _, b := range probe.keys.all() {
				if b.Enabled() && !slices.Contains(own(probe), b.Help().Key) {
					t.Errorf("%s offers %q while typing", name, b.Help().Key+" "+b.Help().Desc)
				}
			}
			if bar := ansi.Strip(probe.keys.shortHelp(probe.st, 200, true)); !strings.Contains(bar, "ctrl+c quit") {
				t.Errorf("%s: the help bar does not say how to quit while typing: %q", name, bar)
			}
			for _, k := range allKeys {
				m := build(t)
				scr, dlg, calls, val := m.screen, m.dialog, handleCalls(m), inputValue(m)
				msg := keyPress(k)
				_, cmd := m.Update(msg)
				drain(t, m, cmd, 0)
				_ = screenText(m) // renders
				if handleCalls(m) != calls {
					t.Errorf("%s: %q reached the run: %v", name, k, m.handle.(*fakeHandle).Calls())
				}
				if cmd != nil && isQuit(cmd) {
					t.Errorf("%s: %q quit the TUI while typing", name, k)
				}
				switch k {
				case "esc":
					if m.textInput() {
						t.Errorf("%s: esc did not leave the input", name)
					}
				case "enter":
					// Accepts (the filter, the search) or submits (the
					// reason): either way the model is still on a screen
					// that renders, checked above.
				default:
					if !m.textInput() || m.screen != scr || m.dialog != dlg {
						t.Errorf("%s: %q left the input: input %v, screen %v→%v, dialog %v→%v", name, k, m.textInput(), scr, m.screen, dlg, m.dialog)
					}
					if r := []rune(msg.Text); len(r) == 1 && inputValue(m) != val+msg.Text {
						t.Errorf("%s: %q did not type: %q → %q", name, k, val, inputValue(m))
					}
				}
			}
		})
	}
}
