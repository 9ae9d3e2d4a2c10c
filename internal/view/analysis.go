package view

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/analysis"
)

// AnalysisLines is a canary analysis verdict for a person: the verdict and
// its reason, the figures, one line per metric, then the notes.
func AnalysisLines(v analysis.Verdict) []string {
	out := []string{
		fmt.Sprintf("%s: %s (watched %s of %s)", strings.ToUpper(string(v.Result)), v.Reason, v.Elapsed.Round(100*time.Millisecond), v.Duration),
		v.Figures(),
	}
	for _, m := range v.Metrics {
		line := fmt.Sprintf("%s %s: canary %s", m.Name, m.Result, metricValue(m.Name, m.Canary))
		if m.Baseline != nil {
			line += " vs baseline " + metricValue(m.Name, *m.Baseline)
		}
		if m.CanaryRequests > 0 || m.BaselineRequests > 0 {
			line += fmt.Sprintf(" (%d vs %d requests)", m.CanaryRequests, m.BaselineRequests)
		}
		if m.Threshold != "" {
			line += "; threshold " + m.Threshold
		}
		if m.Why != "" {
			line += " — " + m.Why
		}
		out = append(out, line)
	}
	for _, n := range v.Notes {
		out = append(out, "note: "+n)
	}
	return out
}

func metricValue(name string, x float64) string {
	switch {
	case strings.HasSuffix(name, "rate") || name == "rate_5xx":
		return analysis.FormatRate(x)
	case name == "response_time_ms":
		return fmt.Sprintf("%.1fms", x)
	}
	return fmt.Sprintf("%g", x)
}

// summaryAnalysis writes the run's verdict into a summary.
func summaryAnalysis(w io.Writer, v *analysis.Verdict) {
	if v == nil {
		return
	}
	for i, l := range AnalysisLines(*v) {
		key := "analysis:"
		if i > 0 {
			key = ""
		}
		fmt.Fprintf(w, "%s\t%s\n", key, l)
	}
}
