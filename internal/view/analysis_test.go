package view

import (
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/event"
)

func TestSummaryShowsTheAnalysisEvidence(t *testing.T) {
	base := 0.0
	v := &analysis.Verdict{
		Result: analysis.Fail, Reason: "rate_5xx: canary 5.00% > max 1.00%",
		Canary:   analysis.Counts{Servers: []string{"web1"}, Requests: 400, Resp5xx: 20, RespTimeMs: 12},
		Baseline: analysis.Counts{Servers: []string{"web2", "web3"}, Requests: 800, RespTimeMs: 11},
		Metrics: []analysis.Metric{{Name: "rate_5xx", Result: analysis.Fail, Canary: 0.05, Baseline: &base, CanaryRequests: 400, BaselineRequests: 800,
			Threshold: "≤ 1.00%", Why: "canary 5.00% > max 1.00%"}},
		Notes:   []string{"lb reloaded"},
		Elapsed: 5 * time.Second, Duration: 5 * time.Second, Final: true,
	}
	var b strings.Builder
	Summary(&b, event.OutcomeRolledBack, event.Summary{Kind: "upgrade", From: "1.0.0", To: "2.0.0", RolledBack: []string{"web1"}, Analysis: v})
	got := b.String()
	for _, want := range []string{
		"analysis:\tFAIL: rate_5xx: canary 5.00% > max 1.00% (watched 5s of 5s)\n",
		"\tcanary web1: 400 requests, 20 5xx (5.00%), 0 connection errors (0.00%), 12ms · baseline web2, web3: 800 requests, 0 5xx (0.00%)",
		"\trate_5xx fail: canary 5.00% vs baseline 0.00% (400 vs 800 requests); threshold ≤ 1.00% — canary 5.00% > max 1.00%\n",
		"\tnote: lb reloaded\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	var p strings.Builder
	Summary(&p, event.OutcomeSucceeded, event.Summary{Kind: "upgrade"})
	if strings.Contains(p.String(), "analysis") {
		t.Errorf("no analysis, no line: %s", p.String())
	}
}
