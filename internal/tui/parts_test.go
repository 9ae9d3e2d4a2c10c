package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// twoHopPlan: 1.3.2 → 1.4.0 → 2.0.0 on n hosts, each hop with its
// canary gate and its post-migrate.
func twoHopPlan(t testing.TB, n int) *plan.Plan {
	t.Helper()
	inv := inventory(t, n)
	p, err := plan.Build(inv, plan.Assume(inv, "1.3.2"), plan.Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hops) != 2 {
		t.Fatalf("hops %v", p.Hops)
	}
	return p
}

// twoHopToGate2 plays a two-hop run up to its second canary gate: hop 1
// done and post-migrated, web1 on 2.0.0, the rest on 1.4.0.
func twoHopToGate2(p *plan.Plan) *script {
	s := newScript().started(p)
	for _, st := range p.Steps {
		switch {
		case st.Kind == plan.StepPreflight || st.Kind == plan.StepLock || st.Kind == plan.StepStage:
			s.step(st.ID, st.Host).stepDone(st.ID, st.Host)
		case st.Hop == 0 && st.Kind == plan.StepMigrate, st.Hop == 0 && st.Kind == plan.StepPostMigrate, st.Hop == 1 && st.Kind == plan.StepMigrate:
			s.step(st.ID, st.Host).stepDone(st.ID, st.Host)
		case st.Hop == 0 && st.Kind == plan.StepDeploy:
			s.deployStartID(st.ID, st.Host).deployEndID(st.ID, st.Host, st.To)
		case st.Hop == 0 && st.Kind == plan.StepGate:
			s.add(event.Event{Type: event.GateRequested, Control: event.CtlCanaryGate, Step: st.ID, Version: st.To, Message: "the canary runs " + st.To})
			s.add(event.Event{Type: event.GateAnswered, Step: st.ID, Message: "promote"})
		case st.Hop == 1 && st.Kind == plan.StepDeploy && st.Batch == 1:
			s.deployStartID(st.ID, st.Host).deployEndID(st.ID, st.Host, st.To)
		case st.Hop == 1 && st.Kind == plan.StepGate:
			s.add(event.Event{Type: event.GateRequested, Control: event.CtlCanaryGate, Step: st.ID, Version: st.To, Message: "the canary runs " + st.To + ": promote it to the rest of the fleet, or roll back"})
			return s
		}
	}
	return s
}

func TestPlanScrollStopsAtTheEnd(t *testing.T) {
	for _, k := range []string{"pgdown", "ctrl+d", "j"} {
		t.Run(k, func(t *testing.T) {
			m := testModel(t, newFakeBackend(5), Options{Plan: upgradePlan(t, 5)}, 80, 24)
			msg := keyMsg(k)
			if k == "ctrl+d" {
				msg = tea.KeyPressMsg{Code: 'd', Mod: tea.ModCtrl}
			}
			end := m.planMaxTop()
			if end == 0 {
				t.Fatal("the plan fits: nothing to scroll")
			}
			for range 200 {
				send(t, m, msg)
			}
			if m.planTop != end {
				t.Fatalf("planTop %d, want the end %d", m.planTop, end)
			}
			lines := strings.Split(screenText(m), "\n")
			if !strings.Contains(lines[1], fmt.Sprintf("of %d", end+m.planHeight())) {
				t.Fatalf("position: %q", lines[1])
			}
			text := screenText(m)
			last := m.planLines(80)
			if want := strings.TrimSpace(last[len(last)-1]); !strings.Contains(text, want) {
				t.Fatalf("the end of the plan %q is not on screen:\n%s", want, text)
			}
			if m.keys.Down.Enabled() || m.keys.PageDown.Enabled() {
				t.Error("the help still offers scrolling down at the end")
			}
			for range 200 {
				press(t, m, "k")
			}
			if m.planTop != 0 || m.keys.Up.Enabled() {
				t.Fatalf("planTop %d at the top, up enabled %v", m.planTop, m.keys.Up.Enabled())
			}
		})
	}
}

