package tui

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// probed wraps the model so a test can look at its state from inside the
// program's event loop (the renderer only redraws changed cells, so the
// output is a poor thing to wait on).
type probed struct{ m *model }

type probeMsg struct {
	f    func(*model)
	done chan struct{}
}

func (p probed) Init() tea.Cmd { return p.m.Init() }
func (p probed) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if pm, ok := msg.(probeMsg); ok {
		pm.f(p.m)
		close(pm.done)
		return p, nil
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}
func (p probed) View() tea.View { return p.m.View() }

// waitState waits until cond holds for the model (generously: the race
// detector on a busy machine).
func waitState(t *testing.T, tm *teatest.TestModel, what string, cond func(*model) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var ok bool
		pm := probeMsg{f: func(m *model) { ok = cond(m) }, done: make(chan struct{})}
		tm.Send(pm)
		select {
		case <-pm.done:
		case <-time.After(time.Second):
		}
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// engine is a synthetic engine: it plays a run and blocks at the gate
// until the handle is answered, like rollout.Engine with a tui.Gate.
type engine struct {
	t        testing.TB
	gate     *Gate
	handle   *engineHandle
	mu       sync.Mutex
	finished bool
}

type engineHandle struct {
	fakeHandle
	gate  *Gate
	abort chan struct{}
	once  sync.Once
}

func (h *engineHandle) Answer(d rollout.Decision) { h.rec("answer: " + string(d)); h.gate.Answer(d) }
func (h *engineHandle) Abort(why string) {
	h.rec("abort: " + why)
	h.once.Do(func() { close(h.abort) })
}

func newEngineBackend(n int) (*fakeBackend, *engine) {
	b := newFakeBackend(n)
	g := NewGate()
	e := &engine{gate: g, handle: &engineHandle{gate: g, abort: make(chan struct{})}}
	b.handle = nil
	b.onStart = func(p *plan.Plan, ch chan event.Event) { e.play(p, ch) }
	return b, e
}

func (e *engine) play(p *plan.Plan, ch chan event.Event) {
	defer close(ch)
	emit := func(s *script) {
		for _, ev := range s.evs {
			ch <- ev
		}
	}
	s := newScript()
	emit(s.prelude(p).deploy("web1", p.To).gate())
	s.evs = nil
	d, _ := e.gate.Approve(context.Background(), plan.Step{ID: "gate/canary"})
	emit(s.add(event.Event{Type: event.GateAnswered, Step: "gate/canary", Message: string(d)}))
	s.evs = nil
	outcome := event.OutcomeSucceeded
	sum := &event.Summary{Kind: p.Kind, From: p.From, To: p.To, Upgraded: []string{"web1"}}
	switch d {
	case rollout.Promote:
		for _, h := range p.DeployHosts()[1:] {
			s.deploy(h, p.To)
			sum.Upgraded = append(sum.Upgraded, h)
		}
		s.step("post-migrate", "web1").stepDone("post-migrate", "web1")
		sum.PostMigrated = true
	default:
		outcome = event.OutcomeAborted
	}
	e.mu.Lock()
	e.finished = true
	e.mu.Unlock()
	emit(s.add(event.Event{Type: event.RunFinished, Outcome: outcome, Summary: sum}))
}

func (b *fakeBackend) startWith(e *engine) {
	b.handleOverride = e.handle
}

func pinned() teatest.TestOption {
	return teatest.WithProgramOptions(
		tea.WithEnvironment([]string{"TERM=xterm-256color", "NO_COLOR=1"}),
		tea.WithColorProfile(colorprofile.Ascii),
	)
}

func TestTeaRoutineUpgrade(t *testing.T) {
	b, e := newEngineBackend(4)
	b.startWith(e)
	b.plans["up 1.4.0"] = upgradePlan(t, 4)
	tm := teatest.NewTestModel(t, probed{newModel(context.Background(), b, Options{App: "shop"})}, teatest.WithInitialTermSize(80, 24), pinned())
	waitState(t, tm, "the fleet", func(m *model) bool { return !m.loading && len(m.targets) > 0 })
	tm.Send(keyMsg("enter"))
	waitState(t, tm, "the plan preview", func(m *model) bool { return m.screen == screenPlan })
	tm.Send(keyMsg("enter"))
	tm.Type("y")
	waitState(t, tm, "the canary gate", func(m *model) bool { return m.dialog == dlgGate })
	tm.Type("p")
	waitState(t, tm, "the summary", func(m *model) bool { return m.screen == screenDone })
	tm.Type("q")
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(probed).m
	if fm.outcome != event.OutcomeSucceeded || fm.summary == nil || len(fm.summary.Upgraded) != 4 {
		t.Fatalf("outcome %q summary %+v", fm.outcome, fm.summary)
	}
	if !e.handle.has("answer: promote") {
		t.Fatalf("calls %v", e.handle.Calls())
	}
}

func TestTeaQuitAtGateWaitsForRunFinished(t *testing.T) {
	b, e := newEngineBackend(3)
	b.startWith(e)
	p := upgradePlan(t, 3)
	tm := teatest.NewTestModel(t, probed{newModel(context.Background(), b, Options{App: "shop", Plan: p})}, teatest.WithInitialTermSize(80, 24), pinned())
	tm.Send(keyMsg("enter"))
	tm.Type("y")
	waitState(t, tm, "the canary gate", func(m *model) bool { return m.dialog == dlgGate })
	tm.Type("q")
	waitState(t, tm, "the quit question", func(m *model) bool { return m.dialog == dlgQuit })
	tm.Type("y")
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(probed).m
	e.mu.Lock()
	finished := e.finished
	e.mu.Unlock()
	if !finished || fm.outcome != event.OutcomeAborted {
		t.Fatalf("quit before the run finished: engine finished %v, outcome %q", finished, fm.outcome)
	}
	if !e.handle.has("abort: the operator quit the TUI") {
		t.Fatalf("calls %v", e.handle.Calls())
	}
}

func TestRunQuitsOnQ(t *testing.T) {
	b := newFakeBackend(2)
	in, w := io.Pipe()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, _, err := Run(context.Background(), b, Options{App: "shop"}, in, &out,
			tea.WithEnvironment([]string{"TERM=dumb"}), tea.WithWindowSize(80, 24))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := w.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after q")
	}
	w.Close()
	if !strings.Contains(out.String(), "relctl") {
		t.Errorf("nothing drawn: %q", out.String())
	}
}

func TestRunEndsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	in, w := io.Pipe()
	defer w.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := Run(ctx, newFakeBackend(1), Options{}, in, io.Discard, tea.WithWindowSize(80, 24))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
}
