package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
)

func analysisVerdict(final bool, elapsed time.Duration) *analysis.Verdict {
	base := 0.0
	v := &analysis.Verdict{
		Result: analysis.Fail, Reason: "rate_5xx: canary 5.00% > max 1.00%",
		Canary:   analysis.Counts{Servers: []string{"web1"}, Requests: 400, Resp5xx: 20, RespTimeMs: 12},
		Baseline: analysis.Counts{Servers: []string{"web2", "web3", "web4", "web5"}, Requests: 1600, RespTimeMs: 11},
		Metrics: []analysis.Metric{{Name: "rate_5xx", Result: analysis.Fail, Canary: 0.05, Baseline: &base, CanaryRequests: 400, BaselineRequests: 1600,
			Threshold: "≤ 1.00%", Why: "canary 5.00% > max 1.00%"}},
		Elapsed: elapsed, Duration: 10 * time.Second, Final: final,
	}
	if !final {
		v.Result, v.Reason = analysis.Fail, "so far"
	}
	return v
}

// The gate dialog shows the canary's figures since it went back in
// rotation, live, and the verdict once the window ends.
func TestGateShowsAnalysisFiguresLive(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deploy("web1", "1.4.0").gate()
	m := runningModel(t, b, p, Options{}, s.evs)
	feed(t, m, event.Event{Type: event.AnalysisSample, Step: "gate/canary", Analysis: analysisVerdict(false, 4*time.Second), Time: s.now})
	txt := flat(screenText(m))
	if !strings.Contains(txt, "Since back in rotation (4s of 10s): canary web1: 400 requests, 20 5xx (5.00%)") || !strings.Contains(txt, "baseline web2, web3, web4, web5: 1600 requests, 0 5xx (0.00%)") {
		t.Fatalf("the gate lacks the live figures:\n%s", screenText(m))
	}
	if strings.Contains(txt, "Canary analysis: FAIL") {
		t.Fatal("a sample is not a verdict")
	}
	feed(t, m, event.Event{Type: event.AnalysisVerdict, Step: "gate/canary", Analysis: analysisVerdict(true, 10*time.Second), Time: s.now})
	txt = flat(screenText(m))
	if !strings.Contains(txt, "Canary analysis: FAIL — rate_5xx: canary 5.00% > max 1.00%") {
		t.Fatalf("the gate lacks the verdict:\n%s", screenText(m))
	}
	// Another gate (the next hop's) never shows this gate's figures.
	feed(t, m, event.Event{Type: event.GateAnswered, Step: "gate/canary", Message: "promote", Time: s.now},
		event.Event{Type: event.GateRequested, Step: "gate/canary@2.0.0", Message: "the canary runs 2.0.0", Version: "2.0.0", Time: s.now})
	if txt := flat(screenText(m)); strings.Contains(txt, "Since back in rotation") {
		t.Fatalf("gate 2 shows gate 1's figures:\n%s", screenText(m))
	}
}

// In auto mode no dialog opens while the window runs: the phase line
// carries the figures, and the done screen the verdict and its evidence.
func TestAutoAnalysisPhaseAndDoneScreen(t *testing.T) {
	b := newFakeBackend(5)
	p := upgradePlan(t, 5)
	s := newScript().prelude(p).deploy("web1", "1.4.0")
	m := runningModel(t, b, p, Options{}, s.evs)
	feed(t, m, event.Event{Type: event.AnalysisSample, Step: "gate/canary", Analysis: analysisVerdict(false, 4*time.Second), Time: s.now})
	if m.dialog != dlgNone || !strings.Contains(m.run.phase, "canary analysis 4s/10s: canary 400 req, 5.00% 5xx · baseline 1600 req, 0.00% 5xx") {
		t.Fatalf("dialog %v, phase %q", m.dialog, m.run.phase)
	}
	v := analysisVerdict(true, 10*time.Second)
	feed(t, m,
		event.Event{Type: event.AnalysisVerdict, Step: "gate/canary", Analysis: v, Time: s.now},
		event.Event{Type: event.GateAnswered, Step: "gate/canary", Message: "rollback (canary analysis failed)", Time: s.now},
		event.Event{Type: event.RunFinished, Outcome: event.OutcomeRolledBack, Summary: &event.Summary{Kind: "upgrade", From: "1.3.2", To: "1.4.0", RolledBack: []string{"web1"}, Analysis: v}, Time: s.now},
	)
	txt := flat(screenText(m))
	for _, want := range []string{"canary analysis: FAIL: rate_5xx: canary 5.00% > max 1.00%", "rate_5xx fail: canary 5.00% vs baseline 0.00% (400 vs 1600 requests)"} {
		if !strings.Contains(txt, want) {
			t.Errorf("the done screen lacks %q:\n%s", want, screenText(m))
		}
	}
}

// flat is the screen's words without the dialog's borders, one space
// apart, so that wrapped lines read as one.
func flat(s string) string {
	return strings.Join(strings.Fields(strings.NewReplacer("│", " ", "╭", " ", "╮", " ", "╰", " ", "╯", " ", "─", " ").Replace(s)), " ")
}

func TestStartDialogSaysWhatTheAnalysisDoes(t *testing.T) {
	for mode, want := range map[string]string{
		"auto":          "promotes or rolls back by itself",
		"auto-rollback": "rolls back by itself on a fail; otherwise the run stops for your approval",
		"manual":        "The run stops for your approval after the canary batch; canary analysis shows its figures",
	} {
		if got := gateAnalysisStart(fleet.Analysis{Mode: mode, Duration: 8 * time.Second}); !strings.Contains(got, want) {
			t.Errorf("%s: %q lacks %q", mode, got, want)
		}
	}
}
