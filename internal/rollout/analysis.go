package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/plan"
)

// This file is canary analysis at the canary gate: once the canary batch is
// back in rotation, the engine reads the balancer's per-server counters
// every analysis.interval for analysis.duration, emits the live figures
// (AnalysisSample), runs the inventory's checks once at the end, and
// records the verdict with its evidence (AnalysisVerdict, the journal, the
// summary). The mode decides what the gate does with it.

// analysedGate is the canary gate when the plan asks for analysis.
func (e *Engine) analysedGate(ctx context.Context, s plan.Step, spec fleet.Analysis) error {
	spec = e.withCheckCommands(spec)
	canary, baseline := e.gateSides(s)
	if spec.Mode == fleet.AnalysisManual {
		return e.manualAnalysedGate(ctx, s, spec, canary, baseline)
	}
	e.bus.Emit(event.Event{Type: event.Control, Control: event.CtlAnalysing, Step: s.ID, Version: s.To,
		Message: fmt.Sprintf("canary analysis (%s): watching %s on %s against %s for %s", spec.Mode, joinHosts(canary), s.To, joinHosts(baseline), spec.Duration)})
	v, err := e.analyse(ctx, s, spec, canary, baseline, nil, event.CtlCanaryGate)
	if err != nil {
		return err
	}
	switch {
	case v.Result == analysis.Fail:
		cause := fmt.Errorf("canary analysis failed: %s", v.Reason)
		e.bus.Emit(event.Event{Type: event.GateAnswered, Step: s.ID, Message: string(RollBack) + " (canary analysis failed)"})
		if err := e.rollback(ctx, cause.Error()); err != nil {
			return fmt.Errorf("%v; and the rollback failed: %w", cause, err)
		}
		return &rolledBack{cause: cause}
	case v.Result == analysis.Pass && spec.Mode == fleet.AnalysisAuto:
		e.bus.Emit(event.Event{Type: event.GateAnswered, Step: s.ID, Message: string(Promote) + " (canary analysis passed)"})
		e.progress.Finished[s.ID] = true
		return nil
	}
	why := "the verdict is inconclusive"
	if v.Result == analysis.Pass {
		why = "the analysis passed; auto-rollback promotes only with the operator"
	}
	return e.askGate(ctx, s, event.CtlCanaryGateAnalysed, fmt.Sprintf("the canary runs %s; canary analysis: %s (%s): promote it to the rest of the fleet, or roll back", s.To, v.Result, why))
}

// manualAnalysedGate asks the operator at once and watches the canary
// meanwhile: the verdict is shown when the window ends; an answer before
// that ends the analysis, which records what it counted so far.
func (e *Engine) manualAnalysedGate(ctx context.Context, s plan.Step, spec fleet.Analysis, canary, baseline []string) error {
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	answered := make(chan Decision, 1)
	go func() {
		defer close(done)
		_, _ = e.analyse(actx, s, spec, canary, baseline, answered, "")
	}()
	err := e.askGate(ctx, s, event.CtlCanaryGate, fmt.Sprintf("the canary runs %s (canary analysis runs for %s; the verdict is shown when it ends): promote it to the rest of the fleet, or roll back", s.To, spec.Duration))
	d := Abort
	if err == nil {
		d = Promote
	} else if errors.Is(err, errRollback) {
		d = RollBack
	}
	answered <- d
	cancel()
	<-done
	return err
}

// withCheckCommands gives spec's checks their commands from the inventory:
// a plan (and the journal's copy a resume reads) never records them, as
// they may hold secrets. A check the inventory no longer has keeps no
// command, and fails saying so.
func (e *Engine) withCheckCommands(spec fleet.Analysis) fleet.Analysis {
	cmds := map[string]string{}
	for _, c := range e.inv.Analysis.Checks {
		cmds[c.Name] = c.Command
	}
	checks := make([]fleet.Check, len(spec.Checks))
	for i, c := range spec.Checks {
		c.Command = cmds[c.Name]
		checks[i] = c
	}
	spec.Checks = checks
	return spec
}

