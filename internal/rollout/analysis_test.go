package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/plan"
)

// countingLB is the fake balancer with per-server counters: every read
// adds traffic to each server in rotation: 100 requests, of which
// bad[version it runs] answer 5xx.
type countingLB struct {
	*fakeFleet
	mu      sync.Mutex
	reads   int
	counts  map[string]lb.Stats
	bad     map[string]int64 // version → 5xx per 100 requests
	process string
	// onRead, when set, runs before each read (after the first) with its
	// number; it may change the fake.
	onRead func(n int, c *countingLB)
	// failReads are the reads (1-based) that fail, as an unreachable
	// admin socket would.
	failReads map[int]bool
}

var _ lb.Counters = (*countingLB)(nil)

func (c *countingLB) ServerStats(ctx context.Context) ([]lb.CounterSample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]lb.Stats{}
	}
	if c.process == "" {
		c.process = "pid 1 started 1"
	}
	c.reads++
	if c.failReads[c.reads] {
		return nil, fmt.Errorf("dial tcp 127.0.0.1:9: connection refused (read %d)", c.reads)
	}
	if c.reads > 1 && c.onRead != nil {
		c.onRead(c.reads, c)
	}
	c.fakeFleet.mu.Lock()
	for host, v := range c.fakeFleet.current {
		st := c.counts[host]
		if c.reads > 1 && c.fakeFleet.up[host] {
			st.Requests += 100
			st.Resp5xx += c.bad[v]
		}
		st.RespTimeMs = 10
		c.counts[host] = st
	}
	c.fakeFleet.mu.Unlock()
	servers := map[string]lb.Stats{}
	for k, v := range c.counts {
		servers[k] = v
	}
	return []lb.CounterSample{{Endpoint: "fake:1", Process: c.process, At: time.Now(), Servers: servers}}, nil
}

const analysisHAProxy = `balancer: {kind: haproxy, backend: shop, endpoints: [{tcp: "127.0.0.1:9"}]}`

// newAnalysisHarness is the three-host harness (batches 1 then 2) with an
// analysis section and a haproxy balancer in the inventory; the engine
// talks to countingLB.
func newAnalysisHarness(t *testing.T, analysisYAML string) (*harness, *countingLB) {
	t.Helper()
	text := strings.Replace(fmt.Sprintf(testInventory, "rollout: {batches: [1, 2]}\n"+analysisYAML), "balancer: {kind: none}", analysisHAProxy, 1)
	h := newHarnessText(t, text)
	return h, &countingLB{fakeFleet: h.fake, bad: map[string]int64{}}
}

