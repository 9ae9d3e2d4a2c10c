package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// playEngine is a synthetic engine that plays a script the test writes,
// blocking in its gate like rollout.Engine with a tui.Gate.
type playEngine struct {
	*engine
	play func(pe *playEngine, p *plan.Plan, s *script, emit func())
}

func newPlayBackend(n int, play func(pe *playEngine, p *plan.Plan, s *script, emit func())) (*fakeBackend, *playEngine) {
	b, e := newEngineBackend(n)
	pe := &playEngine{engine: e, play: play}
	b.onStart = func(p *plan.Plan, ch chan event.Event) {
		defer close(ch)
		s := newScript()
		emit := func() {
			for _, ev := range s.evs {
				ch <- ev
			}
			s.evs = nil
		}
		pe.play(pe, p, s, emit)
		emit()
		e.mu.Lock()
		e.finished = true
		e.mu.Unlock()
	}
	b.startWith(e)
	return b, pe
}

// ask emits a canary gate and waits for the answer, as the engine does.
func (pe *playEngine) ask(s *script, emit func(), st plan.Step) rollout.Decision {
	s.add(event.Event{Type: event.GateRequested, Control: event.CtlCanaryGate, Step: st.ID, Version: st.To, Message: "the canary runs " + st.To + ": promote it to the rest of the fleet, or roll back"})
	emit()
	d, _ := pe.gate.Approve(context.Background(), st)
	s.add(event.Event{Type: event.GateAnswered, Step: st.ID, Message: string(d)})
	emit()
	return d
}

// playPlan plays p's steps in order; at a gate it asks, and a rollback
// answer plays plan.Rollback's plan (the planner's own) and ends there.
func playPlan(pe *playEngine, p *plan.Plan, s *script, emit func()) {
	s.started(p)
	prog := plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}}
	sum := &event.Summary{Kind: p.Kind, From: p.From, To: p.To, Versions: map[string]string{}}
	for _, st := range p.Steps {
		prog.Started[st.ID] = true
		switch st.Kind {
		case plan.StepDeploy:
			s.deployStartID(st.ID, st.Host).deployEndID(st.ID, st.Host, st.To)
			sum.Versions[st.Host] = st.To
			if st.Hop == len(p.Hops)-1 {
				sum.Upgraded = append(sum.Upgraded, st.Host)
			}
		case plan.StepGate:
			switch pe.ask(s, emit, st) {
			case rollout.Promote:
			case rollout.RollBack:
				inv := inventory(pe.t, len(p.DeployHosts()))
				rb, err := plan.Rollback(inv, p, prog)
				if err != nil {
					s.add(event.Event{Type: event.RunFinished, Outcome: event.OutcomeFailed, Summary: &event.Summary{Kind: p.Kind, From: p.From, To: p.To, Error: err.Error()}})
					return
				}
				s.add(event.Event{Type: event.PlanChanged, Plan: rb, Message: "the operator chose rollback"})
				back := &event.Summary{Kind: p.Kind, From: p.From, To: p.To, Versions: map[string]string{}}
				for _, r := range rb.Steps {
					if r.Kind == plan.StepDeploy {
						s.step(r.ID, r.Host).state(r.Host, event.HostRolledBack, r.To, "").stepDone(r.ID, r.Host)
						back.RolledBack = append(back.RolledBack, r.Host)
						back.Versions[r.Host] = r.To
					}
				}
				s.add(event.Event{Type: event.RunFinished, Outcome: event.OutcomeRolledBack, Summary: back})
				return
			default:
				s.add(event.Event{Type: event.RunFinished, Outcome: event.OutcomeAborted, Summary: sum})
				return
			}
		case plan.StepPostMigrate:
			s.step(st.ID, st.Host).stepDone(st.ID, st.Host)
			sum.PostMigrated = true
		default:
			s.step(st.ID, st.Host).stepDone(st.ID, st.Host)
		}
		prog.Finished[st.ID] = true
		if len(s.evs) > 40 {
			emit()
		}
	}
	s.add(event.Event{Type: event.RunFinished, Outcome: event.OutcomeSucceeded, Summary: sum})
}

func teaModel(t *testing.T, b *fakeBackend, o Options, w, h int) *teatest.TestModel {
	if o.App == "" {
		o.App = "shop"
	}
	return teatest.NewTestModel(t, probed{newModel(context.Background(), b, o)}, teatest.WithInitialTermSize(w, h), pinned())
}

func finalModel(t *testing.T, tm *teatest.TestModel) *model {
	return tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(probed).m
}

