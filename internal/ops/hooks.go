package ops

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/hooks"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// ErrHookRefused means a before_run hook failed (or timed out): the run was
// not started. No lock was taken, no host touched, no journal written.
var ErrHookRefused = errors.New("refused by a before_run hook")

// hookRunner is the inventory's hooks, or nil when it has none.
func (e *Env) hookRunner() *hooks.Runner {
	if e.Hooks != nil {
		return e.Hooks
	}
	if !e.Inv.Hooks.Any() {
		return nil
	}
	return &hooks.Runner{Hooks: e.Inv.Hooks, Dir: filepath.Dir(e.Inv.File)}
}

// runHooks are one run's hooks: what they are given, and what they did.
type runHooks struct {
	runner *hooks.Runner
	base   hooks.Input
	bus    *event.Bus
	// ctx bounds the notification hooks: not the run's context (an
	// interrupted run still reports), but cut by a forced end.
	ctx    context.Context
	cancel context.CancelFunc

	wg      sync.WaitGroup // after_canary hooks in flight
	mu      sync.Mutex
	results []event.HookResult
}

// newRunHooks prepares the hooks of a run of p; force, when closed, cuts
// the notification hooks (a second interrupt).
func (e *Env) newRunHooks(p *plan.Plan, runID string, resumed bool, force <-chan struct{}) *runHooks {
	fleetFile := e.Inv.File
	if abs, err := filepath.Abs(fleetFile); err == nil {
		fleetFile = abs
	}
	h := &runHooks{runner: e.hookRunner(), base: hooks.Input{
		RunID: runID, App: e.Inv.App, Fleet: fleetFile, Operator: e.Owner, Kind: p.Kind, From: p.From, To: p.To,
		Reason: p.Reason, Ticket: p.Ticket, Hosts: p.DeployHosts(), Resumed: resumed,
	}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if force != nil {
		go func() {
			select {
			case <-force:
				h.cancel()
			case <-h.ctx.Done():
			}
		}()
	}
	return h
}

// beforeRun runs the before_run hooks with the plan. A failure refuses the
// run (ErrHookRefused, exit 8) and is told to sinks; the results of hooks
// that passed are returned, for the journal once it exists.
func (h *runHooks) beforeRun(ctx context.Context, p *plan.Plan, sinks []event.Sink) ([]event.HookResult, error) {
	if !h.runner.Has(fleet.HookBeforeRun) {
		return nil, nil
	}
	in := h.base
	in.Hook, in.Plan = fleet.HookBeforeRun, p
	rs := h.runner.Run(ctx, in)
	failed := hooks.Failed(rs)
	if len(failed) == 0 {
		h.record(rs)
		return rs, nil
	}
	bus := event.NewBus(h.base.RunID, nil, sinks...)
	for _, r := range rs {
		bus.Emit(hookEvent(r))
	}
	f := failed[0]
	msg := hooks.Describe(f)
	if out := strings.TrimSpace(f.Output); out != "" && strings.Contains(out, "\n") {
		msg += "\n" + indent(lastLines(out, 10))
	}
	if ctx.Err() != nil {
		// The operator interrupted the hook: an abort (exit 5), not a refusal.
		return nil, fail(view.ExitAborted, fmt.Errorf("interrupted during the before_run hooks (%s): nothing was touched: no lock taken, no host changed, no run journal written", msg))
	}
	return nil, fail(view.ExitRefused, fmt.Errorf("%w: %s\nnothing was touched: no lock taken, no host changed, no run journal written", ErrHookRefused, msg))
}

// watchGate is a sink that runs the after_canary hooks, each time the
// canary gate opens, with the gate event; they run beside the gate (they
// never hold it up) and Wait waits for them before the run's end hooks.
// When canary analysis decides the gate (mode auto or auto-rollback), the
// gate event is its analysis_verdict, evidence included.
func (h *runHooks) watchGate() event.Sink {
	return event.SinkFunc(func(ev event.Event) {
		gate := (ev.Type == event.GateRequested || ev.Type == event.AnalysisVerdict) && ev.Control == event.CtlCanaryGate
		if !gate || !h.runner.Has(fleet.HookAfterCanary) {
			return
		}
		in := h.base
		in.Hook, in.Event = fleet.HookAfterCanary, &ev
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.emit(h.runner.Run(h.ctx, in))
		}()
	})
}

// finish runs the end hooks of a run that ended as res: on_failure when a
// host failed or is out of service (or the run failed), on_rollback when a
// rollback ended, then after_run always. None of them changes res's
// outcome or exit code; res.Summary.Hooks gets every hook's result.
func (h *runHooks) finish(res *rollout.Result) {
	defer h.cancel()
	h.wg.Wait()
	code, _ := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary, Locked: errors.Is(res.Err, rollout.ErrLocked)})
	s := res.Summary
	points := []string{}
	if FailureHook(res.Outcome, s) {
		points = append(points, fleet.HookOnFailure)
	}
	if RollbackHook(res.Outcome, s) {
		points = append(points, fleet.HookOnRollback)
	}
	points = append(points, fleet.HookAfterRun)
	for _, pt := range points {
		if !h.runner.Has(pt) {
			continue
		}
		sum := s
		sum.Hooks = h.all()
		in := h.base
		in.Hook, in.Outcome, in.ExitCode, in.Journal, in.Summary = pt, res.Outcome, &code, s.Journal, &sum
		h.emit(h.runner.Run(h.ctx, in))
	}
	res.Summary.Hooks = h.all()
}

// FailureHook reports whether on_failure runs for a run that ended so: a
// host failed or was left out of service, the run failed or ended
// partially upgraded, or a failure made the failure policy roll it back
// (an operator's rollback of a healthy canary is not a failure).
func FailureHook(outcome event.Outcome, s event.Summary) bool {
	switch {
	case outcome == event.OutcomeFailed, outcome == event.OutcomePartial, len(s.Failed) > 0, len(s.LeftDrained) > 0:
		return true
	}
	return outcome == event.OutcomeRolledBack && s.Error != ""
}

// RollbackHook reports whether on_rollback runs: a rollback ended (the
// failure policy's or the operator's inside a run, or a rollback run:
// relctl rollback, resume --rollback); not while it is paused.
func RollbackHook(outcome event.Outcome, s event.Summary) bool {
	if outcome == event.OutcomePaused {
		return false
	}
	return outcome == event.OutcomeRolledBack || s.Kind == plan.KindRollback || len(s.RolledBack) > 0
}

func (h *runHooks) emit(rs []event.HookResult) {
	h.record(rs)
	for _, r := range rs {
		h.bus.Emit(hookEvent(r))
	}
}

func (h *runHooks) record(rs []event.HookResult) {
	h.mu.Lock()
	h.results = append(h.results, rs...)
	h.mu.Unlock()
}

func (h *runHooks) all() []event.HookResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]event.HookResult(nil), h.results...)
}

// hookEvent is the hook_finished event of r.
func hookEvent(r event.HookResult) event.Event {
	ev := event.Event{Type: event.HookFinished, Hook: &r, Status: event.StatusOK, Duration: r.Duration, Message: hooks.Describe(r)}
	if !r.OK() {
		ev.Status, ev.Error = event.StatusFailed, r.Error
		if r.Hook == fleet.HookBeforeRun {
			ev.Message += " (the run is refused)"
		} else {
			ev.Message += " (a notification: the run goes on as it would)"
		}
	}
	return ev
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
