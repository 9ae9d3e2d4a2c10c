package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

var t0 = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

// inventory is a valid inventory of n hosts web1..webN; web1 is the canary.
func inventory(t testing.TB, n int) *fleet.Inventory {
	t.Helper()
	var b strings.Builder
	b.WriteString(`app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands:
  stop: stop
  start: start
  health: check
  migrate: migrate
  post_migrate: migrate --post
balancer: {kind: none}
rollout: {batches: [1, 2, "25%"], pause_after_canary: true, on_failure: rollback}
emergency: {batches: ["50%"], drain_timeout: 5s}
releases:
  "1.4.0": {upgrade_from: ">=1.0.0", downgrade_to: ["1.3.2"]}
  "2.0.0": {upgrade_from: ">=1.4.0", downgrade_to: ["1.4.0"]}
hosts:
`)
	for i := 1; i <= n; i++ {
		labels := ""
		if i == 1 {
			labels = ", labels: [canary]"
		}
		fmt.Fprintf(&b, "  - {name: web%d, address: 10.0.%d.%d%s}\n", i, i/250, i%250+1, labels)
	}
	inv, err := fleet.Parse("fleet.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func upgradePlan(t testing.TB, n int) *plan.Plan {
	t.Helper()
	inv := inventory(t, n)
	p, err := plan.Build(inv, plan.Assume(inv, "1.3.2"), plan.Options{To: "1.4.0"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func downgradePlan(t testing.TB, n int) *plan.Plan {
	t.Helper()
	inv := inventory(t, n)
	p, err := plan.Downgrade(inv, plan.Assume(inv, "1.4.0"), plan.DowngradeOptions{To: "1.3.2", Reason: "checkout returns 500"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeHandle records the calls the TUI makes.
type fakeHandle struct {
	mu    sync.Mutex
	calls []string
}

func (h *fakeHandle) rec(s string) { h.mu.Lock(); h.calls = append(h.calls, s); h.mu.Unlock() }

func (h *fakeHandle) Pause()                    { h.rec("pause") }
func (h *fakeHandle) Resume()                   { h.rec("resume") }
func (h *fakeHandle) Abort(why string)          { h.rec("abort: " + why) }
func (h *fakeHandle) RequestRollback()          { h.rec("rollback") }
func (h *fakeHandle) Force()                    { h.rec("force") }
func (h *fakeHandle) Answer(d rollout.Decision) { h.rec("answer: " + string(d)) }
func (h *fakeHandle) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}
func (h *fakeHandle) has(s string) bool { return strings.Contains(strings.Join(h.Calls(), "\n"), s) }

// fakeBackend serves a fixed fleet and hands out a channel the test feeds.
type fakeBackend struct {
	mu      sync.Mutex
	hosts   []observe.Host
	lock    *rollout.LockInfo
	servers []lb.ServerState
	targets []string
	plans   map[string]*plan.Plan
	handle  *fakeHandle
	events  chan event.Event
	started []*plan.Plan
	resumed []bool
	traffic *TrafficStats
	onStart func(p *plan.Plan, ch chan event.Event) // optional: a synthetic run
	reasons []string
	// handleOverride is the Handle Start returns with onStart.
	handleOverride Handle
	// resumeErr, when set, is Resume's answer.
	resumeErr error
}

var _ Backend = (*fakeBackend)(nil)

func newFakeBackend(n int) *fakeBackend {
	b := &fakeBackend{targets: []string{"1.4.0", "1.3.2"}, handle: &fakeHandle{}, events: make(chan event.Event, 4096), plans: map[string]*plan.Plan{}}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("web%d", i)
		b.hosts = append(b.hosts, observe.Host{HostState: plan.HostState{Name: name, Version: "1.3.2", Releases: []string{"1.3.2"}, Reachable: true}, Health: "ok", HealthOK: true})
		b.servers = append(b.servers, lb.ServerState{Server: name, Status: lb.StatusUp, Sessions: i % 4, CheckStatus: "L7OK"})
	}
	return b
}

func (b *fakeBackend) Observe(context.Context) ([]observe.Host, error) { return b.hosts, nil }
func (b *fakeBackend) Lock(context.Context) (*rollout.LockInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lock, nil
}

// setLock changes the lock while the TUI runs.
func (b *fakeBackend) setLock(li *rollout.LockInfo) {
	b.mu.Lock()
	b.lock = li
	b.mu.Unlock()
}
func (b *fakeBackend) Balancer(context.Context) ([]lb.ServerState, error) {
	return b.servers, nil
}
func (b *fakeBackend) Targets() []string { return b.targets }
func (b *fakeBackend) PlanUpgrade(to string) (*plan.Plan, error) {
	if p := b.plans["up "+to]; p != nil {
		return p, nil
	}
	return nil, errors.New("no path to " + to)
}
func (b *fakeBackend) PlanDowngrade(to, reason string) (*plan.Plan, error) {
	b.mu.Lock()
	b.reasons = append(b.reasons, reason)
	b.mu.Unlock()
	if p := b.plans["down "+to]; p != nil {
		return p, nil
	}
	running := len(b.hosts) > 0
	for _, h := range b.hosts {
		running = running && h.Version == to
	}
	if running {
		// What plan.Downgrade answers: nothing to do.
		return &plan.Plan{Kind: plan.KindDowngrade, From: to, To: to, Reason: reason, Notes: []string{"nothing to do: every host runs " + to}}, nil
	}
	return nil, errors.New("downgrade refused: 1.4.0 declares no downgrade_to " + to)
}
func (b *fakeBackend) PlanRollback() (*plan.Plan, error) { return nil, errors.New("not used") }
func (b *fakeBackend) Start(p *plan.Plan) (Handle, <-chan event.Event, error) {
	b.mu.Lock()
	b.started = append(b.started, p)
	b.mu.Unlock()
	if b.onStart != nil {
		ch := make(chan event.Event, 64)
		go b.onStart(p, ch)
		return b.handleOverride, ch, nil
	}
	return b.handle, b.events, nil
}
func (b *fakeBackend) Resume(rollback bool) (Handle, <-chan event.Event, error) {
	b.mu.Lock()
	b.resumed = append(b.resumed, rollback)
	err := b.resumeErr
	b.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	return b.handle, b.events, nil
}
func (b *fakeBackend) Traffic() (TrafficStats, bool) {
	if b.traffic == nil {
		return TrafficStats{}, false
	}
	return *b.traffic, true
}

var _ TrafficSource = (*fakeBackend)(nil)

// script builds a synthetic event stream, one second per event.
type script struct {
	now time.Time
	evs []event.Event
	seq int64
}

func newScript() *script { return &script{now: t0} }

func (s *script) add(e event.Event) *script {
	s.seq++
	s.now = s.now.Add(time.Second)
	e.Time, e.Seq, e.RunID, e.Schema = s.now, s.seq, "20260314T093000Z-ab12", event.Schema
	s.evs = append(s.evs, e)
	return s
}

func (s *script) started(p *plan.Plan) *script {
	return s.add(event.Event{Type: event.RunStarted, Plan: p, Owner: "ana@ops1"})
}

func (s *script) step(id, host string) *script {
	return s.add(event.Event{Type: event.StepStarted, Step: id, Host: host, Message: id})
}

func (s *script) stepDone(id, host string) *script {
	return s.add(event.Event{Type: event.StepFinished, Step: id, Host: host, Status: event.StatusOK, Duration: time.Second})
}

func (s *script) state(host string, st event.HostState, v, msg string) *script {
	return s.add(event.Event{Type: event.HostChanged, Host: host, State: st, Version: v, Message: msg})
}

// deployStart takes a host up to "switching".
func (s *script) deployStart(host string) *script { return s.deployStartID("deploy/"+host, host) }

func (s *script) deployStartID(id, host string) *script {
	s.step(id, host)
	s.state(host, event.HostDraining, "", "")
	s.add(event.Event{Type: event.ActionStarted, Step: id, Host: host, Action: plan.ActionDrain})
	s.add(event.Event{Type: event.ActionDone, Step: id, Host: host, Action: plan.ActionDrain, Status: event.StatusOK, Message: "out of rotation, idle after 120ms"})
	s.state(host, event.HostStopping, "", "")
	s.add(event.Event{Type: event.StepOutput, Step: id, Host: host, Stream: "stdout", Line: "shop: stopping (pid 4242)"})
	s.add(event.Event{Type: event.ActionDone, Step: id, Host: host, Action: plan.ActionSwitch, Status: event.StatusOK})
	s.state(host, event.HostSwitching, "", "")
	return s
}

// deployEnd finishes a host started with deployStart, in service on v.
func (s *script) deployEnd(host, v string) *script { return s.deployEndID("deploy/"+host, host, v) }

func (s *script) deployEndID(id, host, v string) *script {
	s.state(host, event.HostStarting, "", "")
	s.add(event.Event{Type: event.StepOutput, Step: id, Host: host, Stream: "stdout", Line: "shop " + v + " listening on :8080"})
	s.state(host, event.HostChecking, "", "")
	s.add(event.Event{Type: event.ActionDone, Step: id, Host: host, Action: plan.ActionHealth, Status: event.StatusOK, Message: "healthy after 3 check(s) in 2.1s"})
	s.state(host, event.HostEnabling, "", "")
	s.state(host, event.HostInService, v, "")
	return s.stepDone(id, host)
}

func (s *script) deploy(host, v string) *script { return s.deployStart(host).deployEnd(host, v) }

// prelude: run start, preflight, lock, stage, migrate.
func (s *script) prelude(p *plan.Plan) *script {
	s.started(p)
	for _, st := range p.Steps {
		switch st.Kind {
		case plan.StepPreflight, plan.StepLock, plan.StepMigrate:
			s.step(st.ID, st.Host).stepDone(st.ID, st.Host)
		case plan.StepStage:
			s.step(st.ID, st.Host).stepDone(st.ID, st.Host)
		}
	}
	return s
}

func (s *script) gate() *script {
	return s.add(event.Event{Type: event.GateRequested, Step: "gate/canary", Message: "the canary runs 1.4.0: promote it to the rest of the fleet, or roll back"})
}

// keyMsg builds the key press msg.String() reads as s.
func keyMsg(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
	case "pgdown":
		return tea.KeyPressMsg{Code: tea.KeyPgDown}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)
	return tea.KeyPressMsg{Code: r[0], Text: s}
}

// testModel is a model at w×h with a fake backend.
func testModel(t testing.TB, b *fakeBackend, o Options, w, h int) *model {
	t.Helper()
	if o.App == "" {
		o.App = "shop"
	}
	if o.FleetFile == "" {
		o.FleetFile = "fleet.yaml"
	}
	m := newModel(context.Background(), b, o)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

// send delivers msg and runs the commands it returns (those that answer
// within a moment: waits and ticks are dropped), feeding their messages
// back, like the program would.
func send(t testing.TB, m *model, msg tea.Msg) {
	t.Helper()
	_, cmd := m.Update(msg)
	drain(t, m, cmd, 0)
}

func press(t testing.TB, m *model, keys ...string) {
	t.Helper()
	for _, k := range keys {
		send(t, m, keyMsg(k))
	}
}

func drain(t testing.TB, m *model, cmd tea.Cmd, depth int) {
	if cmd == nil || depth > 5 {
		return
	}
	for _, msg := range runCmd(cmd) {
		switch msg := msg.(type) {
		case tea.QuitMsg, nil:
			continue
		default:
			_, next := m.Update(msg)
			drain(t, m, next, depth+1)
		}
	}
}

// runCmd runs cmd (and the commands of batches, concurrently) and returns,
// in order, the messages they answer. The model marks every command that
// waits (events, ticks, cursor blinks) with later, and those are left
// alone, so every other command is waited for, however busy the machine:
// nothing is dropped for being slow. A command still running after a
// minute is reported as hung.
func runCmd(cmd tea.Cmd) []tea.Msg {
	return runCmds([]tea.Cmd{cmd}, time.Now().Add(time.Minute))
}

func runCmds(cmds []tea.Cmd, deadline time.Time) []tea.Msg {
	type result struct {
		i   int
		msg tea.Msg
	}
	ch := make(chan result, len(cmds))
	n := 0
	for i, c := range cmds {
		if c == nil {
			continue
		}
		n++
		go func() { ch <- result{i, c()} }()
	}
	msgs := make([]tea.Msg, len(cmds))
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for got := 0; got < n; got++ {
		select {
		case r := <-ch:
			msgs[r.i] = r.msg
		case <-timer.C:
			panic("a command that is not marked later() did not return within a minute")
		}
	}
	var out []tea.Msg
	for _, msg := range msgs {
		switch msg := msg.(type) {
		case nil, laterMsg, tickMsg, eventsMsg, eventsClosedMsg:
			// waits: the test delivers events and ticks itself
		case tea.BatchMsg:
			out = append(out, runCmds(msg, deadline)...)
		default:
			out = append(out, msg)
		}
	}
	return out
}

// feed delivers events as one batch.
func feed(t testing.TB, m *model, evs ...event.Event) tea.Cmd {
	t.Helper()
	_, cmd := m.Update(eventsMsg(evs))
	return cmd
}

func screenText(m *model) string { return ansi.Strip(m.View().Content) }

func tea_WindowSize(w, h int) tea.WindowSizeMsg { return tea.WindowSizeMsg{Width: w, Height: h} }
