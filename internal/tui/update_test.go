package tui

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// runningModel is a model whose run of p has started and shown evs.
func runningModel(t *testing.T, b *fakeBackend, p *plan.Plan, o Options, evs []event.Event) *model {
	t.Helper()
	o.Plan = p
	m := testModel(t, b, o, 80, 24)
	send(t, m, fleetMsg{hosts: b.hosts, servers: b.servers, targets: b.targets})
	press(t, m, "enter")
	if m.dialog != dlgStart {
		t.Fatalf("enter on the plan: dialog %v, want start", m.dialog)
	}
	press(t, m, "y")
	if m.screen != screenRun || m.handle == nil {
		t.Fatalf("after y: screen %v, handle %v", m.screen, m.handle)
	}
	if len(evs) > 0 {
		feed(t, m, evs...)
	}
	return m
}

func TestFleetPickTargetOpensPlanAndStarts(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	b.plans["up 1.4.0"] = p
	m := testModel(t, b, Options{}, 80, 24)
	drain(t, m, m.Init(), 0)
	if m.loading || len(m.hosts) != 5 {
		t.Fatalf("fleet not loaded: loading=%v hosts=%d", m.loading, len(m.hosts))
	}
	press(t, m, "enter")
	if m.screen != screenPlan || m.plan != p {
		t.Fatalf("enter on 1.4.0: screen %v", m.screen)
	}
	if !strings.Contains(strings.Join(m.planLines(80), "\n"), "POINT OF NO RETURN") {
		t.Error("the preview does not mark the point of no return")
	}
	press(t, m, "enter", "n")
	if m.dialog != dlgNone || len(b.started) != 0 {
		t.Fatal("n did not cancel the start")
	}
	press(t, m, "enter", "y")
	if len(b.started) != 1 || b.started[0] != p || m.screen != screenRun {
		t.Fatalf("y did not start the plan: started %d, screen %v", len(b.started), m.screen)
	}
}

func TestPlanErrorStaysOnFleet(t *testing.T) {
	b := newFakeBackend(3)
	m := testModel(t, b, Options{}, 80, 24)
	drain(t, m, m.Init(), 0)
	press(t, m, "enter")
	if m.screen != screenFleet || !strings.Contains(m.err, "no path to 1.4.0") {
		t.Fatalf("screen %v err %q", m.screen, m.err)
	}
}

func TestEventsAreAppliedAndRearmed(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deploy("web1", "1.4.0").deployStart("web2")
	m := runningModel(t, b, p, Options{}, nil)
	cmd := feed(t, m, s.evs...)
	if cmd == nil {
		t.Fatal("no waitForEvent re-armed after a batch")
	}
	r := m.run
	if got := r.rows[r.idx["web1"]].state; got != event.HostInService {
		t.Errorf("web1 %q", got)
	}
	if got := r.rows[r.idx["web2"]]; got.state != event.HostSwitching || !got.active() {
		t.Errorf("web2 %q active=%v", got.state, got.active())
	}
	if r.done != 1 || r.todo != 5 {
		t.Errorf("progress %d/%d, want 1/5", r.done, r.todo)
	}
	if !strings.Contains(r.phase, "batch 2/") {
		t.Errorf("phase %q", r.phase)
	}
	if _, ongoing := r.sideBySide(m.now); !ongoing {
		t.Error("old and new serve side by side once web1 is in service")
	}
}

func TestGatePromote(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deploy("web1", "1.4.0").gate()
	m := runningModel(t, b, p, Options{}, s.evs)
	if m.dialog != dlgGate {
		t.Fatalf("dialog %v, want gate", m.dialog)
	}
	if !strings.Contains(screenText(m), "Canary gate") {
		t.Error("the gate dialog is not on screen")
	}
	press(t, m, "p")
	if !b.handle.has("answer: promote") {
		t.Fatalf("calls %v", b.handle.Calls())
	}
	if m.dialog != dlgNone {
		t.Errorf("dialog %v after promote", m.dialog)
	}
	feed(t, m, event.Event{Type: event.GateAnswered, Step: "gate/canary", Message: "promote", Time: s.now})
	if m.run.gate != nil || m.dialog != dlgNone {
		t.Error("gate still open after GateAnswered")
	}
}

