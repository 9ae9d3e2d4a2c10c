package fleet

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

const haproxyBase = `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: "stop-it", start: "start-it", health: "check"}
balancer: {kind: haproxy, backend: shop, endpoints: [{tcp: "127.0.0.1:9999"}]}
hosts:
  - {name: web1, address: 10.0.0.11}
  - {name: web2, address: 10.0.0.12}
`

func TestAnalysisOffByDefault(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(haproxyBase))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Analysis.Enabled() || inv.Analysis.Mode != "" {
		t.Fatalf("no analysis key must mean no analysis: %+v", inv.Analysis)
	}
}

func TestAnalysisDefaultsAndValues(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(haproxyBase+`analysis:
  duration: 5s
  rate_5xx: {max: 0.02, max_ratio: 2, margin: 0.001}
  response_time_ms: {max_ratio: 1.5, margin: 20}
  checks:
    - {name: p99, command: "echo 0.3", max: 0.5, min: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := inv.Analysis
	if !a.Enabled() || a.Mode != AnalysisManual || a.Interval != 5*time.Second || a.MinRequests != DefaultAnalysisMinRequests {
		t.Fatalf("defaults: %+v", a)
	}
	if *a.Rate5xx.Max != 0.02 || *a.Rate5xx.MaxRatio != 2 || a.Rate5xx.Margin != 0.001 || a.ConnErrorRate != nil || a.ResponseTimeMs.Max != nil {
		t.Fatalf("thresholds: %+v %+v", a.Rate5xx, a.ResponseTimeMs)
	}
	if len(a.Checks) != 1 || a.Checks[0].Timeout != DefaultCheckTimeout || *a.Checks[0].Max != 0.5 || *a.Checks[0].Min != 0 {
		t.Fatalf("checks: %+v", a.Checks)
	}
	// An explicit min_requests: 0 stays 0; interval above the default stays.
	inv, err = Parse("fleet.yaml", []byte(haproxyBase+"analysis: {duration: 2m, interval: 30s, min_requests: 0, mode: auto-rollback, conn_error_rate: {max: 0}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := inv.Analysis; a.MinRequests != 0 || a.Interval != 30*time.Second || a.Mode != AnalysisAutoRollback {
		t.Fatalf("%+v", a)
	}
}

func TestAnalysisBadInput(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"no duration", "analysis: {mode: auto, rate_5xx: {max: 0.01}}\n", "fleet.yaml:9: analysis: analysis.duration is required"},
		{"bad mode", "analysis: {duration: 1m, mode: automatic, rate_5xx: {max: 0.01}}\n", `analysis.mode: mode must be manual, auto or auto-rollback, not "automatic"`},
		{"interval above duration", "analysis: {duration: 10s, interval: 1m, rate_5xx: {max: 0.01}}\n", "analysis.interval: interval must be positive and at most duration (10s)"},
		{"nothing to judge", "analysis: {duration: 1m}\n", "analysis: analysis has nothing to judge"},
		{"rate above 1", "analysis: {duration: 1m, rate_5xx: {max: 5}}\n", "analysis.rate_5xx.max: max is a share of requests between 0 and 1 (0.01 = 1%), got 5"},
		{"rate not a number", "analysis: {duration: 1m, rate_5xx: {max: lots}}\n", `analysis.rate_5xx.max: "lots" is not a number`},
		{"empty threshold", "analysis: {duration: 1m, rate_5xx: {margin: 0.1}}\n", "analysis.rate_5xx: a threshold needs max, max_ratio or both"},
		{"ratio below 1", "analysis: {duration: 1m, conn_error_rate: {max_ratio: 0.5}}\n", "analysis.conn_error_rate.max_ratio: max_ratio must be at least 1"},
		{"negative margin", "analysis: {duration: 1m, response_time_ms: {max_ratio: 2, margin: -3}}\n", "analysis.response_time_ms.margin: margin must not be negative"},
		{"margin without ratio", "analysis: {duration: 1m, rate_5xx: {max: 0.1, margin: 0.1}}\n", "margin only applies with max_ratio"},
		{"negative min_requests", "analysis: {duration: 1m, min_requests: -1, rate_5xx: {max: 0.1}}\n", "analysis.min_requests: min_requests must not be negative"},
		{"unknown key", "analysis: {duration: 1m, rate5xx: {max: 0.1}}\n", `unknown key "rate5xx" (did you mean "rate_5xx"?)`},
		{"check without command", "analysis:\n  duration: 1m\n  checks:\n    - {name: err, max: 1}\n", "fleet.yaml:12: analysis.checks[0]: command is required"},
		{"check without bounds", "analysis:\n  duration: 1m\n  checks:\n    - {name: err, command: x}\n", "fleet.yaml:12: analysis.checks[0]: a check needs max, min or both"},
		{"check bad name", "analysis:\n  duration: 1m\n  checks:\n    - {name: \"a b\", command: x, max: 1}\n", `analysis.checks[0].name: name "a b" may hold only`},
		{"check duplicate name", "analysis:\n  duration: 1m\n  checks:\n    - {name: a, command: x, max: 1}\n    - {name: a, command: y, max: 1}\n", `fleet.yaml:13: analysis.checks[1].name: name "a" is used by analysis.checks[0] too`},
		{"no gate", "rollout: {pause_after_canary: false}\nanalysis: {duration: 1m, rate_5xx: {max: 0.1}}\n", "fleet.yaml:10: analysis: analysis runs at the canary gate, and rollout.pause_after_canary is false"},
		{"check min above max", "analysis:\n  duration: 1m\n  checks:\n    - {name: a, command: x, max: 1, min: 2}\n", "analysis.checks[0].min: min 2 is above max 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("fleet.yaml", []byte(haproxyBase+c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant an error containing %q", err, c.want)
			}
		})
	}
}

// nginx, exec and none have no per-server counters: thresholds on them are
// refused at the key, checks are accepted.
func TestAnalysisCountersNeedHAProxy(t *testing.T) {
	nginx := strings.Replace(haproxyBase, "{kind: haproxy, backend: shop, endpoints: [{tcp: \"127.0.0.1:9999\"}]}", "{kind: nginx, backend: shop, upstream_file: /etc/nginx/up.conf, endpoints: [{ssh: lb1}]}", 1)
	_, err := Parse("fleet.yaml", []byte(nginx+"analysis: {duration: 1m, rate_5xx: {max: 0.01}}\n"))
	if err == nil || !strings.Contains(err.Error(), "fleet.yaml:9: analysis.rate_5xx: balancer kind nginx has no per-server counters") {
		t.Fatalf("got %v", err)
	}
	inv, err := Parse("fleet.yaml", []byte(nginx+"analysis:\n  duration: 1m\n  checks: [{name: errors, command: \"echo 0\", max: 0}]\n"))
	if err != nil || inv.Analysis.UsesCounters() {
		t.Fatalf("checks alone must do on nginx: %v", err)
	}
}

// The analysis keys fleet.example.yaml shows in comments load as shown.
func TestExampleAnalysisKeysParse(t *testing.T) {
	data, err := os.ReadFile("../../fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	i, j := strings.Index(src, "\nanalysis:"), strings.Index(src, "\nvars:")
	if i < 0 || j < i {
		t.Fatal("the example's analysis section moved; update this test")
	}
	block := regexp.MustCompile(`(?m)^  #   `).ReplaceAllString(src[i:j], "  ")
	block = regexp.MustCompile(`(?m)^  #.*\n`).ReplaceAllString(block, "")
	inv, err := Parse("fleet.example.yaml", []byte(src[:i]+block+src[j:]))
	if err != nil {
		t.Fatal(err)
	}
	a := inv.Analysis
	if a.Mode != AnalysisAuto || a.Duration != 2*time.Minute || a.MinRequests != 200 || *a.Rate5xx.MaxRatio != 2 ||
		*a.ConnErrorRate.Max != 0.005 || *a.ResponseTimeMs.Max != 800 || len(a.Checks) != 1 || a.Checks[0].Timeout != 30*time.Second {
		t.Fatalf("analysis keys: %+v", a)
	}
	// As shipped (commented out), analysis is off.
	inv, err = Parse("fleet.example.yaml", data)
	if err != nil || inv.Analysis.Enabled() {
		t.Fatalf("the example must ship with analysis off: %v %+v", err, inv.Analysis)
	}
}
