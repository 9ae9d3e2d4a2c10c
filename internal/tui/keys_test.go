package tui

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

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
