package fleet

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// Analysis is canary analysis at every canary gate (an extension of the
// original inventory keys): once the canary batch is back in rotation,
// relctl watches it for Duration, sampling the balancer's per-server
// counters every Interval, compares the canary servers with the servers
// still on the old version (the baseline), runs Checks once at the end,
// and gives a verdict: pass, fail or inconclusive. Mode says what the gate
// does with it. Left out (no `analysis:` key), the gate waits for the
// operator as before (so does `analysis:` with nothing under it).
type Analysis struct {
	// Mode is manual (the operator decides, the verdict is shown), auto
	// (promote on pass, roll back on fail, wait on inconclusive) or
	// auto-rollback (roll back on fail, wait for the operator otherwise).
	Mode     string        `yaml:"mode" json:"mode"`
	Duration time.Duration `yaml:"duration" json:"duration_ns"`
	Interval time.Duration `yaml:"interval" json:"interval_ns"`
	// MinRequests is how many requests the canary must serve in the window
	// before the counters can pass or fail it; below, they are inconclusive.
	MinRequests int `yaml:"min_requests" json:"min_requests"`
	// Rate5xx bounds the share of the canary's requests answered 5xx.
	Rate5xx *Threshold `yaml:"rate_5xx" json:"rate_5xx,omitempty"`
	// ConnErrorRate bounds the share of the canary's requests that failed
	// to connect or were cut (HAProxy econ + eresp).
	ConnErrorRate *Threshold `yaml:"conn_error_rate" json:"conn_error_rate,omitempty"`
	// ResponseTimeMs bounds the canary's average response time in ms
	// (HAProxy rtime, the average over its last 1024 requests).
	ResponseTimeMs *Threshold `yaml:"response_time_ms" json:"response_time_ms,omitempty"`
	// Checks are commands on the operator's machine that print one number.
	Checks []Check `yaml:"checks" json:"checks,omitempty"`
}

// Threshold bounds one metric of the canary: absolutely (canary ≤ Max) and
// relative to the baseline (canary ≤ baseline × MaxRatio + Margin). Either
// may be left out; a value that breaks any bound set fails.
type Threshold struct {
	Max      *float64 `yaml:"max" json:"max,omitempty"`
	MaxRatio *float64 `yaml:"max_ratio" json:"max_ratio,omitempty"`
	Margin   float64  `yaml:"margin" json:"margin,omitempty"`
}

// Check is a command run with sh -c on the operator's machine at the end of
// the analysis window; it must print one number (its last non-empty line
// is read) that must lie within Min and Max. A failing, hanging (past
// Timeout) or garbage-printing command fails the check with the reason.
type Check struct {
	Name string `yaml:"name" json:"name"`
	// Command is never written to JSON (plans, the journal, events): it
	// may hold a secret, such as a token in a curl command.
	Command string        `yaml:"command" json:"-"`
	Max     *float64      `yaml:"max" json:"max,omitempty"`
	Min     *float64      `yaml:"min" json:"min,omitempty"`
	Timeout time.Duration `yaml:"timeout" json:"timeout_ns"`
}

// Analysis modes.
const (
	AnalysisManual       = "manual"
	AnalysisAuto         = "auto"
	AnalysisAutoRollback = "auto-rollback"
)

// Analysis defaults.
const (
	DefaultAnalysisInterval    = 10 * time.Second
	DefaultAnalysisMinRequests = 100
	DefaultCheckTimeout        = 30 * time.Second
)

// Enabled reports whether the inventory asks for canary analysis.
func (a Analysis) Enabled() bool { return a.Duration > 0 }

// UsesCounters reports whether a threshold needs the balancer's counters.
func (a Analysis) UsesCounters() bool {
	return a.Rate5xx != nil || a.ConnErrorRate != nil || a.ResponseTimeMs != nil
}

var checkNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func defaultAnalysis(a *Analysis, set func(string) bool) {
	if !a.Enabled() {
		return
	}
	if a.Mode == "" {
		a.Mode = AnalysisManual
	}
	if a.Interval == 0 {
		a.Interval = min(DefaultAnalysisInterval, a.Duration)
	}
	if !set("analysis.min_requests") {
		a.MinRequests = DefaultAnalysisMinRequests
	}
	for i := range a.Checks {
		if a.Checks[i].Timeout == 0 {
			a.Checks[i].Timeout = DefaultCheckTimeout
		}
	}
}

