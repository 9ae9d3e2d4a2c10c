package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// StartOptions are the front end's part of a run.
type StartOptions struct {
	Gate rollout.Gate
	// Sinks get every event after the journal (views, the TUI's channel).
	Sinks []event.Sink
	// LockWait queues behind another run's lock (0: refuse at once, exit 4).
	LockWait time.Duration
	// Force, when closed, forces the run to end (a second interrupt).
	Force <-chan struct{}
}

// Run is a started run.
type Run struct {
	ID      string
	Engine  *rollout.Engine
	journal *journal.Writer
	fresh   bool
	hooks   *runHooks
}

// Start runs what pr prepared, after checking it against the fleet as it
// is now: it observes again (never a cached observation) and goes through
// plan.CheckBasis, the one stale-plan guard. A start refused by the lock
// (exit 4) writes no run journal. The returned run has not begun: call
// Wait.
func (e *Env) Start(ctx context.Context, pr *Prepared, o StartOptions) (*Run, error) {
	if pr == nil || pr.Plan == nil || pr.Nothing != "" {
		return nil, fail(view.ExitUsage, errors.New("nothing to start"))
	}
	p := pr.Plan
	obs, err := e.Observe(ctx)
	if err != nil {
		return nil, err
	}
	if err := plan.CheckBasis(p, obs); err != nil {
		return nil, fail(view.ExitError, err)
	}
	// own are the runs whose (dead) lock this start may continue under.
	own := map[string]bool{}
	if pr.Resume != nil {
		own[pr.Resume.ID] = true
	}
	if pr.Supersedes != nil {
		own[pr.Supersedes.ID] = true
	}
	if pr.TakeOver != nil {
		own[pr.TakeOver.RunID] = true
	}
	if len(own) == 0 {
		if err := e.RefuseUnfinished(); err != nil {
			return nil, err
		}
	}
	// The lock, before any journal is written: a second operator is
	// refused (exit 4) with nothing left behind.
	if info, err := e.ReadLockInfo(ctx); err == nil && info != nil {
		if own[info.RunID] {
			if lv := info.Liveness(); lv.Alive {
				return nil, &rollout.LockError{Holder: *info, Why: lv.Why}
			}
		} else if o.LockWait == 0 {
			return nil, &rollout.LockError{Holder: *info}
		}
	}
	bal, err := Balancer(e.Inv, e.Conn)
	if err != nil {
		return nil, err
	}
	arts, err := artifacts(e.Inv, p)
	if err != nil {
		return nil, err
	}
	var (
		j     *journal.Writer
		runID string
		done  *plan.Progress
	)
	if pr.Resume != nil {
		runID = pr.Resume.ID
	} else {
		runID = journal.NewRunID(e.now())
	}
	// before_run, last of the checks: a hook that fails refuses the run
	// (exit 8) before any journal is written or the lock is taken.
	hk := e.newRunHooks(p, runID, pr.Resume != nil, o.Force)
	passed, err := hk.beforeRun(ctx, p, o.Sinks)
	if err != nil {
		hk.cancel()
		return nil, err
	}
	if pr.Resume != nil {
		j, err = journal.Open(pr.Resume.Path)
		done = &pr.Resume.Progress
	} else {
		j, err = journal.Create(e.JournalDir, runID)
	}
	if err != nil {
		hk.cancel()
		return nil, fail(view.ExitError, err)
	}
	if note := j.Repaired(); note != "" {
		// The journal recorded its own repair; tell the operator too.
		event.NewBus(runID, nil, o.Sinks...).Emit(event.Event{Type: event.Warning, Message: "journal " + j.Path() + " repaired: " + note})
	}
	bus := event.NewBus(runID, nil, j)
	for _, s := range o.Sinks {
		bus.Add(s)
	}
	hk.bus = bus
	for _, r := range passed {
		bus.Emit(hookEvent(r))
	}
	bus.Add(hk.watchGate())
	cfg := rollout.Config{
		Inventory: e.Inv, Plan: p, Hosts: e.Conn, Balancer: bal, Gate: o.Gate, Bus: bus, Journal: j,
		Artifacts: arts, RunID: runID, Owner: e.Owner, Resume: done, ForceBalancer: pr.Force, LockWait: o.LockWait,
		Force: o.Force, TakeOver: pr.TakeOver,
	}
	if sup := pr.Supersedes; sup != nil {
		cfg.OnLocked = func() {
			// The rollback holds the lock: only now is the original run
			// closed, so that refusing or failing before this point
			// leaves it resumable.
			if err := finishRun(sup, event.OutcomeAborted, "superseded by rollback run "+runID); err != nil {
				bus.Emit(event.Event{Type: event.Warning, Message: fmt.Sprintf("mark run %s superseded: %v", sup.ID, err)})
			} else {
				bus.Emit(event.Event{Type: event.Control, Message: fmt.Sprintf("run %s superseded by this rollback", sup.ID)})
			}
		}
	}
	return &Run{ID: runID, Engine: rollout.New(cfg), journal: j, fresh: pr.Resume == nil, hooks: hk}, nil
}

// Wait runs the plan to its end and returns how it ended, after the run's
// end hooks (hooks.go), whose results are in the summary and never change
// the outcome. A new run that the lock refused before changing anything
// leaves no journal behind.
func (r *Run) Wait(ctx context.Context) rollout.Result {
	res := r.Engine.Run(ctx)
	r.hooks.finish(&res)
	_ = r.journal.Close()
	if r.fresh && errors.Is(res.Err, rollout.ErrLocked) {
		if run, err := journal.Read(r.journal.Path()); err == nil && !run.Changed() {
			_ = os.Remove(r.journal.Path())
		}
	}
	return res
}