// askGate is the operator's gate: GateRequested (marked kind), Approve,
// GateAnswered.
func (e *Engine) askGate(ctx context.Context, s plan.Step, kind event.ControlKind, msg string) error {
	e.bus.Emit(event.Event{Type: event.GateRequested, Control: kind, Step: s.ID, Version: s.To, Message: msg})
	d, err := e.cfg.Gate.Approve(ctx, s)
	if err != nil || ctx.Err() != nil {
		d = Abort
	}
	e.bus.Emit(event.Event{Type: event.GateAnswered, Step: s.ID, Message: string(d)})
	switch d {
	case Promote:
		e.progress.Finished[s.ID] = true
		return nil
	case RollBack:
		return errRollback
	}
	return fmt.Errorf("%w: the canary was not promoted", errAbort)
}

// gateSides lists the balancer servers of the gate's canary batch that are
// in service on its version, and those of the hop's later batches (still
// on the old version): the baseline.
func (e *Engine) gateSides(s plan.Step) (canary, baseline []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range e.plan.Steps {
		if st.Kind != plan.StepDeploy || st.Hop != s.Hop {
			continue
		}
		h := e.hosts[st.Host]
		if !e.inv.HostBalanced(h) {
			// A balancer: none role has no counters to compare.
			continue
		}
		server := h.Server
		switch {
		case st.Batch == 1 && e.final[st.Host] == event.HostInService && e.versions[st.Host] == s.To:
			canary = append(canary, server)
		case st.Batch > 1:
			baseline = append(baseline, server)
		}
	}
	sort.Strings(canary)
	sort.Strings(baseline)
	return canary, baseline
}

