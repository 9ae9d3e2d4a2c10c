package analysis

import (
	"fmt"
	"sort"
	"time"
)

// ServerCounts are one server's counters as one balancer endpoint reports
// them: cumulative since that balancer process started, except RespTimeMs.
type ServerCounts struct {
	Requests, Resp5xx, ConnErrors, RespErrors int64
	RespTimeMs                                int64 // a gauge; -1 when not reported
}

// Sample is what one balancer endpoint reported at one moment.
type Sample struct {
	Endpoint string
	// Process names the balancer process ("" when the endpoint cannot
	// say): a change means its counters started again from zero.
	Process string
	At      time.Time
	Servers map[string]ServerCounts
}

// Window counts each server's traffic from its first sample on, across
// balancer reloads: when an endpoint's process changes, or any of its
// counters goes down, what was counted until the last sample is kept and
// the new process's counters are added from zero. Requests between that
// last sample and the reload are not seen, and a note says so.
type Window struct {
	start time.Time
	eps   map[string]*endpointWindow
	order []string
	notes []string
}

type endpointWindow struct {
	process string
	base    map[string]ServerCounts // counters at the start of the current process's segment
	last    map[string]ServerCounts
	acc     map[string]ServerCounts // counted in earlier segments
	lastAt  time.Time
}

// NewWindow starts a window at the first samples (one per endpoint).
func NewWindow(first []Sample) *Window {
	w := &Window{eps: map[string]*endpointWindow{}}
	for _, s := range first {
		if w.start.IsZero() || s.At.Before(w.start) {
			w.start = s.At
		}
		w.eps[s.Endpoint] = &endpointWindow{process: s.Process, base: clone(s.Servers), last: clone(s.Servers), acc: map[string]ServerCounts{}, lastAt: s.At}
		w.order = append(w.order, s.Endpoint)
	}
	return w
}

// Add takes the next samples.
func (w *Window) Add(samples []Sample) {
	for _, s := range samples {
		e, ok := w.eps[s.Endpoint]
		if !ok {
			// An endpoint that did not answer at the start: count from now.
			w.eps[s.Endpoint] = &endpointWindow{process: s.Process, base: clone(s.Servers), last: clone(s.Servers), acc: map[string]ServerCounts{}, lastAt: s.At}
			w.order = append(w.order, s.Endpoint)
			w.notes = append(w.notes, fmt.Sprintf("%s answered only from %s on: counted from then", s.Endpoint, s.At.UTC().Format(time.TimeOnly)))
			continue
		}
		if why := resetWhy(e, s); why != "" {
			for name, last := range e.last {
				e.acc[name] = plus(e.acc[name], minus(last, e.base[name]))
			}
			e.base, e.last = map[string]ServerCounts{}, map[string]ServerCounts{}
			w.notes = append(w.notes, fmt.Sprintf("%s %s between %s and %s: its counters started again from zero; the figures add up both processes (requests in between were not seen)",
				s.Endpoint, why, e.lastAt.UTC().Format(time.TimeOnly), s.At.UTC().Format(time.TimeOnly)))
			e.process = s.Process
		}
		for name, c := range s.Servers {
			if _, ok := e.base[name]; !ok && len(e.base) > 0 {
				e.base[name] = ServerCounts{} // a server the old process did not report: all new
			}
			e.last[name] = c
		}
		e.lastAt = s.At
	}
}

func resetWhy(e *endpointWindow, s Sample) string {
	if e.process != "" && s.Process != "" && e.process != s.Process {
		return fmt.Sprintf("reloaded (%s → %s)", e.process, s.Process)
	}
	for name, c := range s.Servers {
		l, ok := e.last[name]
		if ok && (c.Requests < l.Requests || c.Resp5xx < l.Resp5xx || c.ConnErrors < l.ConnErrors || c.RespErrors < l.RespErrors) {
			return fmt.Sprintf("restarted (%s's requests went from %d to %d)", name, l.Requests, c.Requests)
		}
	}
	return ""
}

// Counts sums the window's traffic of servers over every endpoint.
func (w *Window) Counts(servers []string) Counts {
	c := Counts{Servers: append([]string(nil), servers...), RespTimeMs: -1}
	var weighted float64
	var timed int64
	for _, ep := range w.order {
		e := w.eps[ep]
		for _, name := range servers {
			last, ok := e.last[name]
			if _, counted := e.acc[name]; !ok && !counted {
				continue
			}
			if !ok {
				last.RespTimeMs = -1
			}
			d := plus(e.acc[name], minus(last, e.base[name]))
			c.Requests += d.Requests
			c.Resp5xx += d.Resp5xx
			c.ConnErrors += d.ConnErrors + d.RespErrors
			if last.RespTimeMs >= 0 && d.Requests > 0 {
				weighted += float64(last.RespTimeMs) * float64(d.Requests)
				timed += d.Requests
			}
		}
	}
	if timed > 0 {
		c.RespTimeMs = weighted / float64(timed)
	}
	return c
}

// Notes are the resets and late endpoints seen so far, in order.
func (w *Window) Notes() []string { return append([]string(nil), w.notes...) }

// Servers lists every server some endpoint reported, sorted.
func (w *Window) Servers() []string {
	seen := map[string]bool{}
	for _, e := range w.eps {
		for n := range e.last {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func clone(m map[string]ServerCounts) map[string]ServerCounts {
	out := make(map[string]ServerCounts, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func minus(a, b ServerCounts) ServerCounts {
	return ServerCounts{Requests: a.Requests - b.Requests, Resp5xx: a.Resp5xx - b.Resp5xx, ConnErrors: a.ConnErrors - b.ConnErrors, RespErrors: a.RespErrors - b.RespErrors}
}

func plus(a, b ServerCounts) ServerCounts {
	return ServerCounts{Requests: a.Requests + b.Requests, Resp5xx: a.Resp5xx + b.Resp5xx, ConnErrors: a.ConnErrors + b.ConnErrors, RespErrors: a.RespErrors + b.RespErrors}
}
