package analysis

import (
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/fleet"
)

func f(x float64) *float64 { return &x }

func spec(mod func(*fleet.Analysis)) fleet.Analysis {
	s := fleet.Analysis{Mode: fleet.AnalysisAuto, Duration: 10 * time.Second, Interval: time.Second, MinRequests: 100}
	mod(&s)
	return s
}

func counts(req, e5, econ int64, rt float64) Counts {
	return Counts{Requests: req, Resp5xx: e5, ConnErrors: econ, RespTimeMs: rt}
}

func TestEvaluate(t *testing.T) {
	abs5xx := func(s *fleet.Analysis) { s.Rate5xx = &fleet.Threshold{Max: f(0.01)} }
	rel5xx := func(s *fleet.Analysis) { s.Rate5xx = &fleet.Threshold{MaxRatio: f(2), Margin: 0.005} }
	tests := []struct {
		name     string
		in       Input
		want     Result
		metric   string // the metric whose result and why are checked
		mResult  Result
		whyHas   string
		thrHas   string
		baseline bool // the metric carries a baseline figure
	}{
		{"absolute 5xx pass", Input{Spec: spec(abs5xx), Counters: true, Canary: counts(1000, 5, 0, 20), Baseline: counts(3000, 0, 0, 20)},
			Pass, "rate_5xx", Pass, "", "≤ 1.00%", true},
		{"absolute 5xx fail (5% of requests)", Input{Spec: spec(abs5xx), Counters: true, Canary: counts(1000, 50, 0, 20), Baseline: counts(3000, 0, 0, 20)},
			Fail, "rate_5xx", Fail, "canary 5.00% > max 1.00%", "≤ 1.00%", true},
		{"exactly at the max passes", Input{Spec: spec(abs5xx), Counters: true, Canary: counts(1000, 10, 0, 20), Baseline: counts(3000, 0, 0, 20)},
			Pass, "rate_5xx", Pass, "", "", true},
		{"min requests not reached", Input{Spec: spec(abs5xx), Counters: true, Canary: counts(99, 99, 0, 20), Baseline: counts(3000, 0, 0, 20)},
			Inconclusive, "rate_5xx", Inconclusive, "the canary served 99 requests, fewer than min_requests 100", "≤ 1.00%", true},
		{"no requests with min 0", Input{Spec: spec(func(s *fleet.Analysis) { abs5xx(s); s.MinRequests = 0 }), Counters: true, Canary: counts(0, 0, 0, -1)},
			Inconclusive, "rate_5xx", Inconclusive, "served 0 requests", "", false},
		{"relative pass: canary at baseline", Input{Spec: spec(rel5xx), Counters: true, Canary: counts(1000, 20, 0, 20), Baseline: counts(3000, 60, 0, 20)},
			Pass, "rate_5xx", Pass, "", "≤ baseline 2.00% × 2 + 0.50% = 4.50%", true},
		{"relative fail", Input{Spec: spec(rel5xx), Counters: true, Canary: counts(1000, 50, 0, 20), Baseline: counts(3000, 30, 0, 20)},
			Fail, "rate_5xx", Fail, "canary 5.00% > baseline 1.00% × 2 + 0.50% = 2.50%", "", true},
		{"zero baseline: canary within the margin", Input{Spec: spec(rel5xx), Counters: true, Canary: counts(1000, 4, 0, 20), Baseline: counts(3000, 0, 0, 20)},
			Pass, "rate_5xx", Pass, "", "= 0.50%", true},
		{"zero baseline: canary above the margin", Input{Spec: spec(rel5xx), Counters: true, Canary: counts(1000, 6, 0, 20), Baseline: counts(3000, 0, 0, 20)},
			Fail, "rate_5xx", Fail, "canary 0.60% > baseline 0.00% × 2 + 0.50% = 0.50%", "", true},
		{"baseline without traffic: relative bound inconclusive", Input{Spec: spec(rel5xx), Counters: true, Canary: counts(1000, 0, 0, 20), Baseline: counts(0, 0, 0, -1)},
			Inconclusive, "rate_5xx", Inconclusive, "the baseline served 0 requests", "", false},
		{"baseline without traffic: absolute bound still fails", Input{Spec: spec(func(s *fleet.Analysis) { s.Rate5xx = &fleet.Threshold{Max: f(0.01), MaxRatio: f(2)} }), Counters: true, Canary: counts(1000, 50, 0, 20)},
			Fail, "rate_5xx", Fail, "canary 5.00% > max 1.00%", "", false},
		{"connection errors relative", Input{Spec: spec(func(s *fleet.Analysis) { s.ConnErrorRate = &fleet.Threshold{Max: f(0.05), MaxRatio: f(1.5)} }), Counters: true, Canary: counts(200, 0, 10, 20), Baseline: counts(400, 0, 4, 20)},
			Fail, "conn_error_rate", Fail, "canary 5.00% > baseline 1.00% × 1.5 + 0.00% = 1.50%", "", true},
		{"response time relative pass", Input{Spec: spec(func(s *fleet.Analysis) {
			s.ResponseTimeMs = &fleet.Threshold{Max: f(500), MaxRatio: f(1.5), Margin: 10}
		}), Counters: true, Canary: counts(200, 0, 0, 40), Baseline: counts(400, 0, 0, 30)},
			Pass, "response_time_ms", Pass, "", "≤ 500ms; ≤ baseline 30ms × 1.5 + 10ms = 55ms", true},
		{"response time absolute fail", Input{Spec: spec(func(s *fleet.Analysis) { s.ResponseTimeMs = &fleet.Threshold{Max: f(500)} }), Counters: true, Canary: counts(200, 0, 0, 900), Baseline: counts(400, 0, 0, 30)},
			Fail, "response_time_ms", Fail, "canary 900ms > max 500ms", "", true},
		{"response time not reported", Input{Spec: spec(func(s *fleet.Analysis) { s.ResponseTimeMs = &fleet.Threshold{Max: f(500)} }), Counters: true, Canary: counts(200, 0, 0, -1), Baseline: counts(400, 0, 0, 30)},
			Inconclusive, "response_time_ms", Inconclusive, "reports no response time for the canary", "", true},
		{"counters not available", Input{Spec: spec(abs5xx), Counters: false, CountersWhy: "read haproxy 127.0.0.1:9999: connection refused"},
			Inconclusive, "rate_5xx", Inconclusive, "balancer counters not available: read haproxy 127.0.0.1:9999: connection refused", "", false},
		{"check passes", Input{Spec: spec(func(s *fleet.Analysis) { s.Checks = []fleet.Check{{Name: "p99", Max: f(0.5), Min: f(0)}} }), Checks: []CheckResult{{Name: "p99", Value: 0.3}}},
			Pass, "check:p99", Pass, "", "≥ 0 and ≤ 0.5", false},
		{"check above max", Input{Spec: spec(func(s *fleet.Analysis) { s.Checks = []fleet.Check{{Name: "p99", Max: f(0.5)}} }), Checks: []CheckResult{{Name: "p99", Value: 0.7}}},
			Fail, "check:p99", Fail, "0.7 > max 0.5", "", false},
		{"check below min", Input{Spec: spec(func(s *fleet.Analysis) { s.Checks = []fleet.Check{{Name: "orders", Min: f(10)}} }), Checks: []CheckResult{{Name: "orders", Value: 3}}},
			Fail, "check:orders", Fail, "3 < min 10", "", false},
		{"check command failed", Input{Spec: spec(func(s *fleet.Analysis) { s.Checks = []fleet.Check{{Name: "p99", Max: f(0.5)}} }), Checks: []CheckResult{{Name: "p99", Err: "exit status 7: curl: (7) Failed to connect"}}},
			Fail, "check:p99", Fail, "exit status 7: curl: (7) Failed to connect", "", false},
		{"check printed garbage", Input{Spec: spec(func(s *fleet.Analysis) { s.Checks = []fleet.Check{{Name: "p99", Max: f(0.5)}} }), Checks: []CheckResult{{Name: "p99", Err: `printed "null", not a number`}}},
			Fail, "check:p99", Fail, `printed "null", not a number`, "", false},
		{"check never run", Input{Spec: spec(func(s *fleet.Analysis) { s.Checks = []fleet.Check{{Name: "p99", Max: f(0.5)}} })},
			Fail, "check:p99", Fail, "not run", "", false},
		{"a failing check fails a clean canary", Input{Spec: spec(func(s *fleet.Analysis) { abs5xx(s); s.Checks = []fleet.Check{{Name: "p99", Max: f(0.5)}} }), Counters: true,
			Canary: counts(1000, 0, 0, 20), Baseline: counts(3000, 0, 0, 20), Checks: []CheckResult{{Name: "p99", Value: 9}}},
			Fail, "rate_5xx", Pass, "", "", true},
		{"fail beats inconclusive", Input{Spec: spec(func(s *fleet.Analysis) { abs5xx(s); s.Checks = []fleet.Check{{Name: "p99", Max: f(0.5)}} }), Counters: true,
			Canary: counts(10, 0, 0, 20), Baseline: counts(3000, 0, 0, 20), Checks: []CheckResult{{Name: "p99", Value: 9}}},
			Fail, "rate_5xx", Inconclusive, "fewer than min_requests", "", true},
		{"nothing configured", Input{Spec: spec(func(*fleet.Analysis) {})}, Inconclusive, "", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.in)
			if v.Result != tt.want {
				t.Fatalf("verdict %s (%s), want %s; metrics %+v", v.Result, v.Reason, tt.want, v.Metrics)
			}
			if v.Reason == "" {
				t.Fatal("a verdict always says why")
			}
			if tt.metric == "" {
				return
			}
			var m *Metric
			for i := range v.Metrics {
				if v.Metrics[i].Name == tt.metric {
					m = &v.Metrics[i]
				}
			}
			if m == nil {
				t.Fatalf("no metric %s in %+v", tt.metric, v.Metrics)
			}
			if m.Result != tt.mResult || !strings.Contains(m.Why, tt.whyHas) || !strings.Contains(m.Threshold, tt.thrHas) {
				t.Fatalf("metric %+v: want result %s, why containing %q, threshold containing %q", *m, tt.mResult, tt.whyHas, tt.thrHas)
			}
			if (m.Baseline != nil) != tt.baseline {
				t.Fatalf("metric baseline %v, want present=%v", m.Baseline, tt.baseline)
			}
			if strings.HasPrefix(m.Name, "rate") && m.CanaryRequests != tt.in.Canary.Requests {
				t.Fatalf("the evidence must carry the requests counted: %+v", *m)
			}
			if tt.want == Fail && !strings.Contains(v.Reason, "fail") && !strings.Contains(v.Reason, ">") && !strings.Contains(v.Reason, ":") {
				t.Fatalf("reason %q does not say what failed", v.Reason)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	s := spec(func(s *fleet.Analysis) {
		s.Rate5xx = &fleet.Threshold{Max: f(0.01), MaxRatio: f(2), Margin: 0.002}
		s.Checks = []fleet.Check{{Name: "p99", Max: f(0.5)}}
	})
	got := Describe(s, true)
	for _, want := range []string{"for 10s (every 1s)", "at least 100 canary requests", "5xx share ≤ 1.00%; ≤ baseline × 2 + 0.20%", "check p99 ≤ 0.5", "mode auto: promote on pass, roll back on fail"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := Describe(s, false); !strings.Contains(got, "no per-server counters") {
		t.Errorf("%q must say the counters are not available", got)
	}
}