// analyse watches the canary for spec.Duration and returns the verdict,
// which it has emitted (AnalysisVerdict) with its evidence. It ends early
// with an error when the operator aborts, asks for a rollback or
// interrupts; answered (manual mode) ends it early with the verdict on what
// was counted so far. The verdict event is marked gate (CtlCanaryGate when
// the analysis decides the gate, "" in manual mode).
func (e *Engine) analyse(ctx context.Context, s plan.Step, spec fleet.Analysis, canary, baseline []string, answered <-chan Decision, gate event.ControlKind) (analysis.Verdict, error) {
	start := time.Now()
	in := analysis.Input{Spec: spec}
	var notes []string
	ctr, ok := e.cfg.Balancer.(lb.Counters)
	var win *analysis.Window
	switch {
	case !spec.UsesCounters():
	case !ok:
		in.CountersWhy = fmt.Sprintf("balancer %s has no per-server counters", e.cfg.Balancer.Kind())
	}
	// read takes the counters: the first read that works opens the window
	// (a read that fails is retried at the next interval, and counted).
	reads, failedReads, lastReadErr := 0, 0, error(nil)
	read := func() {
		if !ok || !spec.UsesCounters() {
			return
		}
		reads++
		got, err := ctr.ServerStats(ctx)
		if err != nil {
			failedReads++
			lastReadErr = err
			if win == nil {
				in.CountersWhy = "read the balancer's counters: " + err.Error()
			}
			return
		}
		if win == nil {
			win = analysis.NewWindow(samples(got))
			if reads > 1 {
				notes = append(notes, fmt.Sprintf("the balancer's counters could first be read after %s: counted from then", time.Since(start).Round(time.Second)))
			}
			return
		}
		win.Add(samples(got))
	}
	read()
	if len(canary) == 0 {
		notes = append(notes, "no canary host is in service on "+s.To)
	}
	verdict := func(final bool) analysis.Verdict {
		in := in
		if win != nil {
			in.Counters = true
			in.Canary, in.Baseline = win.Counts(canary), win.Counts(baseline)
		} else {
			in.Canary, in.Baseline = analysis.Counts{Servers: canary, RespTimeMs: -1}, analysis.Counts{Servers: baseline, RespTimeMs: -1}
		}
		if !final {
			in.Spec.Checks = nil // checks run once, at the end
		}
		v := analysis.Evaluate(in)
		v.Elapsed, v.Duration, v.Final = time.Since(start), spec.Duration, final
		if win != nil {
			v.Notes = append(v.Notes, win.Notes()...)
		}
		v.Notes = append(v.Notes, notes...)
		return v
	}
	deadline := start.Add(spec.Duration)
	var early string
	var stopErr error
loop:
	for {
		next := time.Now().Add(spec.Interval)
		if next.After(deadline) {
			next = deadline
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-t.C:
		case d := <-answered:
			t.Stop()
			early = fmt.Sprintf("the operator answered %s after %s of %s: judged on what was counted until then", d, time.Since(start).Round(time.Second), spec.Duration)
			break loop
		case <-e.wake:
			t.Stop()
			e.mu.Lock()
			abort, rb := e.abortReq, e.rollbackReq
			e.mu.Unlock()
			switch {
			case abort != "":
				stopErr = fmt.Errorf("%w: %s", errAbort, abort)
				early = "aborted by the operator: " + abort
				break loop
			case rb:
				stopErr = errRollback
				early = "the operator asked for a rollback"
				break loop
			}
			continue
		case <-ctx.Done():
			t.Stop()
			if answered != nil {
				// manual mode: the gate's answer cancelled us; take it.
				select {
				case d := <-answered:
					early = fmt.Sprintf("the operator answered %s after %s of %s: judged on what was counted until then", d, time.Since(start).Round(time.Second), spec.Duration)
				default:
					early = "interrupted"
				}
			} else {
				early = "interrupted"
			}
			stopErr = fmt.Errorf("%w: interrupted during canary analysis", errAbort)
			break loop
		}
		read()
		if !time.Now().Before(deadline) {
			break
		}
		v := verdict(false)
		e.bus.Emit(event.Event{Type: event.AnalysisSample, Step: s.ID, Version: s.To, Analysis: &v,
			Message: fmt.Sprintf("canary analysis %s/%s: %s", v.Elapsed.Round(time.Second), spec.Duration, v.Figures())})
	}
	if failedReads > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d reads of the balancer's counters failed (last: %v); the reads that worked count everything in between", failedReads, reads, lastReadErr))
	}
	if early == "" {
		in.Checks = e.runChecks(ctx, spec, s, canary, baseline, start)
	} else {
		notes = append(notes, early)
	}
	v := verdict(early == "")
	if early != "" && v.Result == analysis.Pass {
		// A cut window (and checks that never ran) is never a pass.
		v.Result, v.Reason = analysis.Inconclusive, "the window was cut short: "+early
	}
	v.Final = true
	e.mu.Lock()
	e.lastVerdict = &v
	e.mu.Unlock()
	e.bus.Emit(event.Event{Type: event.AnalysisVerdict, Control: gate, Step: s.ID, Version: s.To, Analysis: &v,
		Message: fmt.Sprintf("canary analysis: %s: %s · %s", strings.ToUpper(string(v.Result)), v.Reason, v.Figures())})
	return v, stopErr
}

func samples(in []lb.CounterSample) []analysis.Sample {
	out := make([]analysis.Sample, len(in))
	for i, s := range in {
		m := make(map[string]analysis.ServerCounts, len(s.Servers))
		for name, st := range s.Servers {
			m[name] = analysis.ServerCounts{Requests: st.Requests, Resp5xx: st.Resp5xx, ConnErrors: st.ConnErrors, RespErrors: st.RespErrors, RespTimeMs: st.RespTimeMs}
		}
		out[i] = analysis.Sample{Endpoint: s.Endpoint, Process: s.Process, At: s.At, Servers: m}
	}
	return out
}