// runAnalysed runs an upgrade to 1.1.0 against bal.
func (h *harness) runAnalysed(t *testing.T, bal lb.Balancer, gate Gate, ctx context.Context, engine func(*Engine)) Result {
	t.Helper()
	obs := plan.Observed{}
	for _, name := range []string{"web1", "web2", "web3"} {
		obs.Hosts = append(obs.Hosts, plan.HostState{Name: name, Version: h.fake.current[name], Reachable: true})
	}
	p, err := plan.Build(h.inv, obs, plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	bus := event.NewBus("run1", nil, event.SinkFunc(func(e event.Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}))
	e := New(Config{Inventory: h.inv, Plan: p, Hosts: h.fake, Balancer: bal, Gate: gate, Bus: bus,
		Artifacts: map[string]Artifact{"1.1.0": {Path: "/dist/shop-1.1.0.tar.gz", SHA256: "abc"}}, RunID: "run1", Owner: "me@here"})
	if engine != nil {
		engine(e)
	}
	return e.Run(ctx)
}

// noGate fails the test when the operator is asked.
type noGate struct{ t *testing.T }

func (g noGate) Approve(context.Context, plan.Step) (Decision, error) {
	g.t.Error("the operator was asked at the gate")
	return Abort, nil
}
func (g noGate) Failed(context.Context, string) (Decision, error) { return Stop, nil }

func (h *harness) verdict(t *testing.T) analysis.Verdict {
	t.Helper()
	vs := h.eventsOf(event.AnalysisVerdict)
	if len(vs) != 1 || vs[0].Analysis == nil {
		t.Fatalf("want one analysis_verdict event, got %d", len(vs))
	}
	return *vs[0].Analysis
}

func metric(v analysis.Verdict, name string) analysis.Metric {
	for _, m := range v.Metrics {
		if m.Name == name {
			return m
		}
	}
	return analysis.Metric{}
}

func (h *harness) versions() map[string]string {
	h.fake.mu.Lock()
	defer h.fake.mu.Unlock()
	out := map[string]string{}
	for k, v := range h.fake.current {
		out[k] = v
	}
	return out
}

// autoAnalysis's window holds 40 reads of the counters; the tests need 3
// to 5 of them (each adds 100 requests a server, min_requests is 200; one
// test fails its 4th) and one before the window ends. A 300ms window held
// 6: one stall of the engine's goroutine for 260ms on a busy machine left
// too few requests, the verdict inconclusive and the canary at the gate.
const analysisWindow = 2 * time.Second

const autoAnalysis = `analysis:
  mode: auto
  duration: 2s
  interval: 50ms
  min_requests: 200
  rate_5xx: {max: 0.01, max_ratio: 2, margin: 0.001}
`

func TestAnalysisAutoRollsBackABadCanary(t *testing.T) {
	h, bal := newAnalysisHarness(t, autoAnalysis)
	bal.bad["1.1.0"] = 5 // 5% of the new version's requests answer 500
	res := h.runAnalysed(t, bal, noGate{t}, nil, nil)
	if res.Outcome != event.OutcomeRolledBack || res.Err == nil || !strings.Contains(res.Err.Error(), "canary analysis failed: rate_5xx: canary 5.00% > max 1.00%") {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	if got := h.versions(); got["web1"] != "1.0.0" || got["web2"] != "1.0.0" || got["web3"] != "1.0.0" {
		t.Fatalf("every host must end on 1.0.0: %v", got)
	}
	if slices.Contains(h.fake.log, "lb drain web2") || slices.Contains(h.fake.log, "lb drain web3") {
		t.Fatal("the baseline hosts were touched")
	}
	v := h.verdict(t)
	m := metric(v, "rate_5xx")
	if v.Result != analysis.Fail || m.Result != analysis.Fail || m.Canary != 0.05 || m.Baseline == nil || *m.Baseline != 0 ||
		m.CanaryRequests < 200 || m.BaselineRequests != 2*m.CanaryRequests || !slices.Equal(v.Canary.Servers, []string{"web1"}) || !slices.Equal(v.Baseline.Servers, []string{"web2", "web3"}) {
		t.Fatalf("evidence: %+v", v)
	}
	if len(h.eventsOf(event.AnalysisSample)) == 0 {
		t.Fatal("no live figures (analysis_sample) during the window")
	}
	if ans := h.eventsOf(event.GateAnswered); len(ans) != 1 || ans[0].Message != "rollback (canary analysis failed)" {
		t.Fatalf("gate answers: %+v", ans)
	}
	// The verdict is the gate's event (after_canary hooks run on it).
	if vs := h.eventsOf(event.AnalysisVerdict); vs[0].Control != event.CtlCanaryGate {
		t.Fatalf("verdict control %q", vs[0].Control)
	}
	if res.Summary.Analysis == nil || res.Summary.Analysis.Result != analysis.Fail || !slices.Contains(res.Summary.RolledBack, "web1") {
		t.Fatalf("summary: %+v", res.Summary)
	}
	if v.Elapsed < analysisWindow {
		t.Fatalf("the window was cut: %s", v.Elapsed)
	}
}

func TestAnalysisAutoPromotesAGoodCanary(t *testing.T) {
	h, bal := newAnalysisHarness(t, autoAnalysis)
	res := h.runAnalysed(t, bal, noGate{t}, nil, nil)
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	if got := h.versions(); got["web1"] != "1.1.0" || got["web2"] != "1.1.0" || got["web3"] != "1.1.0" {
		t.Fatalf("%v", got)
	}
	if v := h.verdict(t); v.Result != analysis.Pass || !v.Final {
		t.Fatalf("%+v", v)
	}
	if ans := h.eventsOf(event.GateAnswered); len(ans) != 1 || ans[0].Message != "promote (canary analysis passed)" {
		t.Fatalf("gate answers: %+v", ans)
	}
}

// Too few requests: inconclusive, and auto mode waits for the operator.
func TestAnalysisInconclusiveAsksTheOperator(t *testing.T) {
	h, bal := newAnalysisHarness(t, strings.Replace(autoAnalysis, "min_requests: 200", "min_requests: 100000", 1))
	bal.bad["1.1.0"] = 0
	asked := 0
	res := h.runAnalysed(t, bal, gateFunc(func() Decision { asked++; return RollBack }), nil, nil)
	if res.Outcome != event.OutcomeRolledBack || asked != 1 {
		t.Fatalf("outcome %s (asked %d): %v", res.Outcome, asked, res.Err)
	}
	v := h.verdict(t)
	if v.Result != analysis.Inconclusive || !strings.Contains(v.Reason, "fewer than min_requests 100000") {
		t.Fatalf("%+v", v)
	}
	reqs := h.eventsOf(event.GateRequested)
	if len(reqs) != 1 || !strings.Contains(reqs[0].Message, "canary analysis: inconclusive") || reqs[0].Control != event.CtlCanaryGateAnalysed {
		t.Fatalf("gate request: %+v", reqs)
	}
	if vs := h.eventsOf(event.AnalysisVerdict); vs[0].Control != event.CtlCanaryGate {
		t.Fatalf("verdict control %q", vs[0].Control)
	}
}

// auto-rollback: a pass waits for the operator; a fail rolls back alone.
func TestAnalysisAutoRollbackMode(t *testing.T) {
	spec := strings.Replace(autoAnalysis, "mode: auto", "mode: auto-rollback", 1)
	h, bal := newAnalysisHarness(t, spec)
	asked := 0
	res := h.runAnalysed(t, bal, gateFunc(func() Decision { asked++; return Promote }), nil, nil)
	if res.Outcome != event.OutcomeSucceeded || asked != 1 || h.verdict(t).Result != analysis.Pass {
		t.Fatalf("pass: outcome %s, asked %d", res.Outcome, asked)
	}
	h, bal = newAnalysisHarness(t, spec)
	bal.bad["1.1.0"] = 50
	res = h.runAnalysed(t, bal, noGate{t}, nil, nil)
	if res.Outcome != event.OutcomeRolledBack || h.versions()["web1"] != "1.0.0" {
		t.Fatalf("fail: outcome %s: %v", res.Outcome, res.Err)
	}
}

// manual: the operator is asked at once, the figures run meanwhile, and
// an answer after the window carries the full verdict.
func TestAnalysisManualShowsTheVerdict(t *testing.T) {
	h, bal := newAnalysisHarness(t, strings.Replace(autoAnalysis, "mode: auto", "mode: manual", 1))
	bal.bad["1.1.0"] = 5
	res := h.runAnalysed(t, bal, gateFunc(func() Decision {
		deadline := time.Now().Add(20 * time.Second)
		for len(h.eventsOf(event.AnalysisVerdict)) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return RollBack
	}), nil, nil)
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	if v := h.verdict(t); v.Result != analysis.Fail || len(v.Notes) != 0 {
		t.Fatalf("%+v", v)
	}
	// Manual: the gate request is the gate's event; the verdict is not.
	if vs, rs := h.eventsOf(event.AnalysisVerdict), h.eventsOf(event.GateRequested); vs[0].Control != "" || rs[0].Control != event.CtlCanaryGate {
		t.Fatalf("controls: verdict %q, gate %q", vs[0].Control, rs[0].Control)
	}
	// The gate was asked before the verdict: manual waits for nobody.
	h.mu.Lock()
	defer h.mu.Unlock()
	gate, verdict := -1, -1
	for i, e := range h.events {
		switch e.Type {
		case event.GateRequested:
			gate = i
		case event.AnalysisVerdict:
			verdict = i
		}
	}
	if gate < 0 || verdict < gate {
		t.Fatalf("gate at %d, verdict at %d", gate, verdict)
	}
}

// manual with an answer before the window ends: the verdict says so and
// is never a pass.
func TestAnalysisManualEarlyAnswer(t *testing.T) {
	h, bal := newAnalysisHarness(t, strings.Replace(strings.Replace(autoAnalysis, "mode: auto", "mode: manual", 1), "duration: 2s", "duration: 1m", 1))
	start := time.Now()
	res := h.runAnalysed(t, bal, gateFunc(func() Decision { return Promote }), nil, nil)
	if res.Outcome != event.OutcomeSucceeded || time.Since(start) > 30*time.Second {
		t.Fatalf("outcome %s after %s: %v", res.Outcome, time.Since(start), res.Err)
	}
	v := h.verdict(t)
	if v.Result != analysis.Inconclusive || !strings.Contains(strings.Join(v.Notes, ";"), "the operator answered promote after") {
		t.Fatalf("%+v", v)
	}
}

// A failing or garbage-printing check fails the canary even with clean
// counters, and a hung check is cut at its timeout.
func TestAnalysisChecks(t *testing.T) {
	for _, tc := range []struct{ name, check, why string }{
		{"garbage", `{name: errs, command: "echo null", max: 1}`, `printed "null", not a number`},
		{"fails", `{name: errs, command: "echo boom >&2; exit 3", max: 1}`, "the command failed: exit status 3: boom"},
		{"hangs", `{name: errs, command: "sleep 30", max: 1, timeout: 200ms}`, "no answer within its timeout of 200ms"},
		{"above max", `{name: errs, command: "echo 0.5; echo 7", max: 1}`, "7 > max 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, bal := newAnalysisHarness(t, autoAnalysis+"  checks: ["+tc.check+"]\n")
			start := time.Now()
			res := h.runAnalysed(t, bal, noGate{t}, nil, nil)
			if res.Outcome != event.OutcomeRolledBack || h.versions()["web1"] != "1.0.0" {
				t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
			}
			m := metric(h.verdict(t), "check:errs")
			if m.Result != analysis.Fail || !strings.Contains(m.Why, tc.why) {
				t.Fatalf("check: %+v", m)
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("took %s", time.Since(start))
			}
		})
	}
	// A check sees the run's figures in its environment.
	h, bal := newAnalysisHarness(t, autoAnalysis+`  checks: [{name: env, command: 'test "$RELCTL_CANARY/$RELCTL_BASELINE/$RELCTL_VERSION" = web1/web2,web3/1.1.0 && echo 1', min: 1}]`+"\n")
	if res := h.runAnalysed(t, bal, noGate{t}, nil, nil); res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v; %+v", res.Outcome, res.Err, h.verdict(t))
	}
}

