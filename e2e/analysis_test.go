package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/event"
)

// e2eAnalysis is canary analysis in mode auto with a short window: at
// loadRate over 5 hosts the canary serves ~20 requests/s, so 8 s gives it
// ~160. A machine too busy to serve half of loadRate still gives it 40:
// above min_requests, and enough that the bad release's every 20th request
// answering 500 reads as 5% ±2 (a 4 s window gave 80, and 34-39 requests
// with one 500 read as 2.6-2.9%).
const e2eAnalysis = `rollout:
  batches: [1, 2, "50%"]
  pause_after_canary: true
analysis:
  mode: auto
  duration: 8s
  interval: 500ms
  min_requests: 30
  rate_5xx: {max: 0.02, max_ratio: 2, margin: 0.01}
  conn_error_rate: {max: 0.01}
`

// 21. Canary analysis on real HAProxy under load: a release that answers 5%
// of its requests with 500 (health green) is caught from HAProxy's
// per-server counters and rolled back by itself within the window; a good
// release is promoted by itself. Clients see no failure but the bad
// release's own 500s.
func TestLoadCanaryAnalysis(t *testing.T) {
	t.Run("bad release rolled back", func(t *testing.T) {
		s := newStage(t, 5, "haproxy", e2eAnalysis, nil)
		s.f.Artifact("1.1.0", map[string]string{"fail_share": "0.05"})
		l := startLoad(t, s, "21. canary analysis catches 5% 500s (haproxy, 5 hosts)")
		start := time.Now()
		code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
		took := time.Since(start)
		st := l.stop(false)
		// Exit 3: rolled back (README's exit codes: by the analysis too).
		if code != 3 {
			t.Fatalf("apply exit %d (want 3, rolled back by the analysis)\n%s\n%s", code, out, errs)
		}
		s.wantAll("1.0.0")
		if st.Errors != 0 || st.Non2xx != st.ByStatus[500] || st.ByStatus[500] == 0 {
			t.Errorf("clients: %d errors, %d non-2xx of which %d 500s; want only the bad release's 500s: %v", st.Errors, st.Non2xx, st.ByStatus[500], st.FirstErrors)
		}
		for _, want := range []string{"outcome:\trolled back", "rolled back:\tweb1", "analysis:\tFAIL: rate_5xx: canary 5.", "canary web1: ", "baseline web2, web3, web4, web5: "} {
			if !strings.Contains(out, want) {
				t.Errorf("summary lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "LEFT DRAINED") {
			t.Errorf("summary:\n%s", out)
		}
		evs := journalEvents(t, s)
		var verdict *analysis.Verdict
		var gateAt, verdictAt, rollbackAt time.Time
		samples := 0
		for _, e := range evs {
			switch {
			case e.Type == event.Control && e.Control == event.CtlAnalysing:
				gateAt = e.Time
			case e.Type == event.AnalysisSample:
				samples++
			case e.Type == event.AnalysisVerdict:
				verdict, verdictAt = e.Analysis, e.Time
			case e.Type == event.PlanChanged && rollbackAt.IsZero():
				rollbackAt = e.Time
			case e.Type == event.GateRequested:
				t.Errorf("the operator was asked: %s", e.Message)
			}
		}
		if verdict == nil || verdict.Result != analysis.Fail || gateAt.IsZero() || rollbackAt.IsZero() {
			t.Fatalf("journal: verdict %+v, analysing at %s, rollback at %s", verdict, gateAt, rollbackAt)
		}
		if rate := verdict.Canary.Rate5xx(); verdict.Canary.Requests < 30 || rate < 0.03 || rate > 0.07 || verdict.Baseline.Resp5xx != 0 || verdict.Baseline.Requests < verdict.Canary.Requests {
			t.Errorf("evidence: canary %+v baseline %+v", verdict.Canary, verdict.Baseline)
		}
		// Caught within the window: the verdict comes when the 8 s window
		// ends (a busy machine may add a little), and the rollback starts
		// at once.
		if w := verdictAt.Sub(gateAt); w < 8*time.Second || w > 14*time.Second {
			t.Errorf("verdict %s after the window opened, want ~8s", w)
		}
		if d := rollbackAt.Sub(verdictAt); d < 0 || d > 2*time.Second {
			t.Errorf("rollback started %s after the verdict", d)
		}
		if samples < 3 {
			t.Errorf("%d live samples in an 8s window at 500ms", samples)
		}
		if st := serverStates(t, s); strings.Count(st, "UP") != 5 {
			t.Errorf("balancer after the run: %s", st)
		}
		t.Logf("bad release: caught and rolled back in %s; canary %d requests %d 5xx, baseline %d requests %d 5xx; clients: %d requests, %d 500s",
			took.Round(time.Millisecond), verdict.Canary.Requests, verdict.Canary.Resp5xx, verdict.Baseline.Requests, verdict.Baseline.Resp5xx, st.Requests, st.ByStatus[500])
	})

	t.Run("good release promoted", func(t *testing.T) {
		s := newStage(t, 5, "haproxy", e2eAnalysis, nil)
		l := startLoad(t, s, "21. canary analysis promotes a good release (haproxy, 5 hosts)")
		code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
		l.stop(true)
		if code != 0 {
			t.Fatalf("apply exit %d\n%s\n%s", code, out, errs)
		}
		s.wantAll("1.1.0")
		if !strings.Contains(out, "analysis:\tPASS: every metric within its threshold (2 judged)") {
			t.Errorf("summary:\n%s", out)
		}
		for _, e := range journalEvents(t, s) {
			if e.Type == event.GateAnswered && e.Message != "promote (canary analysis passed)" {
				t.Errorf("gate answered %q", e.Message)
			}
			if e.Type == event.GateRequested {
				t.Errorf("the operator was asked: %s", e.Message)
			}
		}
	})
}

// TestDemoBadRelease is the issue's demo: `relctl demo --plain
// --bad-release 2.0.0` (real HAProxy when installed) promotes the 1.1.0
// canary on its analysis, then catches 2.0.0's 500s on the canary, rolls it
// back by itself, prints the evidence and exits 0 (the demo's success:
// no failed request but the bad release's own 500s).
func TestDemoBadRelease(t *testing.T) {
	tmp := t.TempDir()
	c := exec.Command(relctlBin, "demo", "--plain", "--hosts", "4", "--bad-release", "2.0.0")
	c.Env = append(os.Environ(), "TMPDIR="+tmp)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("relctl demo --plain --bad-release 2.0.0: %v\n%s\n%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"outcome:\trolled back", "rolled back:\tweb1", "analysis:\tFAIL: rate_5xx: canary ",
		"canary web1: ", "baseline web2, web3, web4: ", "demo:\tcanary analysis caught 2.0.0 and the run rolled back by itself"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "GATE\tanswer: promote (canary analysis passed)") || !strings.Contains(errb.String(), "GATE\tanswer: rollback (canary analysis failed)") {
		t.Errorf("want 1.1.0 promoted and 2.0.0 rolled back by the analysis:\n%s", errb.String())
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "relctl-demo-*")); len(left) != 0 {
		t.Errorf("the demo left %v behind", left)
	}
	if ps := liveProcessesMentioning(filepath.Join(tmp, "relctl-demo-")); len(ps) != 0 {
		t.Errorf("the demo left processes running:\n%s", strings.Join(ps, "\n"))
	}
}
