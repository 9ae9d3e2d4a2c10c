package analysis

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 18, 0, 0, 0, time.UTC)

func sample(ep, proc string, sec int, servers map[string]ServerCounts) Sample {
	return Sample{Endpoint: ep, Process: proc, At: t0.Add(time.Duration(sec) * time.Second), Servers: servers}
}

func TestWindowCountsSinceStart(t *testing.T) {
	w := NewWindow([]Sample{sample("lb1", "pid 1", 0, map[string]ServerCounts{
		"web1": {Requests: 100, Resp5xx: 1, RespTimeMs: 10},
		"web2": {Requests: 500, Resp5xx: 5, ConnErrors: 1, RespTimeMs: 10},
	})})
	w.Add([]Sample{sample("lb1", "pid 1", 1, map[string]ServerCounts{
		"web1": {Requests: 150, Resp5xx: 6, RespTimeMs: 30},
		"web2": {Requests: 600, Resp5xx: 5, ConnErrors: 2, RespErrors: 1, RespTimeMs: 20},
	})})
	c := w.Counts([]string{"web1"})
	if c.Requests != 50 || c.Resp5xx != 5 || c.ConnErrors != 0 || c.RespTimeMs != 30 || c.Rate5xx() != 0.1 {
		t.Fatalf("canary %+v", c)
	}
	b := w.Counts([]string{"web2"})
	if b.Requests != 100 || b.Resp5xx != 0 || b.ConnErrors != 2 {
		t.Fatalf("baseline %+v", b)
	}
	if all := w.Counts([]string{"web1", "web2"}); all.Requests != 150 || all.RespTimeMs != (30*50+20*100)/150.0 {
		t.Fatalf("both %+v", all)
	}
	if len(w.Notes()) != 0 {
		t.Fatalf("no reset, no note: %v", w.Notes())
	}
}

// An HA pair: each endpoint counts its own share of the traffic.
func TestWindowSumsEndpoints(t *testing.T) {
	w := NewWindow([]Sample{
		sample("lb1", "pid 1", 0, map[string]ServerCounts{"web1": {Requests: 10}}),
		sample("lb2", "pid 9", 0, map[string]ServerCounts{"web1": {Requests: 70}}),
	})
	w.Add([]Sample{
		sample("lb1", "pid 1", 1, map[string]ServerCounts{"web1": {Requests: 30, Resp5xx: 2}}),
		sample("lb2", "pid 9", 1, map[string]ServerCounts{"web1": {Requests: 100, Resp5xx: 1}}),
	})
	if c := w.Counts([]string{"web1"}); c.Requests != 50 || c.Resp5xx != 3 {
		t.Fatalf("%+v", c)
	}
}

// A reload (new process) starts the counters from zero: the window keeps
// what it counted and adds the new process's counters.
func TestWindowAcrossReload(t *testing.T) {
	w := NewWindow([]Sample{sample("lb1", "pid 1 started 100", 0, map[string]ServerCounts{"web1": {Requests: 1000, Resp5xx: 10}})})
	w.Add([]Sample{sample("lb1", "pid 1 started 100", 1, map[string]ServerCounts{"web1": {Requests: 1100, Resp5xx: 15}})})
	w.Add([]Sample{sample("lb1", "pid 2 started 102", 2, map[string]ServerCounts{"web1": {Requests: 40, Resp5xx: 4}})})
	w.Add([]Sample{sample("lb1", "pid 2 started 102", 3, map[string]ServerCounts{"web1": {Requests: 90, Resp5xx: 6}})})
	if c := w.Counts([]string{"web1"}); c.Requests != 100+90 || c.Resp5xx != 5+6 {
		t.Fatalf("%+v", c)
	}
	notes := strings.Join(w.Notes(), "\n")
	if !strings.Contains(notes, "lb1 reloaded (pid 1 started 100 → pid 2 started 102) between 18:00:01 and 18:00:02: its counters started again from zero") {
		t.Fatalf("notes: %s", notes)
	}
}

// Without a process name (the demo's minilb), a reset shows as counters
// going down.
func TestWindowResetWithoutProcess(t *testing.T) {
	w := NewWindow([]Sample{sample("lb1", "", 0, map[string]ServerCounts{"web1": {Requests: 500}, "web2": {Requests: 500}})})
	w.Add([]Sample{sample("lb1", "", 1, map[string]ServerCounts{"web1": {Requests: 520}, "web2": {Requests: 530}})})
	w.Add([]Sample{sample("lb1", "", 2, map[string]ServerCounts{"web1": {Requests: 5}, "web2": {Requests: 7}})})
	if c := w.Counts([]string{"web1", "web2"}); c.Requests != 20+30+5+7 {
		t.Fatalf("%+v", c)
	}
	if n := w.Notes(); len(n) != 1 || !strings.Contains(n[0], "restarted") {
		t.Fatalf("notes: %v", n)
	}
}

func TestWindowUnknownServer(t *testing.T) {
	w := NewWindow([]Sample{sample("lb1", "", 0, map[string]ServerCounts{"web1": {Requests: 5}})})
	if c := w.Counts([]string{"web9"}); c.Requests != 0 || c.RespTimeMs != -1 {
		t.Fatalf("%+v", c)
	}
	if got := w.Servers(); len(got) != 1 || got[0] != "web1" {
		t.Fatalf("%v", got)
	}
}
