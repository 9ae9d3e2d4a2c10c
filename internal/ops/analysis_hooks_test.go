package ops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/hooks"
)

// The after_canary hooks run once per canary gate: on the gate_requested
// event, or, when canary analysis decides the gate (mode auto or
// auto-rollback), on its analysis_verdict (with the evidence), and not
// again on the gate_requested that follows an inconclusive verdict.
func TestAfterCanaryHookOnAnalysisVerdict(t *testing.T) {
	dir := t.TempDir()
	docsDir := filepath.Join(dir, "docs")
	if err := os.Mkdir(docsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &runHooks{
		runner: &hooks.Runner{Hooks: fleet.Hooks{Timeout: 10 * time.Second, AfterCanary: []fleet.Hook{{Command: "cat > $(mktemp -p " + docsDir + ")"}}}, Dir: dir},
		base:   hooks.Input{RunID: "run1", App: "shop"},
		bus:    event.NewBus("run1", nil),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	defer h.cancel()
	sink := h.watchGate()
	v := &analysis.Verdict{Result: analysis.Fail, Reason: "rate_5xx: canary 5.00% > max 1.00%", Final: true}
	for _, ev := range []event.Event{
		{Type: event.AnalysisSample, Step: "gate/canary", Analysis: v},                                // live figures: no hook
		{Type: event.AnalysisVerdict, Control: event.CtlCanaryGate, Step: "gate/canary", Analysis: v}, // the gate, decided
		{Type: event.GateRequested, Control: event.CtlCanaryGateAnalysed, Step: "gate/canary"},        // asked after it: no second hook
		{Type: event.AnalysisVerdict, Step: "gate/canary@2.0.0", Analysis: v},                         // manual mode's verdict: no hook
		{Type: event.GateRequested, Control: event.CtlCanaryGate, Step: "gate/canary@2.0.0"},          // a plain gate
	} {
		sink.Emit(ev)
	}
	h.wg.Wait()
	// One file per hook run: they run concurrently.
	files, err := filepath.Glob(filepath.Join(docsDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, string(b))
	}
	text := strings.Join(all, "\n")
	if len(files) != 2 || strings.Count(text, `"type":"analysis_verdict"`) != 1 || !strings.Contains(text, `"reason":"rate_5xx: canary 5.00% \u003e max 1.00%"`) ||
		strings.Count(text, `"type":"gate_requested"`) != 1 || !strings.Contains(text, `"step":"gate/canary@2.0.0","ctl":"canary_gate"}`) {
		t.Fatalf("after_canary ran %d times:\n%s", len(files), text)
	}
	if rs := h.all(); len(rs) != 2 {
		t.Fatalf("results %+v", rs)
	}
}
