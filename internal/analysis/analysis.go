// Package analysis judges a canary from evidence: the balancer's per-server
// counters since the canary went back in rotation, compared with the
// servers still on the old version (the baseline), and the results of the
// inventory's check commands. It owns the counting window across counter
// samples (a balancer reload starts its counters from zero) and the verdict.
//
// It is pure: no I/O, no clock. The rollout engine reads the counters, runs
// the checks and hands their results here.
package analysis

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/fleet"
)

// Result is a verdict, or one metric's part of it.
type Result string

// Results.
const (
	Pass         Result = "pass"
	Fail         Result = "fail"
	Inconclusive Result = "inconclusive"
)

// Counts are one side's traffic in the window (canary or baseline), summed
// over its servers and the balancer's endpoints.
type Counts struct {
	Servers    []string `json:"servers"`
	Requests   int64    `json:"requests"`
	Resp5xx    int64    `json:"resp_5xx"`
	ConnErrors int64    `json:"conn_errors"` // failed connections + cut responses (HAProxy econ + eresp)
	// RespTimeMs is the request-weighted average of the servers' average
	// response time (HAProxy rtime); -1 when unknown (no request, or the
	// balancer does not report it).
	RespTimeMs float64 `json:"resp_time_ms"`
}

// Rate5xx is the share of requests answered 5xx (0 without requests).
func (c Counts) Rate5xx() float64 { return rate(c.Resp5xx, c.Requests) }

// ConnErrorRate is the share of requests that failed to connect or were cut.
func (c Counts) ConnErrorRate() float64 { return rate(c.ConnErrors, c.Requests) }

func rate(n, d int64) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// CheckResult is what one check command gave: a number, or why not.
type CheckResult struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	// Err says why the check gave no number: the command failed (its exit
	// status and stderr), passed its timeout, or printed no number.
	Err string `json:"error,omitempty"`
}

// Input is everything a verdict is made from.
type Input struct {
	Spec fleet.Analysis
	// Counters is false when the balancer has no per-server counters, or
	// they could not be read; CountersWhy then says why.
	Counters    bool
	CountersWhy string
	Canary      Counts
	Baseline    Counts
	Checks      []CheckResult
}

// Metric is one judged figure with its evidence.
type Metric struct {
	// Name is rate_5xx, conn_error_rate, response_time_ms or check:<name>.
	Name   string  `json:"name"`
	Result Result  `json:"result"`
	Canary float64 `json:"canary"`
	// Baseline is the old version's figure; absent for checks and when
	// the baseline served nothing.
	Baseline         *float64 `json:"baseline,omitempty"`
	CanaryRequests   int64    `json:"canary_requests,omitempty"`
	BaselineRequests int64    `json:"baseline_requests,omitempty"`
	// Threshold is the bound as judged, e.g. "≤ 0.01; ≤ baseline × 2 +
	// 0.002 = 0.0025".
	Threshold string `json:"threshold"`
	// Why says what decided a fail or inconclusive result.
	Why string `json:"why,omitempty"`
}

// Verdict is the outcome of an analysis and the evidence behind it.
type Verdict struct {
	Result  Result   `json:"result"`
	Reason  string   `json:"reason"` // one line a person reads first
	Metrics []Metric `json:"metrics"`
	Canary  Counts   `json:"canary"`
	// Baseline: the servers still on the old version.
	Baseline Counts `json:"baseline"`
	// Notes are facts about the evidence (a balancer reload, counters not
	// available, the operator answering before the window ended).
	Notes []string `json:"notes,omitempty"`
	// Elapsed is how long the canary was watched; Duration the window
	// asked for. Final is false for the live figures of a sample.
	Elapsed  time.Duration `json:"elapsed_ns"`
	Duration time.Duration `json:"duration_ns"`
	Final    bool          `json:"final"`
}

// Figures is the evidence in one line: "canary web1: 540 requests, 27 5xx
// (5.00%), 0 connection errors, 12ms · baseline web2, web3: 2100
// requests, 0 5xx (0.00%), 0 connection errors, 10ms".
func (v Verdict) Figures() string {
	side := func(name string, c Counts) string {
		rt := "response time ?"
		if c.RespTimeMs >= 0 {
			rt = fmt.Sprintf("%gms", math.Round(c.RespTimeMs*10)/10)
		}
		return fmt.Sprintf("%s %s: %d requests, %d 5xx (%s), %d connection errors (%s), %s", name, strings.Join(c.Servers, ", "),
			c.Requests, c.Resp5xx, FormatRate(c.Rate5xx()), c.ConnErrors, FormatRate(c.ConnErrorRate()), rt)
	}
	return side("canary", v.Canary) + " · " + side("baseline", v.Baseline)
}