func TestOutputPaneStopsAtItsStart(t *testing.T) {
	m := midRun(t, 80, 24, Options{})
	sel := m.selectedRow()
	for i := range 100 {
		sel.add(t0, fmt.Sprintf("line %d", i))
	}
	for range 50 {
		press(t, m, "pgup")
	}
	if m.outScroll != m.outMaxScroll() || m.outScroll == 0 {
		t.Fatalf("outScroll %d, max %d", m.outScroll, m.outMaxScroll())
	}
	text := screenText(m)
	if !strings.Contains(text, "── stage 1.4.0 on "+sel.name) {
		t.Fatalf("the first line is not on screen at the start:\n%s", text)
	}
	if m.keys.PageUp.Enabled() {
		t.Error("pgup offered at the start of the output")
	}
	for range 50 {
		press(t, m, "pgdown")
	}
	if m.outScroll != 0 || !strings.Contains(screenText(m), "line 99") {
		t.Fatalf("outScroll %d", m.outScroll)
	}
}

func TestDoneKeepsHostListFilterAndLogs(t *testing.T) {
	m := doneModel(t, 80, 24)
	press(t, m, "down")
	if sel := m.selectedRow(); sel == nil || sel.name != "web2" {
		t.Fatalf("down on the summary: %v", sel)
	}
	press(t, m, "/", "w", "e", "b", "3", "enter")
	if n := len(m.runOrder()); n != 1 {
		t.Fatalf("filter: %d rows", n)
	}
	press(t, m, "enter")
	if m.logv == nil || m.logv.host != "web3" {
		t.Fatalf("enter opens no log: %+v", m.logv)
	}
	text := screenText(m)
	if !strings.Contains(text, "log: web3") || !strings.Contains(text, "09:3") || !strings.Contains(text, "shop 1.4.0 listening on :8080") {
		t.Fatalf("log view:\n%s", text)
	}
	press(t, m, "esc")
	if m.logv != nil || m.screen != screenDone {
		t.Fatalf("esc: log %v screen %v", m.logv, m.screen)
	}
	press(t, m, "t")
	text = screenText(m)
	for _, want := range []string{"START", "TOOK", "stage", "batch 1 (1.3.2 → 1.4.0)", "batch 2 (1.3.2 → 1.4.0)"} {
		if !strings.Contains(text, want) {
			t.Errorf("timeline lacks %q:\n%s", want, text)
		}
	}
}