// TestTeaGate2OfTwoHopsRollsBackTo140: gate 2 of a two-hop upgrade says
// that r sends the canary back to 1.4.0, and it does.
func TestTeaGate2OfTwoHopsRollsBackTo140(t *testing.T) {
	b, pe := newPlayBackend(6, playPlan)
	pe.t = t
	p := twoHopPlan(t, 6)
	tm := teaModel(t, b, Options{Plan: p}, 100, 30)
	tm.Send(keyMsg("enter"))
	tm.Type("y")
	waitState(t, tm, "gate 1", func(m *model) bool { return m.dialog == dlgGate && m.run.gate.to == "1.4.0" })
	tm.Type("p")
	var gateText string
	waitState(t, tm, "gate 2", func(m *model) bool {
		if m.dialog == dlgGate && m.run.gate != nil && m.run.gate.to == "2.0.0" {
			gateText = screenText(m)
			return true
		}
		return false
	})
	for _, want := range []string{"In service on 2.0.0: web1 (", "r sends web1 back to 1.4.0", "r roll back"} {
		if !strings.Contains(gateText, want) {
			t.Errorf("gate 2 lacks %q:\n%s", want, gateText)
		}
	}
	if strings.Contains(gateText, "gate answered: promote") || strings.Contains(gateText, "web2 (") {
		t.Errorf("gate 2 shows gate 1's answer or a host on 1.4.0 as the canary:\n%s", gateText)
	}
	tm.Type("r")
	waitState(t, tm, "the rollback confirmation", func(m *model) bool { return m.dialog == dlgRollback })
	tm.Type("y")
	var done string
	waitState(t, tm, "the summary", func(m *model) bool {
		done = screenText(m)
		return m.screen == screenDone
	})
	if !strings.Contains(done, "ROLLED BACK") || !strings.Contains(done, "rolled back (1): web1") {
		t.Errorf("summary:\n%s", done)
	}
	tm.Type("q")
	fm := finalModel(t, tm)
	if fm.outcome != event.OutcomeRolledBack || fm.summary.Versions["web1"] != "1.4.0" {
		t.Fatalf("outcome %q versions %v", fm.outcome, fm.summary.Versions)
	}
	if !pe.handle.has("answer: promote") || !pe.handle.has("answer: rollback") {
		t.Fatalf("calls %v", pe.handle.Calls())
	}
}

// TestTeaDowngradeFromThePicker: d, the only declared target, a reason,
// the plan, y; the summary says downgraded.
func TestTeaDowngradeFromThePicker(t *testing.T) {
	b, pe := newPlayBackend(4, playPlan)
	pe.t = t
	for i := range b.hosts {
		b.hosts[i].Version = "1.4.0"
	}
	b.targets = []string{"2.0.0", "1.4.0", "1.3.2"}
	b.plans["down 1.3.2"] = downgradePlan(t, 4)
	tm := teaModel(t, b, Options{}, 80, 24)
	waitState(t, tm, "the fleet", func(m *model) bool { return !m.loading && len(m.hosts) == 4 })
	tm.Type("d")
	waitState(t, tm, "the picker", func(m *model) bool { return m.down.probed })
	tm.Send(keyMsg("enter"))
	waitState(t, tm, "the reason", func(m *model) bool { return m.screen == screenReason && m.downTo == "1.3.2" })
	tm.Type("checkout returns 500")
	tm.Send(keyMsg("enter"))
	waitState(t, tm, "the downgrade plan", func(m *model) bool { return m.screen == screenPlan && m.plan.Kind == plan.KindDowngrade })
	tm.Send(keyMsg("enter"))
	tm.Type("y")
	var done string
	waitState(t, tm, "the summary", func(m *model) bool {
		done = screenText(m)
		return m.screen == screenDone
	})
	if !strings.Contains(done, "downgraded (4)") || !strings.Contains(done, "EMERGENCY DOWNGRADE") {
		t.Errorf("summary:\n%s", done)
	}
	tm.Type("q")
	fm := finalModel(t, tm)
	if fm.outcome != event.OutcomeSucceeded || len(b.started) != 1 || b.started[0].Reason != "checkout returns 500" {
		t.Fatalf("outcome %q started %d", fm.outcome, len(b.started))
	}
}

// TestTeaSixtyHosts: a 60-host run followed to its end, then inspected.
func TestTeaSixtyHosts(t *testing.T) {
	b, pe := newPlayBackend(60, playPlan)
	pe.t = t
	p := upgradePlan(t, 60)
	tm := teaModel(t, b, Options{Plan: p}, 100, 30)
	tm.Send(keyMsg("enter"))
	tm.Type("y")
	var gate string
	waitState(t, tm, "the canary gate", func(m *model) bool {
		gate = screenText(m)
		return m.dialog == dlgGate
	})
	if !strings.Contains(gate, "1/60 hosts") || !strings.Contains(gate, "in service 1 · failed 0 · waiting 59") {
		t.Errorf("at the gate:\n%s", gate)
	}
	tm.Type("p")
	waitState(t, tm, "the summary", func(m *model) bool { return m.screen == screenDone })
	tm.Type("t")
	var tl string
	waitState(t, tm, "the timeline", func(m *model) bool {
		tl = screenText(m)
		return m.showTimeline
	})
	for _, want := range []string{"batch 1 (1.3.2 → 1.4.0)", "batch 6 (1.3.2 → 1.4.0)", "gate: gate/canary"} {
		if !strings.Contains(tl, want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl)
		}
	}
	tm.Type("t")
	tm.Type("/")
	tm.Type("web42")
	tm.Send(keyMsg("enter"))
	tm.Send(keyMsg("enter"))
	var log string
	waitState(t, tm, "web42's log", func(m *model) bool {
		log = screenText(m)
		return m.logv != nil
	})
	if !strings.Contains(log, "log: web42") || !strings.Contains(log, "deploy web42 (1.3.2 → 1.4.0)") {
		t.Errorf("log:\n%s", log)
	}
	tm.Type("q")
	fm := finalModel(t, tm)
	if fm.outcome != event.OutcomeSucceeded || len(fm.summary.Upgraded) != 60 {
		t.Fatalf("outcome %q upgraded %d", fm.outcome, len(fm.summary.Upgraded))
	}
}