// A balancer without counters (nginx, exec, none): the counter metrics
// are inconclusive and say why; checks still judge.
func TestAnalysisWithoutCounters(t *testing.T) {
	h, _ := newAnalysisHarness(t, autoAnalysis)
	asked := 0
	res := h.runAnalysed(t, h.fake, gateFunc(func() Decision { asked++; return Abort }), nil, nil)
	if res.Outcome != event.OutcomeAborted || asked != 1 {
		t.Fatalf("outcome %s, asked %d", res.Outcome, asked)
	}
	if m := metric(h.verdict(t), "rate_5xx"); m.Result != analysis.Inconclusive || !strings.Contains(m.Why, "balancer fake has no per-server counters") {
		t.Fatalf("%+v", m)
	}
}

// A balancer reload in the window resets its counters: the window counts
// across it and the verdict says so.
func TestAnalysisAcrossAReload(t *testing.T) {
	h, bal := newAnalysisHarness(t, autoAnalysis)
	bal.bad["1.1.0"] = 5
	bal.onRead = func(n int, c *countingLB) {
		if n == 3 {
			c.process = "pid 2 started 9"
			c.counts = map[string]lb.Stats{}
		}
	}
	res := h.runAnalysed(t, bal, noGate{t}, nil, nil)
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	v := h.verdict(t)
	if v.Result != analysis.Fail || !strings.Contains(strings.Join(v.Notes, ";"), "fake:1 reloaded (pid 1 started 1 → pid 2 started 9)") {
		t.Fatalf("%+v", v)
	}
}