func TestGateRollbackConfirmsAndAnswers(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deploy("web1", "1.4.0").gate()
	m := runningModel(t, b, p, Options{}, s.evs)
	press(t, m, "r")
	if m.dialog != dlgRollback {
		t.Fatalf("dialog %v, want rollback confirmation", m.dialog)
	}
	press(t, m, "n")
	if m.dialog != dlgGate {
		t.Fatalf("n went to %v, want back to the gate", m.dialog)
	}
	press(t, m, "r", "y")
	if !b.handle.has("answer: rollback") || b.handle.has("\nrollback") {
		t.Fatalf("calls %v", b.handle.Calls())
	}
}

func TestRollbackListsExactlyStartedHostsOfHop(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deploy("web1", "1.4.0").
		add(event.Event{Type: event.GateAnswered, Step: "gate/canary", Message: "promote"}).
		deploy("web2", "1.4.0").deployStart("web3")
	m := runningModel(t, b, p, Options{}, s.evs)
	got := m.run.rollbackHosts()
	// plan.Rollback's order: the reverse of their upgrade.
	if want := []string{"web3", "web2", "web1"}; !slices.Equal(got, want) {
		t.Fatalf("rollback hosts %v, want %v", got, want)
	}
	press(t, m, "r")
	if m.dialog != dlgRollback {
		t.Fatalf("dialog %v", m.dialog)
	}
	text := screenText(m)
	if !strings.Contains(text, "These 3 host(s) go back to 1.3.2") || !strings.Contains(text, "web3, web2, web1") {
		t.Fatalf("confirmation does not list the hosts:\n%s", text)
	}
	if strings.Contains(text, "web4,") || strings.Contains(text, "web5") && strings.Contains(text, "go back") && strings.Contains(text, "web5,") {
		t.Fatalf("confirmation lists hosts that were not touched:\n%s", text)
	}
	if !strings.Contains(text, "paused while you decide") {
		t.Fatalf("the confirmation does not say the run is held:\n%s", text)
	}
	press(t, m, "y")
	// r holds the run (no new host starts while the list is read), y asks
	// for the rollback and lets the engine go on with it.
	if calls := b.handle.Calls(); !slices.Equal(calls, []string{"pause", "rollback", "resume"}) {
		t.Fatalf("calls %v, want [pause rollback resume]", calls)
	}
}

func TestRollbackDeclinedResumesTheRun(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deploy("web1", "1.4.0").
		add(event.Event{Type: event.GateAnswered, Step: "gate/canary", Message: "promote"}).
		deployStart("web2")
	m := runningModel(t, b, p, Options{}, s.evs)
	press(t, m, "r", "n")
	if m.dialog != dlgNone {
		t.Fatalf("dialog %v", m.dialog)
	}
	if calls := b.handle.Calls(); !slices.Equal(calls, []string{"pause", "resume"}) {
		t.Fatalf("calls %v, want [pause resume]", calls)
	}
}

func TestRollbackDisabledPastPointOfNoReturn(t *testing.T) {
	b := newFakeBackend(2)
	p := upgradePlan(t, 2)
	s := newScript().prelude(p)
	for _, h := range p.DeployHosts() {
		s.deploy(h, "1.4.0")
	}
	s.step("post-migrate", "web1")
	m := runningModel(t, b, p, Options{}, s.evs)
	if m.keys.Rollback.Enabled() {
		t.Fatal("r is enabled after post-migrate started")
	}
	help := screenText(m)
	if !strings.Contains(help, "r off (past post-migrate)") || !strings.Contains(help, "d downgrade after the run") {
		t.Fatalf("the help does not say why:\n%s", help)
	}
	press(t, m, "r")
	if m.dialog != dlgNone || len(b.handle.Calls()) != 0 {
		t.Fatalf("r past the point of no return: dialog %v calls %v", m.dialog, b.handle.Calls())
	}
	if !m.keys.Downgrade.Enabled() {
		t.Fatal("d does not offer the downgrade")
	}
	press(t, m, "d")
	if !m.downgradeAfter {
		t.Fatal("d during the run does not queue the downgrade")
	}
	feed(t, m, event.Event{Type: event.RunFinished, Outcome: event.OutcomeFailed, Time: s.now.Add(time.Second),
		Summary: &event.Summary{Kind: plan.KindUpgrade, From: "1.3.2", To: "1.4.0", PostMigrated: true, Error: "post-migrate: exit 1"}})
	// The summary comes first: how the run ended is never skipped.
	if m.screen != screenDone || !strings.Contains(screenText(m), "FAILED") || !strings.Contains(m.notice, "press d") {
		t.Fatalf("after the run: screen %v notice %q\n%s", m.screen, m.notice, screenText(m))
	}
	press(t, m, "d")
	if m.screen != screenFleet || !m.emergency || !m.downgradePick {
		t.Fatalf("d on the summary: screen %v emergency %v pick %v", m.screen, m.emergency, m.downgradePick)
	}
}

