package plan

import (
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/fleet"
)

const analysisYAML = `analysis:
  mode: auto
  duration: 2m
  interval: 10s
  min_requests: 200
  rate_5xx: {max: 0.01, max_ratio: 2, margin: 0.002}
  checks: [{name: p99, command: "echo 0.2", max: 0.5}]
`

// The plan carries the analysis settings and shows, at the gate, what will
// be judged and what the mode does with the verdict.
func TestPlanShowsWhatTheAnalysisJudges(t *testing.T) {
	inv, err := fleet.Parse("fleet.yaml", []byte(`app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: stop, start: start, health: check}
balancer: {kind: haproxy, backend: shop, endpoints: [{tcp: "127.0.0.1:9999"}]}
`+analysisYAML+`hosts:
  - {name: web1, address: 10.0.0.1}
  - {name: web2, address: 10.0.0.2}
  - {name: web3, address: 10.0.0.3}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Settings.Analysis == nil || p.Settings.Analysis.Mode != "auto" {
		t.Fatalf("settings: %+v", p.Settings)
	}
	for name, text := range map[string]string{"text": RenderText(p), "markdown": RenderMarkdown(p)} {
		for _, want := range []string{"GATE with canary analysis: watch the canary for 2m0s (every 10s) against the hosts still on the old version, at least 200 canary requests",
			"5xx share ≤ 1.00%; ≤ baseline × 2 + 0.20%", "check p99 ≤ 0.5", "mode auto: promote on pass, roll back on fail, wait for the operator if inconclusive"} {
			if !strings.Contains(strings.Join(strings.Fields(text), " "), want) {
				t.Errorf("%s lacks %q:\n%s", name, want, text)
			}
		}
	}
	data, err := MarshalJSONIndent(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := UnmarshalJSON(data)
	if err != nil || Diff(q, p) != "" {
		t.Fatalf("round trip: %v %s", err, Diff(q, p))
	}
	// The check's command stays out of the JSON (it may hold a secret).
	if strings.Contains(string(data), "echo 0.2") || q.Settings.Analysis.Checks[0].Command != "" || q.Settings.Analysis.Checks[0].Name != "p99" {
		t.Errorf("plan JSON holds the check's command:\n%s", data)
	}
	if !strings.Contains(string(data), `"analysis": {`) || !strings.Contains(string(data), `"duration_ns": 120000000000`) {
		t.Errorf("plan JSON lacks the analysis settings:\n%s", data)
	}
	// One batch: no gate, and the plan says nothing will be analysed.
	one := *inv
	one.Rollout.Batches = []fleet.BatchSize{{Percent: 100, IsPercent: true}}
	p1, err := Build(&one, Assume(&one, "1.4.0"), Options{To: "2.0.0"})
	if err != nil || p1.HasKind(StepGate) || !strings.Contains(strings.Join(p1.Notes, ";"), "no canary gate (one batch), so nothing is analysed") {
		t.Fatalf("one batch: %v %v", err, p1.Notes)
	}
	// Without the key: no analysis, and the gate reads as before.
	inv = inventory(t, 3, "")
	p, _ = Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
	if p.Settings.Analysis != nil || strings.Contains(RenderText(p), "analysis") {
		t.Error("analysis shown without the key")
	}
}