// Evaluate judges in: every threshold the spec sets and every check. A
// metric fails when the canary breaks a bound; it is inconclusive when it
// cannot be judged (fewer than min_requests, no baseline for a relative
// bound, counters not available). The verdict fails when any metric
// fails, is inconclusive when any other is, and passes only when every
// metric passes.
func Evaluate(in Input) Verdict {
	s := in.Spec
	v := Verdict{Canary: in.Canary, Baseline: in.Baseline}
	counters := []struct {
		name string
		t    *fleet.Threshold
		get  func(Counts) (float64, bool)
		rate bool
	}{
		{"rate_5xx", s.Rate5xx, func(c Counts) (float64, bool) { return c.Rate5xx(), c.Requests > 0 }, true},
		{"conn_error_rate", s.ConnErrorRate, func(c Counts) (float64, bool) { return c.ConnErrorRate(), c.Requests > 0 }, true},
		{"response_time_ms", s.ResponseTimeMs, func(c Counts) (float64, bool) { return c.RespTimeMs, c.Requests > 0 && c.RespTimeMs >= 0 }, false},
	}
	for _, c := range counters {
		if c.t == nil {
			continue
		}
		v.Metrics = append(v.Metrics, judgeCounter(c.name, c.t, c.get, c.rate, in))
	}
	if s.UsesCounters() && !in.Counters {
		v.Notes = append(v.Notes, "balancer counters not available: "+in.CountersWhy)
	}
	byName := map[string]CheckResult{}
	for _, r := range in.Checks {
		byName[r.Name] = r
	}
	for _, c := range s.Checks {
		r, ok := byName[c.Name]
		if !ok {
			r = CheckResult{Name: c.Name, Err: "not run"}
		}
		v.Metrics = append(v.Metrics, judgeCheck(c, r))
	}
	v.Result, v.Reason = combine(v.Metrics)
	return v
}

func judgeCounter(name string, t *fleet.Threshold, get func(Counts) (float64, bool), isRate bool, in Input) Metric {
	m := Metric{Name: name, CanaryRequests: in.Canary.Requests, BaselineRequests: in.Baseline.Requests}
	f := func(x float64) string { return fmtValue(x, isRate) }
	var bounds []string
	if t.Max != nil {
		bounds = append(bounds, "≤ "+f(*t.Max))
	}
	if !in.Counters {
		m.Result, m.Why = Inconclusive, "balancer counters not available: "+in.CountersWhy
		m.Threshold = thresholdText(t, isRate)
		return m
	}
	canary, ok := get(in.Canary)
	m.Canary = canary
	if base, bok := get(in.Baseline); bok {
		m.Baseline = &base
	}
	var why []string
	failed := false
	switch {
	case in.Canary.Requests < int64(in.Spec.MinRequests) || in.Canary.Requests == 0:
		m.Result = Inconclusive
		m.Why = fmt.Sprintf("the canary served %d requests, fewer than min_requests %d", in.Canary.Requests, max(in.Spec.MinRequests, 1))
		m.Threshold = thresholdText(t, isRate)
		return m
	case !ok:
		m.Result, m.Why = Inconclusive, "the balancer reports no response time for the canary"
		m.Threshold = thresholdText(t, isRate)
		return m
	}
	if t.Max != nil && canary > *t.Max {
		failed = true
		why = append(why, fmt.Sprintf("canary %s > max %s", f(canary), f(*t.Max)))
	}
	inconclusive := ""
	if t.MaxRatio != nil {
		if m.Baseline == nil {
			bounds = append(bounds, fmt.Sprintf("≤ baseline × %g + %s", *t.MaxRatio, f(t.Margin)))
			inconclusive = fmt.Sprintf("the baseline served %d requests: nothing to compare with", in.Baseline.Requests)
			if !isRate && in.Baseline.Requests > 0 {
				inconclusive = "the balancer reports no response time for the baseline"
			}
		} else {
			limit := *m.Baseline**t.MaxRatio + t.Margin
			bounds = append(bounds, fmt.Sprintf("≤ baseline %s × %g + %s = %s", f(*m.Baseline), *t.MaxRatio, f(t.Margin), f(limit)))
			if canary > limit+1e-12 {
				failed = true
				why = append(why, fmt.Sprintf("canary %s > baseline %s × %g + %s = %s", f(canary), f(*m.Baseline), *t.MaxRatio, f(t.Margin), f(limit)))
			}
		}
	}
	m.Threshold = strings.Join(bounds, "; ")
	switch {
	case failed:
		m.Result, m.Why = Fail, strings.Join(why, "; ")
	case inconclusive != "":
		m.Result, m.Why = Inconclusive, inconclusive
	default:
		m.Result = Pass
	}
	return m
}