func TestPauseResumeAbort(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deployStart("web1")
	m := runningModel(t, b, p, Options{}, s.evs)
	press(t, m, "space")
	if !m.run.paused || !b.handle.has("pause") {
		t.Fatalf("space: paused %v calls %v", m.run.paused, b.handle.Calls())
	}
	if !m.keys.Resume.Enabled() || m.keys.Pause.Enabled() {
		t.Error("help still offers pause while paused")
	}
	press(t, m, "space")
	if m.run.paused || !b.handle.has("resume") {
		t.Fatalf("space again: paused %v calls %v", m.run.paused, b.handle.Calls())
	}
	press(t, m, "a")
	if m.dialog != dlgAbort || !strings.Contains(screenText(m), "In flight now: web1") {
		t.Fatalf("abort dialog:\n%s", screenText(m))
	}
	press(t, m, "y")
	if !b.handle.has("abort: aborted by the operator") {
		t.Fatalf("calls %v", b.handle.Calls())
	}
}

func TestQuitDuringRunAbortsAndWaits(t *testing.T) {
	b := newFakeBackend(3)
	p := upgradePlan(t, 3)
	s := newScript().prelude(p).deployStart("web1")
	m := runningModel(t, b, p, Options{}, s.evs)
	_, cmd := m.Update(keyMsg("q"))
	if m.dialog != dlgQuit || cmd != nil {
		t.Fatalf("q during a run: dialog %v cmd %v", m.dialog, cmd)
	}
	_, cmd = m.Update(keyMsg("y"))
	for _, msg := range runCmd(cmd) {
		if _, ok := msg.(tea.QuitMsg); ok {
			t.Fatal("quit before the run finished")
		}
	}
	if !m.quitting || !b.handle.has("abort: the operator quit the TUI") {
		t.Fatalf("quitting %v calls %v", m.quitting, b.handle.Calls())
	}
	// The host in flight finishes; only RunFinished lets the program end.
	cmd = feed(t, m, newScript().deployEnd("web1", "1.4.0").evs...)
	if msgs := runCmd(cmd); len(msgs) > 0 {
		if _, ok := msgs[0].(tea.QuitMsg); ok {
			t.Fatal("quit with the run still going")
		}
	}
	cmd = feed(t, m, event.Event{Type: event.RunFinished, Outcome: event.OutcomeAborted, Summary: &event.Summary{Upgraded: []string{"web1"}}})
	msgs := runCmd(cmd)
	if len(msgs) != 1 {
		t.Fatalf("after RunFinished: %v", msgs)
	}
	if _, ok := msgs[0].(tea.QuitMsg); !ok {
		t.Fatalf("after RunFinished: %T, want quit", msgs[0])
	}
	if m.outcome != event.OutcomeAborted {
		t.Errorf("outcome %q", m.outcome)
	}
}

func TestQuitAtGateAnswersAbort(t *testing.T) {
	b := newFakeBackend(3)
	p := upgradePlan(t, 3)
	s := newScript().prelude(p).deploy("web1", "1.4.0").gate()
	m := runningModel(t, b, p, Options{}, s.evs)
	press(t, m, "q", "y")
	if !b.handle.has("abort: the operator quit the TUI") || !b.handle.has("answer: abort") {
		t.Fatalf("calls %v: the engine waits in the gate and must be answered", b.handle.Calls())
	}
}

