// Package view turns the event stream into lines for people and programs:
// the plain printer (no colour, RFC3339 times, for logs and pipes) and JSON
// lines (--json). The TUI, in package tui, is the third view of the same
// stream. Views never change anything.
package view

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/event"
)

// Plain prints one line per meaningful event.
type Plain struct {
	mu sync.Mutex
	w  io.Writer
	// Output says whether command output lines are printed (they are
	// always in the journal).
	Output bool
}

// NewPlain returns a plain printer writing to w.
func NewPlain(w io.Writer) *Plain { return &Plain{w: w, Output: true} }

// Emit implements event.Sink.
func (p *Plain) Emit(e event.Event) {
	line := PlainLine(e, p.Output)
	if line == "" {
		return
	}
	p.mu.Lock()
	fmt.Fprintf(p.w, "%s %s\n", e.Time.UTC().Format(time.RFC3339), line)
	p.mu.Unlock()
}

// PlainLine is the text of one event, or "" for events the plain view
// leaves out (they stay in the journal).
func PlainLine(e event.Event, output bool) string {
	who := e.Host
	if who == "" {
		who = "-"
	}
	switch e.Type {
	case event.RunStarted:
		p := e.Plan
		return fmt.Sprintf("run %s started by %s: %s %s %s → %s, %d host(s) to switch", e.RunID, e.Owner, p.App, p.Kind, p.From, p.To, len(p.DeployHosts()))
	case event.PlanChanged:
		return fmt.Sprintf("run %s now runs a %s plan %s → %s: %s", e.RunID, e.Plan.Kind, e.Plan.From, e.Plan.To, e.Message)
	case event.StepStarted:
		return fmt.Sprintf("%s\tstart\t%s", who, e.Message)
	case event.StepFinished:
		switch e.Status {
		case event.StatusOK:
			return fmt.Sprintf("%s\tdone\t%s (%s)", who, e.Step, e.Duration.Round(time.Millisecond))
		case event.StatusSkipped:
			return fmt.Sprintf("%s\tNOT RUN\t%s: %s", who, e.Step, e.Error)
		}
		return fmt.Sprintf("%s\tFAILED\t%s: %s", who, e.Step, e.Error)
	case event.StepSkipped:
		return fmt.Sprintf("%s\tskip\t%s: %s", who, e.Step, e.Message)
	case event.ActionDone:
		if e.Status != event.StatusOK {
			return fmt.Sprintf("%s\tFAILED\t%s: %s", who, e.Action, e.Error)
		}
		msg := string(e.Action)
		if e.Message != "" {
			msg += ": " + e.Message
		}
		return fmt.Sprintf("%s\tok\t%s (%s)", who, msg, e.Duration.Round(time.Millisecond))
	case event.StepOutput:
		if !output {
			return ""
		}
		return fmt.Sprintf("%s\t%s\t%s", who, e.Stream, e.Line)
	case event.HostChanged:
		switch e.State {
		case event.HostRolledBack, event.HostLeftDrained, event.HostReverting, event.HostSkipped:
			return fmt.Sprintf("%s\t%s\t%s", who, strings.ToUpper(string(e.State)), e.Message)
		case event.HostInService:
			return fmt.Sprintf("%s\tin service on %s", who, e.Version)
		}
		return ""
	case event.GateRequested:
		return fmt.Sprintf("-\tGATE\t%s", e.Message)
	case event.GateAnswered:
		return fmt.Sprintf("-\tGATE\tanswer: %s", e.Message)
	case event.AnalysisSample:
		return fmt.Sprintf("-\tANALYSIS\t%s", e.Message)
	case event.AnalysisVerdict:
		return fmt.Sprintf("-\tVERDICT\t%s", e.Message)
	case event.Warning:
		return fmt.Sprintf("%s\tWARNING\t%s", who, e.Message)
	case event.Control:
		return fmt.Sprintf("-\t%s", e.Message)
	case event.RunFinished:
		return fmt.Sprintf("run %s finished: %s", e.RunID, e.Outcome)
	case event.HookFinished:
		return fmt.Sprintf("-\tHOOK\t%s", e.Message)
	}
	return ""
}

