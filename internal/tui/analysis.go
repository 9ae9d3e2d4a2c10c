package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/view"
)

// This file shows canary analysis: the live figures (canary vs the hosts
// still on the old version, since the canary went back in rotation) in the
// phase line and the gate dialog, and the verdict with its evidence in the
// log and the done screen.

// applyAnalysis takes an analysis_sample or analysis_verdict event.
func (r *runState) applyAnalysis(e event.Event) {
	if e.Analysis == nil {
		return
	}
	v := *e.Analysis
	r.analysis, r.analysisStep = &v, e.Step
	if e.Type == event.AnalysisVerdict {
		for _, l := range view.AnalysisLines(v) {
			r.addLog("canary analysis: " + l)
		}
	}
	if r.gate == nil {
		r.phase = analysisPhase(v)
	}
}

// analysisPhase is the phase line while the window runs: "canary analysis
// 12s/2m0s: canary 540 req, 5.00% 5xx · baseline 2100 req, 0.00% 5xx".
func analysisPhase(v analysis.Verdict) string {
	state := fmt.Sprintf("%s/%s", v.Elapsed.Round(time.Second), v.Duration)
	if v.Final {
		state = strings.ToUpper(string(v.Result))
	}
	return fmt.Sprintf("canary analysis %s: canary %d req, %s 5xx · baseline %d req, %s 5xx", state,
		v.Canary.Requests, analysis.FormatRate(v.Canary.Rate5xx()), v.Baseline.Requests, analysis.FormatRate(v.Baseline.Rate5xx()))
}

// gateAnalysisLines are the analysis figures for the gate dialog.
func (r *runState) gateAnalysisLines() []string {
	v := r.analysis
	if v == nil || r.gate == nil || r.analysisStep != r.gate.step {
		return nil // none yet for this gate (a multi-hop run's earlier gate had its own)
	}
	head := fmt.Sprintf("Since back in rotation (%s of %s): ", v.Elapsed.Round(time.Second), v.Duration)
	lines := []string{head + v.Figures() + "."}
	if v.Final {
		lines = append(lines, fmt.Sprintf("Canary analysis: %s — %s.", strings.ToUpper(string(v.Result)), v.Reason))
	}
	return lines
}

// doneAnalysisLines are the verdict and its evidence on the done screen.
func (r *runState) doneAnalysisLines() []string {
	if r.summary == nil || r.summary.Analysis == nil {
		return nil
	}
	var out []string
	for i, l := range view.AnalysisLines(*r.summary.Analysis) {
		if i == 0 {
			l = "canary analysis: " + l
		} else {
			l = "  " + l
		}
		out = append(out, l)
	}
	return out
}

// gateAnalysisStart says, in the start dialog, what happens at the canary
// gate when the plan asks for analysis.
func gateAnalysisStart(a fleet.Analysis) string {
	switch a.Mode {
	case fleet.AnalysisAuto:
		return fmt.Sprintf("After the canary batch, canary analysis watches it for %s and promotes or rolls back by itself (you decide only if the verdict is inconclusive).", a.Duration)
	case fleet.AnalysisAutoRollback:
		return fmt.Sprintf("After the canary batch, canary analysis watches it for %s and rolls back by itself on a fail; otherwise the run stops for your approval.", a.Duration)
	}
	return fmt.Sprintf("The run stops for your approval after the canary batch; canary analysis shows its figures and, after %s, its verdict.", a.Duration)
}