func TestFailedGate(t *testing.T) {
	b := newFakeBackend(3)
	p := upgradePlan(t, 3)
	s := newScript().prelude(p).deployStart("web1").
		state("web1", event.HostFailed, "", "web1: health: not healthy within 1m0s").
		add(event.Event{Type: event.Control, Control: event.CtlPausedForFailure, Message: "paused for the operator (on_failure: pause): web1: health: not healthy"})
	m := runningModel(t, b, p, Options{}, s.evs)
	if m.dialog != dlgGate || !m.run.gate.failed || !m.keys.GateStop.Enabled() {
		t.Fatalf("dialog %v gate %+v", m.dialog, m.run.gate)
	}
	press(t, m, "s")
	if !b.handle.has("answer: stop") {
		t.Fatalf("calls %v", b.handle.Calls())
	}
}

func TestRunFinishedShowsSummary(t *testing.T) {
	b := newFakeBackend(3)
	p := upgradePlan(t, 3)
	s := newScript().prelude(p)
	m := runningModel(t, b, p, Options{}, s.evs)
	feed(t, m, event.Event{Type: event.RunFinished, Outcome: event.OutcomeRolledBack, Time: s.now.Add(time.Minute), Summary: &event.Summary{
		Kind: plan.KindUpgrade, From: "1.3.2", To: "1.4.0", RolledBack: []string{"web1", "web2"},
		LeftDrained: map[string]string{"web3": "health: exit 1; going back to 1.3.2 failed: start: exit 2"},
		Elapsed:     3*time.Minute + 12*time.Second, Journal: "/home/ana/.local/state/relctl/shop/20260314T093000Z-ab12.jsonl",
	}})
	if m.screen != screenDone {
		t.Fatalf("screen %v", m.screen)
	}
	text := screenText(m)
	for _, want := range []string{"LEFT DRAINED", "web3: health: exit 1", "rolled back (2): web1, web2", "took 3m12s", "journal: /home/ana"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	press(t, m, "esc")
	if m.screen != screenFleet {
		t.Errorf("esc on the summary: %v", m.screen)
	}
}

func TestEmergencyDowngradeFromFleet(t *testing.T) {
	b := newFakeBackend(4)
	dg := downgradePlan(t, 4)
	b.plans["down 1.3.2"] = dg
	b.targets = []string{"1.4.0", "1.3.2"}
	m := testModel(t, b, Options{}, 80, 24)
	drain(t, m, m.Init(), 0)
	press(t, m, "d")
	if !m.emergency || !m.downgradePick {
		t.Fatal("d does not open the downgrade pick")
	}
	press(t, m, "down", "enter")
	if m.screen != screenReason || m.downTo != "1.3.2" {
		t.Fatalf("screen %v downTo %q", m.screen, m.downTo)
	}
	press(t, m, "enter")
	if m.planning || !strings.Contains(m.notice, "reason is required") {
		t.Fatalf("empty reason accepted: planning %v notice %q", m.planning, m.notice)
	}
	for _, r := range "checkout 500" {
		send(t, m, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	press(t, m, "enter")
	if m.screen != screenPlan || m.plan != dg || len(b.reasons) == 0 || b.reasons[len(b.reasons)-1] != "checkout 500" {
		t.Fatalf("screen %v reasons %q", m.screen, b.reasons)
	}
	if !strings.Contains(screenText(m), "EMERGENCY DOWNGRADE") {
		t.Fatal("no emergency banner on the plan")
	}
	press(t, m, "enter", "y")
	if m.screen != screenRun || !m.emergency || len(b.started) != 1 {
		t.Fatalf("screen %v emergency %v", m.screen, m.emergency)
	}
}

func TestDowngradeOptionAsksReason(t *testing.T) {
	b := newFakeBackend(2)
	b.plans["down 1.3.2"] = downgradePlan(t, 2)
	m := testModel(t, b, Options{Downgrade: &struct{ To, Reason string }{To: "1.3.2"}}, 80, 24)
	if m.screen != screenReason || !m.emergency {
		t.Fatalf("screen %v emergency %v", m.screen, m.emergency)
	}
	m2 := testModel(t, b, Options{Downgrade: &struct{ To, Reason string }{To: "1.3.2", Reason: "500s"}}, 80, 24)
	drain(t, m2, m2.Init(), 0)
	if m2.screen != screenPlan || m2.plan == nil {
		t.Fatalf("with a reason: screen %v", m2.screen)
	}
}

func unfinishedRun(p *plan.Plan) *journal.Run {
	return &journal.Run{ID: "20260314T080000Z-77aa", Owner: "bob@ops2", Original: p, Plan: p,
		Progress:         plan.Progress{Started: map[string]bool{"deploy/web1": true, "deploy/web2": true}, Finished: map[string]bool{"deploy/web1": true}},
		OriginalProgress: plan.Progress{Started: map[string]bool{"deploy/web1": true, "deploy/web2": true}, Finished: map[string]bool{"deploy/web1": true}},
		Hosts:            map[string]event.HostState{"web1": event.HostInService, "web2": event.HostSwitching},
		LeftDrained:      map[string]string{}}
}

func TestUnfinishedRunOffersResumeAndRollback(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	m := testModel(t, b, Options{Unfinished: unfinishedRun(p)}, 80, 24)
	if m.dialog != dlgUnfinished {
		t.Fatalf("dialog %v", m.dialog)
	}
	text := screenText(m)
	if !strings.Contains(text, "did not finish") || !strings.Contains(text, "web2: switching") {
		t.Fatalf("banner:\n%s", text)
	}
	press(t, m, "r")
	if !slices.Equal(b.resumed, []bool{true}) || m.screen != screenRun {
		t.Fatalf("resumed %v screen %v", b.resumed, m.screen)
	}
	if got := m.run.rollbackHosts(); !slices.Equal(got, []string{"web2", "web1"}) {
		t.Errorf("resumed run's rollback hosts %v", got)
	}
	m = testModel(t, b, Options{Unfinished: unfinishedRun(p)}, 80, 24)
	press(t, m, "c")
	if !slices.Equal(b.resumed, []bool{true, false}) {
		t.Fatalf("resumed %v", b.resumed)
	}
}

func TestFilterAndScroll1000Hosts(t *testing.T) {
	b := newFakeBackend(1000)
	p := upgradePlan(t, 1000)
	m := runningModel(t, b, p, Options{}, newScript().prelude(p).evs)
	if len(m.run.rows) != 1000 {
		t.Fatalf("%d rows", len(m.run.rows))
	}
	for range 30 {
		press(t, m, "down")
	}
	if sel := m.selectedRow(); sel == nil || sel.name != m.run.rows[30].name {
		t.Fatalf("selected %v", sel)
	}
	text := screenText(m)
	if !strings.Contains(text, m.run.rows[30].name+" ") || strings.Contains(text, m.run.rows[0].name+" ") && strings.Contains(text, "web1 ") && m.run.rows[0].name == "web1" && strings.Contains(text, "\n  web1 ") {
		t.Fatalf("the list did not scroll:\n%s", text)
	}
	press(t, m, "/")
	for _, r := range "web99" {
		send(t, m, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	press(t, m, "enter")
	if n := len(m.runOrder()); n != 11 { // web99, web990..web999
		t.Fatalf("filter web99: %d rows", n)
	}
	if sel := m.selectedRow(); sel == nil || !strings.HasPrefix(sel.name, "web99") {
		t.Fatalf("selected %v", sel)
	}
}

func TestInterruptWithoutRunQuits(t *testing.T) {
	m := testModel(t, newFakeBackend(1), Options{}, 80, 24)
	_, cmd := m.Update(interruptMsg{})
	if msgs := runCmd(cmd); len(msgs) != 1 {
		t.Fatalf("%v", msgs)
	} else if _, ok := msgs[0].(tea.QuitMsg); !ok {
		t.Fatalf("%T", msgs[0])
	}
}

func TestGateAnswerNeverBlocks(t *testing.T) {
	g := NewGate()
	g.Answer(rollout.RollBack) // before the engine waits
	g.Answer(rollout.Promote)  // replaces it
	d, err := g.Approve(context.Background(), plan.Step{})
	if err != nil || d != rollout.Promote {
		t.Fatalf("%v %v", d, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := g.Failed(ctx, "x"); err == nil || d != rollout.Stop {
		t.Fatalf("cancelled Failed: %v %v", d, err)
	}
	done := make(chan rollout.Decision)
	go func() { d, _ := g.Approve(context.Background(), plan.Step{}); done <- d }()
	time.Sleep(10 * time.Millisecond)
	g.Answer(rollout.Abort)
	if d := <-done; d != rollout.Abort {
		t.Fatalf("%v", d)
	}
}

func TestViewCopesWithNoSize(t *testing.T) {
	m := newModel(context.Background(), newFakeBackend(2), Options{})
	if got := screenText(m); !strings.Contains(got, "relctl") {
		t.Fatalf("%q", got)
	}
}

func TestNoColorDegrades(t *testing.T) {
	m := midRun(t, 80, 24, Options{})
	press(t, m, "r")
	raw := m.View().Content
	if !strings.Contains(raw, "\x1b[") {
		t.Fatal("the view has no styling at all")
	}
	for _, env := range [][]string{{"TERM=xterm-256color", "NO_COLOR=1"}, {"TERM=dumb"}} {
		var buf strings.Builder
		w := colorprofile.NewWriter(&buf, env)
		if _, err := w.WriteString(raw); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, c := range []string{"\x1b[31", "\x1b[32", "\x1b[33", "\x1b[36", "\x1b[91", "\x1b[38;", "\x1b[41"} {
			if strings.Contains(out, c) {
				t.Errorf("%v: colour %q survives", env, c)
			}
		}
		if !strings.Contains(ansi.Strip(out), "Roll back 3 host(s)?") {
			t.Errorf("%v: text lost", env)
		}
	}
}

func TestHelpToggleAndResize(t *testing.T) {
	m := midRun(t, 80, 24, Options{})
	short := screenText(m)
	press(t, m, "?")
	if !m.help.ShowAll || screenText(m) == short {
		t.Fatal("? does not show the full help")
	}
	if n := strings.Count(screenText(m), "\n") + 1; n != 24 {
		t.Fatalf("full help: %d lines", n)
	}
	press(t, m, "?")
	send(t, m, tea.WindowSizeMsg{Width: 100, Height: 30})
	if n := strings.Count(screenText(m), "\n") + 1; n != 30 {
		t.Fatalf("after resize: %d lines", n)
	}
	send(t, m, tea.WindowSizeMsg{Width: 20, Height: 6})
	_ = screenText(m) // tiny windows must not panic
}

func TestResumedRollbackRunDisablesR(t *testing.T) {
	b := newFakeBackend(3)
	p := upgradePlan(t, 3)
	m := testModel(t, b, Options{Unfinished: unfinishedRun(p)}, 80, 24)
	press(t, m, "r")
	inv := inventory(t, 3)
	rb, err := plan.Rollback(inv, p, plan.Progress{Started: map[string]bool{"deploy/web1": true, "deploy/web2": true}})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, m, event.Event{Type: event.RunStarted, Plan: rb, Owner: "ana@ops1", Time: t0})
	if m.keys.Rollback.Enabled() || len(m.run.rows) == 0 {
		t.Fatalf("rollback key enabled during a rollback run; rows %d", len(m.run.rows))
	}
	if !strings.Contains(screenText(m), "0/2 hosts back") {
		t.Fatalf("progress:\n%s", screenText(m))
	}
}

func TestDowngradeRefusedGoesBackToPick(t *testing.T) {
	b := newFakeBackend(2)
	m := testModel(t, b, Options{Downgrade: &struct{ To, Reason string }{To: "1.0.0", Reason: "500s"}}, 80, 24)
	drain(t, m, m.Init(), 0)
	if m.screen != screenFleet || !m.downgradePick || !strings.Contains(m.err, "downgrade refused") {
		t.Fatalf("screen %v pick %v err %q", m.screen, m.downgradePick, m.err)
	}
	if !strings.Contains(screenText(m), "downgrade refused") {
		t.Fatalf("the refusal is not on screen:\n%s", screenText(m))
	}
}