// The operator's rollback request and Ctrl-C end the window early.
func TestAnalysisInterrupted(t *testing.T) {
	h, bal := newAnalysisHarness(t, strings.Replace(autoAnalysis, "duration: 2s", "duration: 1m", 1))
	var eng *Engine
	bal.onRead = func(n int, c *countingLB) {
		if n == 3 {
			go eng.RequestRollback()
		}
	}
	start := time.Now()
	res := h.runAnalysed(t, bal, noGate{t}, nil, func(e *Engine) { eng = e })
	if res.Outcome != event.OutcomeRolledBack || h.versions()["web1"] != "1.0.0" || time.Since(start) > 30*time.Second {
		t.Fatalf("rollback request: outcome %s after %s: %v", res.Outcome, time.Since(start), res.Err)
	}
	if v := h.verdict(t); v.Result != analysis.Inconclusive || !strings.Contains(v.Reason, "the operator asked for a rollback") {
		t.Fatalf("%+v", v)
	}

	h, bal = newAnalysisHarness(t, strings.Replace(autoAnalysis, "duration: 2s", "duration: 1m", 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bal.onRead = func(n int, c *countingLB) {
		if n == 3 {
			cancel()
		}
	}
	res = h.runAnalysed(t, bal, noGate{t}, ctx, nil)
	if res.Outcome != event.OutcomeAborted || h.versions()["web1"] != "1.1.0" {
		t.Fatalf("interrupt: outcome %s: %v", res.Outcome, res.Err)
	}
	if !slices.Contains(h.fake.log, "web1 unlock") {
		t.Fatal("the lock was not released")
	}
}

// Reads of the counters that fail are retried at the next interval: the
// window opens at the first read that works, the reads that work count
// everything in between, and the verdict says how many failed.
func TestAnalysisCounterReadsFail(t *testing.T) {
	h, bal := newAnalysisHarness(t, autoAnalysis)
	bal.bad["1.1.0"] = 5
	bal.failReads = map[int]bool{1: true, 4: true}
	res := h.runAnalysed(t, bal, noGate{t}, nil, nil)
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	v := h.verdict(t)
	notes := strings.Join(v.Notes, ";")
	if v.Result != analysis.Fail || !strings.Contains(notes, "the balancer's counters could first be read after") ||
		!strings.Contains(notes, "2 of ") || !strings.Contains(notes, "connection refused (read 4)") {
		t.Fatalf("%+v", v)
	}
	// Every read failing: the counters are inconclusive and say why.
	h, bal = newAnalysisHarness(t, autoAnalysis)
	bal.failReads = map[int]bool{}
	for i := 1; i < 1000; i++ {
		bal.failReads[i] = true
	}
	asked := 0
	res = h.runAnalysed(t, bal, gateFunc(func() Decision { asked++; return Abort }), nil, nil)
	m := metric(h.verdict(t), "rate_5xx")
	if res.Outcome != event.OutcomeAborted || asked != 1 || m.Result != analysis.Inconclusive || !strings.Contains(m.Why, "read the balancer's counters: dial tcp 127.0.0.1:9: connection refused") {
		t.Fatalf("outcome %s, asked %d, metric %+v", res.Outcome, asked, m)
	}
}

// Checks alone (what a balancer without per-server counters, such as
// nginx, can use): the verdict comes from the checks, and the counters are
// never read.
func TestAnalysisChecksOnly(t *testing.T) {
	spec := "analysis:\n  mode: auto\n  duration: 200ms\n  interval: 50ms\n  checks: [{name: errors, command: \"echo 0.001\", max: 0.01}]\n"
	h, _ := newAnalysisHarness(t, spec)
	res := h.runAnalysed(t, h.fake, noGate{t}, nil, nil)
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	v := h.verdict(t)
	if v.Result != analysis.Pass || len(v.Metrics) != 1 || v.Metrics[0].Name != "check:errors" || v.Metrics[0].Canary != 0.001 || len(v.Notes) != 0 {
		t.Fatalf("%+v", v)
	}
}

// A check's command never reaches the plan's JSON (the journal's
// run_started carries the plan): it may hold a secret. The run takes it
// from the inventory, so a plan read back from JSON still runs it.
func TestAnalysisCheckCommandNotRecorded(t *testing.T) {
	h, _ := newAnalysisHarness(t, "analysis:\n  mode: auto\n  duration: 100ms\n  interval: 50ms\n  checks: [{name: errs, command: \"echo 0 # token=s3cr3t\", max: 1}]\n")
	obs := plan.Observed{}
	for _, name := range []string{"web1", "web2", "web3"} {
		obs.Hosts = append(obs.Hosts, plan.HostState{Name: name, Version: "1.0.0", Reachable: true})
	}
	p, err := plan.Build(h.inv, obs, plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := plan.MarshalJSONIndent(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "s3cr3t") || !strings.Contains(string(data), `"name": "errs"`) {
		t.Fatalf("plan JSON:\n%s", data)
	}
	back, err := plan.UnmarshalJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	res := h.runPlan(t, back, noGate{t}, nil)
	if res.Outcome != event.OutcomeSucceeded || h.verdict(t).Result != analysis.Pass {
		t.Fatalf("outcome %s: %v; %+v", res.Outcome, res.Err, h.verdict(t))
	}
	for _, e := range h.events {
		if b, _ := json.Marshal(e); strings.Contains(string(b), "s3cr3t") {
			t.Fatalf("event %s holds the check's command", e.Type)
		}
	}
	// A plan whose check the inventory no longer has: the check fails.
	h2, _ := newAnalysisHarness(t, "analysis:\n  mode: auto\n  duration: 100ms\n  interval: 50ms\n  checks: [{name: other, command: \"echo 0\", max: 1}]\n")
	res = h2.runPlan(t, back, noGate{t}, nil)
	if m := metric(h2.verdict(t), "check:errs"); res.Outcome != event.OutcomeRolledBack || !strings.Contains(m.Why, "no command: the inventory has no check of this name") {
		t.Fatalf("outcome %s, metric %+v", res.Outcome, m)
	}
}

// A role outside the balancer (balancer: none) has no counters: its hosts
// are never part of the baseline, even when they come in a later batch.
func TestAnalysisBaselineLeavesOutHostsOutsideTheBalancer(t *testing.T) {
	text := strings.Replace(fmt.Sprintf(testInventory, "rollout: {batches: [1, 2]}\n"+autoAnalysis+
		"roles:\n  web: {}\n  worker: {balancer: none}\n"), "balancer: {kind: none}", analysisHAProxy, 1)
	text = strings.Replace(text, "address: 10.0.0.1}", "address: 10.0.0.1, role: web}", 1)
	text = strings.Replace(text, "address: 10.0.0.2}", "address: 10.0.0.2, role: web}", 1)
	text = strings.Replace(text, "address: 10.0.0.3}", "address: 10.0.0.3, role: worker}", 1)
	h := newHarnessText(t, text)
	bal := &countingLB{fakeFleet: h.fake, bad: map[string]int64{}}
	res := h.runAnalysed(t, bal, noGate{t}, nil, nil)
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	v := h.verdict(t)
	if v.Result != analysis.Pass || !slices.Equal(v.Canary.Servers, []string{"web1"}) || !slices.Equal(v.Baseline.Servers, []string{"web2"}) {
		t.Fatalf("verdict %s, canary %v, baseline %v: want pass, web1 against web2 only", v.Result, v.Canary.Servers, v.Baseline.Servers)
	}
	if got := h.versions(); got["web1"] != "1.1.0" || got["web2"] != "1.1.0" || got["web3"] != "1.1.0" {
		t.Fatalf("every host must end on 1.1.0: %v", got)
	}
}