func TestLogViewWrapFollowSearch(t *testing.T) {
	m := midRun(t, 80, 24, Options{})
	sel := m.selectedRow()
	long := strings.Repeat("x", 150) + " END"
	sel.add(t0, long)
	for i := range 60 {
		sel.add(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("line %02d", i))
	}
	press(t, m, "l")
	if m.logv == nil {
		t.Fatal("l opens no log")
	}
	text := screenText(m)
	if !strings.Contains(text, "line 59") || !strings.Contains(text, "follow on") {
		t.Fatalf("following, the end is not on screen:\n%s", text)
	}
	// More output arrives: following shows it.
	feed(t, m, event.Event{Type: event.StepOutput, Host: sel.name, Line: "new line", Time: t0.Add(time.Hour)})
	if !strings.Contains(screenText(m), "new line") {
		t.Fatal("follow does not show new output")
	}
	press(t, m, "f")
	if m.logv.follow {
		t.Fatal("f does not stop following")
	}
	press(t, m, "/")
	for _, r := range "END" {
		send(t, m, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	press(t, m, "enter")
	text = screenText(m)
	if !strings.Contains(text, "END") || !strings.Contains(text, "match 1 of 1") {
		t.Fatalf("search for END:\n%s", text)
	}
	// Wrapped: the long line is whole, over two lines.
	if !strings.Contains(text, strings.Repeat("x", 60)) {
		t.Fatalf("long line:\n%s", text)
	}
	press(t, m, "w")
	if m.logv.wrap {
		t.Fatal("w does not turn wrap off")
	}
	if strings.Contains(screenText(m), " END") {
		t.Fatal("unwrapped, the long line's end is still shown")
	}
	press(t, m, "/")
	for _, r := range "line 1" {
		send(t, m, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	press(t, m, "enter")
	first := m.logv.hit
	press(t, m, "n")
	if m.logv.hit <= first {
		t.Fatalf("n: hit %d after %d", m.logv.hit, first)
	}
	if !strings.Contains(screenText(m), "match 2 of 10") {
		t.Fatalf("n:\n%s", screenText(m))
	}
	press(t, m, "esc")
	if m.logv != nil {
		t.Fatal("esc does not close the log")
	}
}

func TestGate2OfTwoHops(t *testing.T) {
	b := newFakeBackend(6)
	p := twoHopPlan(t, 6)
	s := twoHopToGate2(p)
	m := runningModel(t, b, p, Options{}, s.evs)
	if m.dialog != dlgGate {
		t.Fatalf("dialog %v", m.dialog)
	}
	text := screenText(m)
	if !strings.Contains(text, "In service on 2.0.0: web1 (healthy after 3 check(s) in 2.1s)") {
		t.Errorf("the gate does not list the canary on 2.0.0:\n%s", text)
	}
	for _, h := range []string{"web2", "web3", "web4", "web5", "web6"} {
		if strings.Contains(text, "2.0.0: web1 (healthy after 3 check(s) in 2.1s), "+h) {
			t.Errorf("%s runs 1.4.0 but is listed as on 2.0.0:\n%s", h, text)
		}
	}
	if strings.Contains(text, "gate answered: promote") {
		t.Errorf("the header keeps gate 1's answer:\n%s", text)
	}
	// Between the two post-migrates plan.Rollback sends the hop back to
	// 1.4.0: the gate offers r, the run screen agrees, and r works.
	if !m.keys.GateRollback.Enabled() || !strings.Contains(text, "r sends web1 back to 1.4.0") {
		t.Fatalf("r at gate 2 (enabled %v):\n%s", m.keys.GateRollback.Enabled(), text)
	}
	if strings.Contains(text, "past post-migrate") {
		t.Errorf("the run screen says rollback is off:\n%s", text)
	}
	undo := strings.Join(m.run.orig.Outline().Undo, "\n")
	if !strings.Contains(undo, "between post-migrate@1.4.0 and post-migrate@2.0.0: rollback goes back to 1.4.0 only") {
		t.Fatalf("the plan says otherwise: %s", undo)
	}
	press(t, m, "q")
	text = screenText(m)
	if m.dialog != dlgQuit || !strings.Contains(text, "These stay switched: web1 (2.0.0)") || !strings.Contains(text, "press r") {
		t.Fatalf("q at gate 2 does not say what stays switched:\n%s", text)
	}
	press(t, m, "n")
	if m.dialog != dlgGate {
		t.Fatalf("n: dialog %v", m.dialog)
	}
	press(t, m, "r")
	if m.dialog != dlgRollback || !strings.Contains(screenText(m), "go back to 1.4.0") {
		t.Fatalf("r at gate 2:\n%s", screenText(m))
	}
	press(t, m, "y")
	if !b.handle.has("answer: rollback") {
		t.Fatalf("calls %v", b.handle.Calls())
	}
}

func TestRollbackRefusedAfterTheHopsPostMigrate(t *testing.T) {
	b := newFakeBackend(3)
	p := twoHopPlan(t, 3)
	s := twoHopToGate2(p)
	s.add(event.Event{Type: event.GateAnswered, Step: "gate/canary@2.0.0", Message: "promote"})
	for _, h := range []string{"web2", "web3"} {
		s.deployStartID("deploy/"+h+"@2.0.0", h).deployEndID("deploy/"+h+"@2.0.0", h, "2.0.0")
	}
	s.step("post-migrate@2.0.0", "web1")
	m := runningModel(t, b, p, Options{}, s.evs)
	ok, why := m.run.canRollback()
	if ok || !strings.Contains(why, "post-migrate@2.0.0 started") {
		t.Fatalf("canRollback %v %q", ok, why)
	}
	if m.keys.Rollback.Enabled() || !m.keys.NoRollback.Enabled() || !strings.Contains(screenText(m), "past the point of no return") {
		t.Fatalf("keys r %v, screen:\n%s", m.keys.Rollback.Enabled(), screenText(m))
	}
}

func TestSixtyHosts(t *testing.T) {
	b := newFakeBackend(60)
	p := twoHopPlan(t, 60)
	s := newScript().started(p)
	for _, st := range p.Steps {
		if st.Kind == plan.StepPreflight || st.Kind == plan.StepLock || st.Kind == plan.StepStage || st.ID == "migrate@1.4.0" {
			s.step(st.ID, st.Host).stepDone(st.ID, st.Host)
		}
	}
	s.deployStartID("deploy/web1@1.4.0", "web1").deployEndID("deploy/web1@1.4.0", "web1", "1.4.0")
	s.add(event.Event{Type: event.GateAnswered, Step: "gate/canary@1.4.0", Message: "promote"})
	s.deployStartID("deploy/web2@1.4.0", "web2").deployEndID("deploy/web2@1.4.0", "web2", "1.4.0")
	s.deployStartID("deploy/web3@1.4.0", "web3").deployEndID("deploy/web3@1.4.0", "web3", "1.4.0")
	s.state("web40", event.HostFailed, "", "web40: health: not healthy")
	for i := 4; i <= 18; i++ { // a 25% batch in flight
		h := fmt.Sprintf("web%d", i)
		s.deployStartID("deploy/"+h+"@1.4.0", h)
	}
	m := runningModel(t, b, p, Options{}, s.evs)
	sendResize(t, m, 80, 24)
	text := screenText(m)
	if !strings.Contains(text, "3/60 hosts · hop 1/2") {
		t.Errorf("progress is not in hosts and hops:\n%s", text)
	}
	if !strings.Contains(text, "in flight 15 · in service 3 · failed 1 · waiting 41") {
		t.Errorf("counts:\n%s", text)
	}
	lines := strings.Split(text, "\n")
	var rows []string
	for _, l := range lines {
		if strings.Contains(l, " web") && (strings.Contains(l, "switching") || strings.Contains(l, "failed") || strings.Contains(l, "in service") || strings.Contains(l, "queued")) {
			rows = append(rows, l)
		}
	}
	if len(rows) < 3 || !strings.Contains(rows[0], "web40") || !strings.Contains(rows[1], "switching") {
		t.Fatalf("failed then in flight first:\n%s", text)
	}
	press(t, m, "s")
	text = screenText(m)
	if !strings.Contains(text, "web1 ") || strings.Index(text, "web1 ") > strings.Index(text, "web2 ") {
		t.Fatalf("s sorts by name:\n%s", text)
	}
}

func TestDowngradePickerOffersOnlyDeclaredPaths(t *testing.T) {
	b := newFakeBackend(4)
	for i := range b.hosts {
		b.hosts[i].Version = "1.4.0"
	}
	b.targets = []string{"2.0.0", "1.4.0", "1.3.2", "1.0.0"}
	b.plans["down 1.3.2"] = downgradePlan(t, 4)
	m := testModel(t, b, Options{}, 80, 24)
	drain(t, m, m.Init(), 0)
	press(t, m, "d")
	if got := m.pickable(); len(got) != 1 || got[0] != "1.3.2" {
		t.Fatalf("offered %v, want only 1.3.2", got)
	}
	text := screenText(m)
	if !strings.Contains(text, "1.4.0 running now") || strings.Contains(text, "▸ 1.4.0") {
		t.Fatalf("picker:\n%s", text)
	}
	press(t, m, "enter")
	for _, r := range "first reason" {
		send(t, m, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	press(t, m, "esc")
	press(t, m, "enter")
	if m.screen != screenReason || m.reason.Value() != "" {
		t.Fatalf("the reason field keeps %q", m.reason.Value())
	}
}

func TestRefusalIsWrappedNotCut(t *testing.T) {
	b := newFakeBackend(3)
	m := testModel(t, b, Options{}, 80, 24)
	drain(t, m, m.Init(), 0)
	m.err = "downgrade refused: 1.4.0 → 1.0.0: 1.4.0 declares downgrade_to [1.3.2]; the last run's post-migrate to 1.4.0 ran, so going back to 1.0.0 is past the point of no return"
	text := screenText(m)
	if !strings.Contains(strings.Join(strings.Fields(text), " "), "so going back to 1.0.0 is past the point of no return") {
		t.Fatalf("the refusal is cut:\n%s", text)
	}
}

func TestDowngradeSummarySaysDowngraded(t *testing.T) {
	b := newFakeBackend(2)
	p := downgradePlan(t, 2)
	s := newScript().prelude(p).deploy("web1", "1.3.2").deploy("web2", "1.3.2")
	m := runningModelAt(t, b, p, Options{}, s.evs, 80, 24)
	feed(t, m, event.Event{Type: event.RunFinished, Outcome: event.OutcomeSucceeded, Time: s.now, Summary: &event.Summary{
		Kind: plan.KindDowngrade, From: "1.4.0", To: "1.3.2", Upgraded: []string{"web1", "web2"}}})
	text := screenText(m)
	if !strings.Contains(text, "downgraded (2): web1, web2") || strings.Contains(text, "upgraded (") {
		t.Fatalf("summary:\n%s", text)
	}
}

func TestStaleFleetAfterARun(t *testing.T) {
	m := doneModel(t, 80, 24)
	if !m.fleetStale {
		t.Fatal("the fleet is not marked stale after a run")
	}
	b := m.b.(*fakeBackend)
	for i := range b.hosts {
		b.hosts[i].Version = "1.4.0"
	}
	_, cmd := m.Update(keyMsg("esc"))
	if !strings.Contains(screenText(m), "STALE: from before the run") {
		t.Fatalf("fleet before the refresh answered:\n%s", screenText(m))
	}
	drain(t, m, cmd, 0)
	if m.fleetStale || strings.Contains(screenText(m), "STALE") {
		t.Fatalf("still stale after the refresh:\n%s", screenText(m))
	}
}

func TestHelpKeepsQuitAndHelpEverywhere(t *testing.T) {
	for name, build := range screens {
		for _, sz := range [][2]int{{80, 24}, {60, 16}} {
			m := build(t, sz[0], sz[1])
			lines := strings.Split(screenText(m), "\n")
			last := lines[len(lines)-1]
			if m.emergency && len(lines) > 1 {
				last = lines[len(lines)-2]
			}
			want := []string{"? keys", "q quit"}
			if m.textInput() {
				want = []string{"ctrl+c quit"}
			}
			if m.dialog == dlgQuit {
				want = []string{"? keys", "q abort and quit"}
			}
			for _, w := range want {
				if !strings.Contains(last, w) {
					t.Errorf("%s at %dx%d: the help bar lacks %q: %q", name, sz[0], sz[1], w, last)
				}
			}
		}
	}
}

func TestUsable(t *testing.T) {
	for _, c := range []struct {
		term string
		w, h int
		ok   bool
	}{{"xterm", 80, 24, true}, {"dumb", 80, 24, false}, {"xterm", 59, 24, false}, {"xterm", 80, 15, false}, {"xterm", 60, 16, true}, {"xterm", 0, 0, true}} {
		ok, note := Usable(c.term, c.w, c.h)
		if ok != c.ok || ok == (note != "") {
			t.Errorf("Usable(%q, %d, %d) = %v, %q", c.term, c.w, c.h, ok, note)
		}
	}
	m := testModel(t, newFakeBackend(2), Options{}, 59, 15)
	if text := screenText(m); !strings.Contains(text, "at least 60×16") || strings.Contains(text, "plain output") {
		// The TUI is running: it asks for a larger window; it does not
		// claim to print plain output.
		t.Fatalf("too small:\n%s", text)
	}
	if !strings.Contains(NoInventory("fleet.yaml"), "relctl demo") {
		t.Fatal("no pointer to relctl demo")
	}
}

func TestFleetErrorIsWrappedNotCut(t *testing.T) {
	b := newFakeBackend(3)
	m := testModel(t, b, Options{}, 80, 24)
	drain(t, m, m.Init(), 0)
	send(t, m, fleetMsg{hosts: b.hosts, servers: b.servers, targets: b.targets,
		err: fmt.Errorf("web3: host key mismatch for 10.0.0.4:22: the key offered is SHA256:abc…, known_hosts line 12 says SHA256:def…; if the host was rebuilt, remove that line")})
	flat := strings.Join(strings.Fields(screenText(m)), " ")
	if !strings.Contains(flat, "if the host was rebuilt, remove that line") {
		t.Fatalf("the fleet error is cut:\n%s", screenText(m))
	}
	if !strings.Contains(screenText(m), "web3   1.3.2") {
		t.Fatalf("the host table is gone:\n%s", screenText(m))
	}
}

func TestLogFromTheGateReturnsToTheGate(t *testing.T) {
	m := screens["run-gate"](t, 80, 24)
	press(t, m, "enter")
	if m.logv == nil || !strings.Contains(screenText(m), "log: web1") {
		t.Fatalf("enter at the gate:\n%s", screenText(m))
	}
	press(t, m, "esc")
	if m.logv != nil || m.dialog != dlgGate || !strings.Contains(screenText(m), "Canary gate") {
		t.Fatalf("esc from the log: dialog %v\n%s", m.dialog, screenText(m))
	}
}

func TestFleetTableScrollsToItsLastHost(t *testing.T) {
	b := newFakeBackend(60)
	m := testModel(t, b, Options{}, 80, 24)
	drain(t, m, m.Init(), 0)
	if !strings.Contains(screenText(m), "1–") || !strings.Contains(screenText(m), "of 60 (pgup/pgdn)") {
		t.Fatalf("no position line:\n%s", screenText(m))
	}
	for range 20 {
		press(t, m, "pgdown")
	}
	text := screenText(m)
	if !strings.Contains(text, "web60 ") || !strings.Contains(text, "–60 of 60") || m.keys.PageDown.Enabled() {
		t.Fatalf("the end of the fleet:\n%s", text)
	}
}

func TestExpiredLockDoesNotRefuseTheStart(t *testing.T) {
	b := newFakeBackend(3)
	b.lock = &rollout.LockInfo{Owner: "bob@ops2", RunID: "20260314T080000Z-77aa", LeaseUntil: 100, Now: 200}
	m := testModel(t, b, Options{Plan: upgradePlan(t, 3)}, 80, 24)
	press(t, m, "enter", "y")
	if len(b.started) != 1 || m.screen != screenRun {
		t.Fatalf("an expired lease refused the start: started %d, err %q", len(b.started), m.err)
	}
	b2 := newFakeBackend(3)
	b2.lock = &rollout.LockInfo{Owner: "bob@ops2", RunID: "20260314T080000Z-77aa", LeaseUntil: 300, Now: 200}
	m2 := testModel(t, b2, Options{Plan: upgradePlan(t, 3)}, 80, 24)
	press(t, m2, "enter", "y")
	if len(b2.started) != 0 || m2.screen != screenPlan || !strings.Contains(m2.err, "locked by bob@ops2") {
		t.Fatalf("a live lock: started %d, screen %v, err %q", len(b2.started), m2.screen, m2.err)
	}
}

// TestUnfinishedRollbackAsThePlannerSays: an unfinished two-hop run in its
// second hop may still roll that hop back (post-migrate@1.4.0 ran, not
// post-migrate@2.0.0); one past its last post-migrate may not.
func TestUnfinishedRollbackAsThePlannerSays(t *testing.T) {
	p := twoHopPlan(t, 3)
	prog := plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}}
	for _, st := range p.Steps {
		prog.Started[st.ID] = true
		prog.Finished[st.ID] = true
		if st.ID == "deploy/web1@2.0.0" {
			break
		}
	}
	u := unfinishedRun(p)
	u.Progress, u.OriginalProgress, u.PostMigrated = prog, prog, true
	m := testModel(t, newFakeBackend(3), Options{Unfinished: u}, 80, 24)
	if !m.keys.RollbackRun.Enabled() || !strings.Contains(screenText(m), "r sends web1 back to 1.4.0") {
		t.Fatalf("between the post-migrates:\n%s", screenText(m))
	}
	prog2 := plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}}
	for _, st := range p.Steps {
		prog2.Started[st.ID] = true
		if st.ID == "post-migrate@2.0.0" {
			break
		}
	}
	u2 := unfinishedRun(p)
	u2.Progress, u2.OriginalProgress, u2.PostMigrated = prog2, prog2, true
	m2 := testModel(t, newFakeBackend(3), Options{Unfinished: u2}, 80, 24)
	if m2.keys.RollbackRun.Enabled() || !strings.Contains(strings.Join(strings.Fields(screenText(m2)), " "), "Rollback is refused") {
		t.Fatalf("past the last post-migrate:\n%s", screenText(m2))
	}
	press(t, m2, "r")
	if m2.dialog != dlgUnfinished {
		t.Fatal("r past the last post-migrate did something")
	}
}

// A lock that cannot be read is unknown, never "free": an operator must not
// take a fleet for unlocked because the lock host did not answer.
func TestLockThatCannotBeReadIsUnknown(t *testing.T) {
	b := newFakeBackend(3)
	m := testModel(t, b, Options{}, 160, 48)
	drain(t, m, m.Init(), 0)
	why := errors.New("read lock on web1: ssh: connect to 10.0.0.11:22: connection refused")
	send(t, m, fleetMsg{hosts: b.hosts, servers: b.servers, targets: b.targets, lockErr: why, err: why})
	text := screenText(m)
	if strings.Contains(text, "lock: free") {
		t.Fatalf("an unreadable lock is shown as free:\n%s", text)
	}
	if !strings.Contains(strings.Join(strings.Fields(text), " "), "lock: unknown (read lock on web1") {
		t.Fatalf("the lock is not shown as unknown with why:\n%s", text)
	}
}