func judgeCheck(c fleet.Check, r CheckResult) Metric {
	m := Metric{Name: "check:" + c.Name, Threshold: checkBounds(c)}
	if r.Err != "" {
		m.Result, m.Why = Fail, r.Err
		return m
	}
	m.Canary = r.Value
	switch {
	case c.Max != nil && r.Value > *c.Max:
		m.Result, m.Why = Fail, fmt.Sprintf("%g > max %g", r.Value, *c.Max)
	case c.Min != nil && r.Value < *c.Min:
		m.Result, m.Why = Fail, fmt.Sprintf("%g < min %g", r.Value, *c.Min)
	default:
		m.Result = Pass
	}
	return m
}

func checkBounds(c fleet.Check) string {
	var b []string
	if c.Min != nil {
		b = append(b, fmt.Sprintf("≥ %g", *c.Min))
	}
	if c.Max != nil {
		b = append(b, fmt.Sprintf("≤ %g", *c.Max))
	}
	return strings.Join(b, " and ")
}

func combine(ms []Metric) (Result, string) {
	if len(ms) == 0 {
		return Inconclusive, "nothing was judged"
	}
	var fails, incs []string
	for _, m := range ms {
		switch m.Result {
		case Fail:
			fails = append(fails, m.Name+": "+m.Why)
		case Inconclusive:
			incs = append(incs, m.Name+": "+m.Why)
		}
	}
	switch {
	case len(fails) > 0:
		return Fail, strings.Join(fails, "; ")
	case len(incs) > 0:
		return Inconclusive, strings.Join(incs, "; ")
	}
	return Pass, fmt.Sprintf("every metric within its threshold (%d judged)", len(ms))
}

// thresholdText is the bound as configured, for a metric that could not be
// judged.
func thresholdText(t *fleet.Threshold, isRate bool) string {
	var b []string
	if t.Max != nil {
		b = append(b, "≤ "+fmtValue(*t.Max, isRate))
	}
	if t.MaxRatio != nil {
		b = append(b, fmt.Sprintf("≤ baseline × %g + %s", *t.MaxRatio, fmtValue(t.Margin, isRate)))
	}
	return strings.Join(b, "; ")
}

// fmtValue renders a rate as a percentage ("2.50%") and a time in ms.
func fmtValue(x float64, isRate bool) string {
	if isRate {
		return FormatRate(x)
	}
	if x < 0 {
		return "?"
	}
	return fmt.Sprintf("%gms", math.Round(x*10)/10)
}

// FormatRate renders a share as a percentage with two decimals.
func FormatRate(x float64) string { return fmt.Sprintf("%.2f%%", x*100) }

// Describe says in one line what the spec judges, for the plan: "for 2m
// (every 10s), at least 100 canary requests: 5xx ≤ 1.00%; ...; check
// error-rate ≤ 0.01; mode auto: promote on pass, roll back on fail".
func Describe(s fleet.Analysis, countersAvailable bool) string {
	var parts []string
	add := func(label string, t *fleet.Threshold, isRate bool) {
		if t != nil {
			parts = append(parts, label+" "+thresholdText(t, isRate))
		}
	}
	add("5xx share", s.Rate5xx, true)
	add("connection-error share", s.ConnErrorRate, true)
	add("response time", s.ResponseTimeMs, false)
	for _, c := range s.Checks {
		parts = append(parts, "check "+c.Name+" "+checkBounds(c))
	}
	what := strings.Join(parts, "; ")
	counters := fmt.Sprintf(", at least %d canary requests", s.MinRequests)
	if !s.UsesCounters() {
		counters = ""
	} else if !countersAvailable {
		counters = " (the balancer has no per-server counters: those metrics will be inconclusive)"
	}
	return fmt.Sprintf("watch the canary for %s (every %s) against the hosts still on the old version%s: %s; %s",
		s.Duration, s.Interval, counters, what, ModeText(s.Mode))
}

// ModeText says what the gate does with a verdict in mode.
func ModeText(mode string) string {
	switch mode {
	case fleet.AnalysisAuto:
		return "mode auto: promote on pass, roll back on fail, wait for the operator if inconclusive"
	case fleet.AnalysisAutoRollback:
		return "mode auto-rollback: roll back on fail, else wait for the operator"
	}
	return "mode manual: the operator decides, the verdict is shown"
}
