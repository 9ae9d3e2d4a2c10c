package tui

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// updating reports -update: the flag is defined by x/exp/golden (which
// teatest imports), and rewrites these golden files too.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// golden compares the ANSI-stripped view with testdata/<name>-<w>x<h>.golden.
func golden(t *testing.T, m *model, name string) {
	t.Helper()
	got := screenText(m)
	w, h := m.size()
	if n := strings.Count(got, "\n") + 1; n != h {
		t.Errorf("%s: %d lines, want %d", name, n, h)
	}
	for i, l := range strings.Split(got, "\n") {
		if n := len([]rune(l)); n > w {
			t.Errorf("%s: line %d is %d wide, more than %d: %q", name, i+1, n, w, l)
		}
	}
	path := filepath.Join("testdata", fmt.Sprintf("%s-%dx%d.golden", name, w, h))
	if updating() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/tui -update writes it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from %s (go test ./internal/tui -update to accept):\n%s", name, path, got)
	}
}

var sizes = [][2]int{{80, 24}, {160, 48}, {60, 16}}

// screens builds each screen in a fixed state.
var screens = map[string]func(t *testing.T, w, h int) *model{
	"fleet": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(5)
		b.lock = nil
		m := testModel(t, b, Options{}, w, h)
		drain(t, m, m.Init(), 0)
		return m
	},
	"fleet-locked-unfinished": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(5)
		b.lock = &rollout.LockInfo{Owner: "bob@ops2", RunID: "20260314T080000Z-77aa"}
		b.servers[1].Status = "DRAIN"
		m := testModel(t, b, Options{Unfinished: unfinishedRun(upgradePlan(t, 5))}, w, h)
		drain(t, m, m.Init(), 0)
		return m
	},
	"plan": func(t *testing.T, w, h int) *model {
		return testModel(t, newFakeBackend(5), Options{Plan: upgradePlan(t, 5)}, w, h)
	},
	"plan-locked": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(5)
		b.lock = &rollout.LockInfo{Owner: "bob@ops2", RunID: "20260314T080000Z-77aa", Started: 1773475200, LeaseUntil: 1773475260, Now: 1773475210}
		m := testModel(t, b, Options{Plan: upgradePlan(t, 5)}, w, h)
		press(t, m, "R")
		return m
	},
	"plan-confirm": func(t *testing.T, w, h int) *model {
		m := testModel(t, newFakeBackend(5), Options{Plan: upgradePlan(t, 5)}, w, h)
		press(t, m, "enter")
		return m
	},
	"reason": func(t *testing.T, w, h int) *model {
		return testModel(t, newFakeBackend(5), Options{Downgrade: &struct{ To, Reason string }{To: "1.3.2"}}, w, h)
	},
	"run": func(t *testing.T, w, h int) *model {
		return midRun(t, w, h, Options{})
	},
	"run-demo": func(t *testing.T, w, h int) *model {
		m := midRun(t, w, h, Options{Demo: true})
		send(t, m, trafficMsg{stats: &TrafficStats{Requests: 12034, Failed: 3, P50: 2100 * time.Microsecond, P99: 9800 * time.Microsecond}})
		return m
	},
	"run-gate": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(5)
		p := upgradePlan(t, 5)
		s := newScript().prelude(p).deploy("web1", "1.4.0").gate()
		m := runningModelAt(t, b, p, Options{}, s.evs, w, h)
		return m
	},
	"run-rollback-confirm": func(t *testing.T, w, h int) *model {
		m := midRun(t, w, h, Options{})
		press(t, m, "r")
		return m
	},
	"run-past-pnr": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(3)
		p := upgradePlan(t, 3)
		s := newScript().prelude(p)
		for _, h := range p.DeployHosts() {
			s.deploy(h, "1.4.0")
		}
		s.step("post-migrate", "web1")
		return runningModelAt(t, b, p, Options{}, s.evs, w, h)
	},
	"run-emergency": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(4)
		p := downgradePlan(t, 4)
		s := newScript().prelude(p).deploy("web1", "1.3.2").deployStart("web2")
		return runningModelAt(t, b, p, Options{}, s.evs, w, h)
	},
	"run-gate2": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(6)
		p := twoHopPlan(t, 6)
		return runningModelAt(t, b, p, Options{}, twoHopToGate2(p).evs, w, h)
	},
	"run-60-hosts": func(t *testing.T, w, h int) *model {
		return sixtyHostRun(t, w, h)
	},
	"log": func(t *testing.T, w, h int) *model {
		m := midRun(t, w, h, Options{})
		sel := m.selectedRow()
		for i := range 40 {
			sel.add(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("request %d served in %dms", i, i*3))
		}
		sel.add(t0.Add(time.Minute), "a long line: "+strings.Repeat("checkout latency above the threshold ", 6))
		press(t, m, "enter", "pgup", "pgup")
		return m
	},
	"log-search": func(t *testing.T, w, h int) *model {
		m := midRun(t, w, h, Options{})
		press(t, m, "enter", "/")
		for _, r := range "drain" {
			send(t, m, tea.KeyPressMsg{Code: r, Text: string(r)})
		}
		press(t, m, "enter")
		return m
	},
	"done-timeline": func(t *testing.T, w, h int) *model {
		m := doneModel(t, w, h)
		press(t, m, "t")
		return m
	},
	"downgrade-pick": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(4)
		for i := range b.hosts {
			b.hosts[i].Version = "1.4.0"
		}
		b.targets = []string{"2.0.0", "1.4.0", "1.3.2"}
		b.plans["down 1.3.2"] = downgradePlan(t, 4)
		m := testModel(t, b, Options{}, w, h)
		drain(t, m, m.Init(), 0)
		press(t, m, "d")
		return m
	},
	"plan-end": func(t *testing.T, w, h int) *model {
		m := testModel(t, newFakeBackend(5), Options{Plan: twoHopPlan(t, 5)}, w, h)
		for range 100 {
			press(t, m, "pgdown")
		}
		return m
	},
	"done": func(t *testing.T, w, h int) *model { return doneModel(t, w, h) },
	"done-left-drained": func(t *testing.T, w, h int) *model {
		b := newFakeBackend(5)
		p := upgradePlan(t, 5)
		s := newScript().prelude(p).deploy("web1", "1.4.0")
		m := runningModelAt(t, b, p, Options{}, s.evs, w, h)
		feed(t, m, event.Event{Type: event.RunFinished, Outcome: event.OutcomeRolledBack, Time: s.now.Add(time.Second), Summary: &event.Summary{
			Kind: plan.KindUpgrade, From: "1.3.2", To: "1.4.0", RolledBack: []string{"web1", "web2"},
			LeftDrained: map[string]string{"web3": "web3: health: not healthy within 1m0s (60 checks): exit status 1; going back to 1.3.2 failed: start: exit status 2"},
			Elapsed:     3*time.Minute + 12*time.Second, Journal: "/home/ana/.local/state/relctl/shop/20260314T093000Z-ab12.jsonl",
			Error: "rolled back after: web3: health: not healthy within 1m0s"}})
		return m
	},
}