func (l *loader) validateAnalysis(inv *Inventory) {
	a := inv.Analysis
	set := false
	for p := range l.lines {
		set = set || strings.HasPrefix(p, "analysis.")
	}
	if !set {
		return // no analysis key, or `analysis:` with nothing under it: off
	}
	if a.Duration <= 0 {
		l.missing("analysis", "analysis.duration", "analysis.duration is required and must be positive (how long the canary is watched, such as 2m)")
		return
	}
	if p := inv.Rollout.PauseAfterCanary; p != nil && !*p {
		l.at("analysis", "analysis runs at the canary gate, and rollout.pause_after_canary is false: set it to true (mode auto then decides without the operator)")
	}
	switch a.Mode {
	case AnalysisManual, AnalysisAuto, AnalysisAutoRollback:
	default:
		l.at("analysis.mode", "mode must be %s, %s or %s, not %q", AnalysisManual, AnalysisAuto, AnalysisAutoRollback, a.Mode)
	}
	if a.Interval < 0 || a.Interval > a.Duration {
		l.at("analysis.interval", "interval must be positive and at most duration (%s), got %s", a.Duration, a.Interval)
	}
	if a.MinRequests < 0 {
		l.at("analysis.min_requests", "min_requests must not be negative (got %d)", a.MinRequests)
	}
	if !a.UsesCounters() && len(a.Checks) == 0 {
		l.at("analysis", "analysis has nothing to judge: set rate_5xx, conn_error_rate, response_time_ms or checks")
	}
	if a.UsesCounters() {
		switch inv.Balancer.Kind {
		case BalancerNginx, BalancerExec, BalancerNone:
			for _, k := range []struct {
				key string
				t   *Threshold
			}{{"rate_5xx", a.Rate5xx}, {"conn_error_rate", a.ConnErrorRate}, {"response_time_ms", a.ResponseTimeMs}} {
				if k.t != nil {
					l.at("analysis."+k.key, "balancer kind %s has no per-server counters (only haproxy has): judge the canary with analysis.checks instead", inv.Balancer.Kind)
				}
			}
		}
	}
	l.validateThreshold("analysis.rate_5xx", a.Rate5xx, 1)
	l.validateThreshold("analysis.conn_error_rate", a.ConnErrorRate, 1)
	l.validateThreshold("analysis.response_time_ms", a.ResponseTimeMs, math.Inf(1))
	names := map[string]int{}
	for i, c := range a.Checks {
		p := fmt.Sprintf("analysis.checks[%d]", i)
		switch {
		case c.Name == "":
			l.missing(p, p+".name", "name is required")
		case !checkNameRe.MatchString(c.Name):
			l.at(p+".name", "name %q may hold only letters, digits and . _ -", c.Name)
		default:
			if j, dup := names[c.Name]; dup {
				l.at(p+".name", "name %q is used by analysis.checks[%d] too", c.Name, j)
			}
			names[c.Name] = i
		}
		if c.Command == "" {
			l.missing(p, p+".command", "command is required (run with sh -c on this machine; it prints one number)")
		}
		if c.Max == nil && c.Min == nil {
			l.at(p, "a check needs max, min or both")
		}
		if c.Max != nil && c.Min != nil && *c.Min > *c.Max {
			l.at(p+".min", "min %g is above max %g", *c.Min, *c.Max)
		}
		for _, v := range []struct {
			key string
			v   *float64
		}{{"max", c.Max}, {"min", c.Min}} {
			if v.v != nil && (math.IsNaN(*v.v) || math.IsInf(*v.v, 0)) {
				l.at(p+"."+v.key, "%s must be a finite number", v.key)
			}
		}
		if c.Timeout < 0 {
			l.at(p+".timeout", "timeout must be positive (got %s)", c.Timeout)
		}
	}
}

// validateThreshold checks one threshold; ceiling bounds max (a rate is at
// most 1).
func (l *loader) validateThreshold(key string, t *Threshold, ceiling float64) {
	if t == nil {
		return
	}
	if t.Max == nil && t.MaxRatio == nil {
		l.at(key, "a threshold needs max, max_ratio or both")
	}
	if t.Max != nil && (math.IsNaN(*t.Max) || *t.Max < 0 || *t.Max > ceiling) {
		if ceiling == 1 {
			l.at(key+".max", "max is a share of requests between 0 and 1 (0.01 = 1%%), got %g", *t.Max)
		} else {
			l.at(key+".max", "max must be a number of milliseconds, at least 0, got %g", *t.Max)
		}
	}
	if t.MaxRatio != nil && (math.IsNaN(*t.MaxRatio) || math.IsInf(*t.MaxRatio, 0) || *t.MaxRatio < 1) {
		l.at(key+".max_ratio", "max_ratio must be at least 1 (the canary may be this many times the baseline), got %g", *t.MaxRatio)
	}
	if math.IsNaN(t.Margin) || math.IsInf(t.Margin, 0) || t.Margin < 0 {
		l.at(key+".margin", "margin must not be negative, got %g", t.Margin)
	} else if t.Margin != 0 && t.MaxRatio == nil {
		l.at(key+".margin", "margin only applies with max_ratio (canary ≤ baseline × max_ratio + margin)")
	}
}