// JSON writes every event as one JSON line.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON returns a JSON-lines sink writing to w.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

// Emit implements event.Sink.
func (j *JSON) Emit(e event.Event) {
	j.mu.Lock()
	_ = j.enc.Encode(e)
	j.mu.Unlock()
}

// Summary writes what a finished run tells the operator.
func Summary(w io.Writer, outcome event.Outcome, s event.Summary) {
	fmt.Fprintf(w, "outcome:\t%s\n", outcome)
	fmt.Fprintf(w, "run:\t%s %s → %s in %s\n", s.Kind, s.From, s.To, s.Elapsed.Round(time.Millisecond))
	list := func(name string, hs []string) {
		if len(hs) > 0 {
			fmt.Fprintf(w, "%s:\t%s\n", name, strings.Join(hs, ", "))
		}
	}
	if len(s.Versions) > 0 {
		byV := map[string][]string{}
		var vs []string
		for h, v := range s.Versions {
			if v == "" {
				continue
			}
			if byV[v] == nil {
				vs = append(vs, v)
			}
			byV[v] = append(byV[v], h)
		}
		sort.Strings(vs)
		for _, v := range vs {
			sort.Strings(byV[v])
			fmt.Fprintf(w, "on %s:\t%s\n", v, strings.Join(byV[v], ", "))
		}
	}
	switch s.Kind {
	case "repair":
		list("repaired", s.Upgraded)
	case "downgrade":
		list("downgraded", s.Upgraded) // as the TUI's summary says
	default:
		list("upgraded", s.Upgraded)
	}
	list("rolled back", s.RolledBack)
	list("failed", s.Failed)
	list("skipped", s.Skipped)
	if len(s.LeftDrained) > 0 {
		var hs []string
		for h := range s.LeftDrained {
			hs = append(hs, h)
		}
		sort.Strings(hs)
		for _, h := range hs {
			fmt.Fprintf(w, "LEFT DRAINED:\t%s: %s\n", h, s.LeftDrained[h])
		}
	}
	for _, o := range s.OutBefore {
		fmt.Fprintf(w, "out before:\t%s\n", OutBeforeLine(o))
	}
	if s.PostMigrated {
		fmt.Fprintf(w, "post-migrate:\tran (past the point of no return)\n")
	}
	summaryAnalysis(w, s.Analysis)
	if s.Error != "" {
		fmt.Fprintf(w, "error:\t%s\n", s.Error)
	}
	if line := SessionsLine(s.SSHSessions); line != "" {
		fmt.Fprintf(w, "ssh sessions:\t%s\n", line)
	}
	for _, h := range s.Hooks {
		if !h.OK() {
			fmt.Fprintf(w, "hook failed:\t%s: %s (the outcome above is unchanged)\n", h.Place, h.Error)
		}
	}
	if s.Journal != "" {
		fmt.Fprintf(w, "journal:\t%s\n", s.Journal)
	}
}

// SessionsLine says how many SSH sessions a run opened per host: "2 per
// host (max 2)", or with a mean and the host of the maximum when they
// differ ("2.3 per host (max 4: web2)"); "" when nothing was counted.
func SessionsLine(counts map[string]int) string {
	if len(counts) == 0 {
		return ""
	}
	hosts := make([]string, 0, len(counts))
	total := 0
	for h, n := range counts {
		hosts = append(hosts, h)
		total += n
	}
	sort.Strings(hosts)
	top := hosts[0]
	for _, h := range hosts {
		if counts[h] > counts[top] {
			top = h
		}
	}
	mean := float64(total) / float64(len(counts))
	if total%len(counts) == 0 && counts[top] == total/len(counts) {
		return fmt.Sprintf("%d per host (max %d)", total/len(counts), counts[top])
	}
	return fmt.Sprintf("%.1f per host (max %d: %s)", mean, counts[top], top)
}