// TestTeaSecondOperatorRefusedBeforeStart: the fleet is locked by another
// run; the preview reads the lock as it opens, says who holds it (holder,
// run id, since), and its start key is off in the help bar; enter says why
// instead of asking. Once that run has ended, R reads the lock again and
// the start is on.
func TestTeaSecondOperatorRefusedBeforeStart(t *testing.T) {
	b := newFakeBackend(3)
	b.plans["up 1.4.0"] = upgradePlan(t, 3)
	tm := teaModel(t, b, Options{}, 80, 24)
	waitState(t, tm, "the fleet", func(m *model) bool { return !m.loading && m.lock == nil })
	// bob starts a run after the fleet screen looked: the preview must
	// not trust that look.
	b.setLock(&rollout.LockInfo{Owner: "bob@ops2", RunID: "20260314T080000Z-77aa", Started: 1773475200, LeaseUntil: 1773475260, Now: 1773475210})
	tm.Send(keyMsg("enter"))
	var scr string
	waitState(t, tm, "the locked preview", func(m *model) bool {
		scr = screenText(m)
		return m.screen == screenPlan && !m.lockReading && m.lock != nil
	})
	flat := strings.Join(strings.Fields(scr), " ")
	for _, want := range []string{"LOCKED: the fleet's lock is held by bob@ops2 (run 20260314T080000Z-77aa) since 2026-03-14T08:00:00Z", "enter start: off (fleet locked)", "R re-read lock"} {
		if !strings.Contains(flat, want) {
			t.Errorf("the preview does not say %q:\n%s", want, scr)
		}
	}
	if strings.Contains(flat, "enter start…") {
		t.Errorf("the start key is offered while locked:\n%s", scr)
	}
	tm.Send(keyMsg("enter"))
	waitState(t, tm, "why the start is off", func(m *model) bool {
		scr = screenText(m)
		return strings.Contains(m.notice, "start is off")
	})
	waitState(t, tm, "no start dialog", func(m *model) bool { return m.dialog == dlgNone && !m.starting })

	// bob's run ends; R reads the lock again and the start is on.
	b.setLock(nil)
	tm.Type("R")
	waitState(t, tm, "the free preview", func(m *model) bool {
		scr = screenText(m)
		return !m.lockReading && m.lock == nil && m.keys.StartPlan.Enabled()
	})
	if !strings.Contains(scr, "lock: free") || strings.Contains(scr, "LOCKED") {
		t.Errorf("the preview still says locked:\n%s", scr)
	}
	tm.Type("q")
	fm := finalModel(t, tm)
	if fm.run != nil || len(b.started) != 0 {
		t.Fatalf("a run started: %v, Start called %d time(s)", fm.run != nil, len(b.started))
	}
}

// TestTeaStartRereadsTheLock: the preview saw the lock free, then another
// operator took it: the start reads the lock again and is refused, with
// the whole reason on screen and no run started.
func TestTeaStartRereadsTheLock(t *testing.T) {
	b := newFakeBackend(3)
	b.plans["up 1.4.0"] = upgradePlan(t, 3)
	tm := teaModel(t, b, Options{}, 80, 24)
	waitState(t, tm, "the fleet", func(m *model) bool { return !m.loading })
	tm.Send(keyMsg("enter"))
	waitState(t, tm, "the free preview", func(m *model) bool { return m.screen == screenPlan && !m.lockReading && m.keys.StartPlan.Enabled() })
	tm.Send(keyMsg("enter"))
	waitState(t, tm, "the start dialog", func(m *model) bool { return m.dialog == dlgStart })
	b.setLock(&rollout.LockInfo{Owner: "bob@ops2", RunID: "20260314T080000Z-77aa", LeaseUntil: 300, Now: 200})
	tm.Type("y")
	var refused string
	waitState(t, tm, "the refusal", func(m *model) bool {
		refused = screenText(m)
		return m.err != "" && !m.starting
	})
	flat := strings.Join(strings.Fields(refused), " ")
	if !strings.Contains(flat, "the fleet is locked by bob@ops2 (run") || !strings.Contains(flat, "a second operator cannot start a run; wait for that run to end (relctl status shows it)") {
		t.Errorf("the refusal is cut:\n%s", refused)
	}
	tm.Type("q")
	fm := finalModel(t, tm)
	if fm.run != nil || fm.outcome != "" || fm.screen != screenPlan {
		t.Fatalf("a run started: %v %q %v", fm.run != nil, fm.outcome, fm.screen)
	}
	if len(b.started) != 0 {
		t.Fatalf("Start called %d time(s): the second operator was not refused before start", len(b.started))
	}
}