// midRun: canary promoted, batch 2 under way (web2 switching, web3 draining).
func midRun(t *testing.T, w, h int, o Options) *model {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deploy("web1", "1.4.0").gate().
		add(event.Event{Type: event.GateAnswered, Step: "gate/canary", Message: "promote"}).
		deployStart("web2").deployStart("web3")
	return runningModelAt(t, b, p, o, s.evs, w, h)
}

func runningModelAt(t *testing.T, b *fakeBackend, p *plan.Plan, o Options, evs []event.Event, w, h int) *model {
	m := runningModel(t, b, p, o, nil)
	send(t, m, tickMsg(t0)) // a fixed clock
	m.ticking = false
	send(t, m, eventsMsg(evs)) // and what the events start (the gate's balancer look)
	sendResize(t, m, w, h)
	return m
}

func sendResize(t *testing.T, m *model, w, h int) {
	t.Helper()
	send(t, m, tea_WindowSize(w, h))
}

func TestGoldenScreens(t *testing.T) {
	for name, build := range screens {
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("%s-%dx%d", name, sz[0], sz[1]), func(t *testing.T) {
				t.Parallel()
				m := build(t, sz[0], sz[1])
				golden(t, m, name)
			})
		}
	}
}

// sixtyHostRun: hop 1 of a two-hop upgrade of 60 hosts, three in service,
// one failed, a 25% batch in flight.
func sixtyHostRun(t *testing.T, w, h int) *model {
	b := newFakeBackend(60)
	p := twoHopPlan(t, 60)
	s := newScript().started(p)
	for _, st := range p.Steps {
		if st.Kind == plan.StepPreflight || st.Kind == plan.StepLock || st.Kind == plan.StepStage || st.ID == "migrate@1.4.0" {
			s.step(st.ID, st.Host).stepDone(st.ID, st.Host)
		}
	}
	for _, h := range []string{"web1", "web2", "web3"} {
		s.deployStartID("deploy/"+h+"@1.4.0", h).deployEndID("deploy/"+h+"@1.4.0", h, "1.4.0")
	}
	s.state("web40", event.HostFailed, "", "web40: health: not healthy")
	for i := 4; i <= 18; i++ {
		h := fmt.Sprintf("web%d", i)
		s.deployStartID("deploy/"+h+"@1.4.0", h)
	}
	return runningModelAt(t, b, p, Options{}, s.evs, w, h)
}

// TestTooSmallNote is the note the running TUI shows in a window shrunk
// under 60×16 (a terminal that small from the start gets plain output).
func TestTooSmallNote(t *testing.T) {
	m := testModel(t, newFakeBackend(3), Options{}, 59, 16)
	golden(t, m, "too-small")
}

// doneModel is a finished three-host run.
func doneModel(t *testing.T, w, h int) *model {
	b := newFakeBackend(3)
	p := upgradePlan(t, 3)
	s := newScript().prelude(p)
	for _, h := range p.DeployHosts() {
		s.deploy(h, "1.4.0")
	}
	m := runningModelAt(t, b, p, Options{}, s.evs, w, h)
	feed(t, m, event.Event{Type: event.RunFinished, Outcome: event.OutcomeSucceeded, Time: s.now.Add(time.Second), Summary: &event.Summary{
		Kind: plan.KindUpgrade, From: "1.3.2", To: "1.4.0", Upgraded: []string{"web1", "web2", "web3"}, PostMigrated: true,
		Elapsed: 2*time.Minute + 5*time.Second, Journal: "/home/ana/.local/state/relctl/shop/20260314T093000Z-ab12.jsonl"}})
	return m
}
