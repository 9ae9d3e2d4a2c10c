package ops

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// PlanResume prepares the continuation (or, with rollback, the rollback)
// of this machine's unfinished run. It changes nothing: refusing the
// confirmation leaves the run resumable.
//
// It refuses, exit 4, while the run's process still lives (its pid on
// this machine, or its live lease from another one) and while another run
// holds the lock; both are checked before the journal is opened for
// append. A rollback of the run continues under its lock (Start takes it
// over, audited with both run ids); a run that switched no host has
// nothing to roll back (Settle closes it and frees its lock).
func (e *Env) PlanResume(ctx context.Context, rollback bool) (*Prepared, error) {
	run, err := e.unfinished()
	if err != nil {
		return nil, err
	}
	if run == nil {
		return &Prepared{Nothing: fmt.Sprintf("no unfinished run in %s", e.JournalDir)}, nil
	}
	held, err := e.checkHolder(ctx, run)
	if err != nil {
		return nil, err
	}
	obs, err := e.Observe(ctx)
	if err != nil {
		return nil, err
	}
	if err := AgreeJournal(run, obs); err != nil {
		return nil, fail(view.ExitError, err)
	}
	done := len(run.Progress.Finished)
	if !rollback || run.Plan.Kind == plan.KindRollback {
		if err := e.keepNote(run); err != nil {
			return nil, err
		}
		// A run already rolling back (its plan changed to the rollback)
		// is finished by resuming it.
		pr := &Prepared{Plan: run.Plan, Observed: obs, Resume: run, Force: run.Plan.Kind == plan.KindDowngrade || run.Plan.Kind == plan.KindRepair,
			Question: fmt.Sprintf("resume run %s by %s (%s %s → %s, %d of %d steps done)?", run.ID, run.Owner, run.Plan.Kind, run.Plan.From, run.Plan.To, done, len(run.Plan.Steps))}
		if id := run.Plan.RollsBack; id != "" {
			// The rollback of a dead run died before it held that run's
			// lock: it still takes it over, and closes that run.
			if held != nil && held.RunID == id {
				pr.TakeOver = held
			}
			if orig, err := journal.Read(filepath.Join(e.JournalDir, id+".jsonl")); err == nil && orig.Resumable() {
				pr.Supersedes = orig
			}
		}
		return pr, nil
	}
	rb, err := plan.Rollback(e.Inv, run.Plan, run.Progress)
	if err != nil {
		return nil, fail(view.ExitUsage, err)
	}
	rb.Basis = plan.Basis{Fingerprint: obs.Fingerprint(), Hosts: obs.Hosts}
	rb.RollsBack = run.ID
	rb = keepInFlight(rb, run, obs)
	e.annotate(rb)
	if rb.Empty() {
		return &Prepared{Settle: run, TakeOver: held, Observed: obs,
			Nothing: fmt.Sprintf("nothing to roll back: run %s switched no host", run.ID)}, nil
	}
	// A host in flight when the run died may be drained: that is what the
	// rollback repairs, so the balancer's preflight does not refuse it
	// (the rollback's servers only; hosts it skips must be in rotation).
	return &Prepared{Plan: rb, Observed: obs, Supersedes: run, TakeOver: held, Force: len(hostsInFlight(run)) > 0,
		Question: fmt.Sprintf("roll run %s back: %s back to %s?", run.ID, plural(len(rb.DeployHosts()), "host"), rb.To)}, nil
}

// checkHolder reads the lock for a resume of run: nil when it is free, the
// lock when run's dead process holds it; a refusal (exit 4) when run's
// process is alive or another run holds it; an error when it cannot be
// read (a resume must know whether the run still runs).
func (e *Env) checkHolder(ctx context.Context, run *journal.Run) (*rollout.LockInfo, error) {
	info, err := e.ReadLockInfo(ctx)
	if err != nil {
		return nil, fail(view.ExitError, fmt.Errorf("read the lock: %w: whether run %s still runs cannot be known", err, run.ID))
	}
	if info == nil {
		return nil, nil
	}
	if info.RunID != run.ID && info.TakenFrom != run.ID && (run.Plan.RollsBack == "" || info.RunID != run.Plan.RollsBack) {
		return nil, &rollout.LockError{Holder: *info, Why: fmt.Sprintf("another run holds the lock, not the unfinished run %s", run.ID)}
	}
	if lv := info.Liveness(); lv.Alive {
		return nil, &rollout.LockError{Holder: *info, Why: lv.Why + ": resume refused while it runs"}
	}
	return info, nil
}

// keepInFlight drops from a rollback plan the hosts already on its target,
// except a host whose step was in flight when the run ended: it may still
// be drained or stopped on its old release, and the rollback's sequence
// (idempotent) brings it back into service.
func keepInFlight(rb *plan.Plan, run *journal.Run, obs plan.Observed) *plan.Plan {
	inFlight := hostsInFlight(run)
	q, dropped := plan.DropSettled(rb, obs)
	var back []string
	for _, h := range dropped {
		if inFlight[h] {
			back = append(back, h)
		}
	}
	if len(back) == 0 {
		return q
	}
	// Rebuild with the in-flight hosts kept, in the original order.
	keep := map[string]bool{}
	for _, h := range back {
		keep[h] = true
	}
	out := *rb
	out.Steps = nil
	for _, s := range rb.Steps {
		if s.Kind == plan.StepDeploy {
			if st, ok := obs.State(s.Host); ok && st.Reachable && st.Version == s.To && !keep[s.Host] {
				continue
			}
		}
		out.Steps = append(out.Steps, s)
	}
	out.Notes = append(append([]string(nil), q.Notes...), fmt.Sprintf("in flight when the run ended, brought back into service: %s", strings.Join(back, ", ")))
	return &out
}

// Settle closes an unfinished run that has nothing to roll back: its lock,
// when its dead process still holds it, is broken (audited with the run
// id), then its journal is finished, so that it is not offered again.
func (e *Env) Settle(ctx context.Context, pr *Prepared) error {
	run := pr.Settle
	if run == nil {
		return nil
	}
	var errs []error
	if pr.TakeOver != nil {
		if err := e.Lock().BreakHeld(ctx, *pr.TakeOver, e.Owner, run.ID); err != nil {
			errs = append(errs, fmt.Errorf("release run %s's lock: %w", run.ID, err))
		}
	}
	if len(errs) == 0 {
		if err := finishRun(run, event.OutcomeAborted, "closed by resume --rollback: nothing to roll back, no host was switched"); err != nil {
			errs = append(errs, err)
		}
	}
	return fail(view.ExitError, errors.Join(errs...))
}

// finishRun appends a run_finished record to an unfinished run's journal.
func finishRun(run *journal.Run, outcome event.Outcome, why string) error {
	j, err := journal.Open(run.Path)
	if err != nil {
		return err
	}
	bus := event.NewBus(run.ID, nil, j)
	sum := event.Summary{Kind: run.Plan.Kind, From: run.Plan.From, To: run.Plan.To, Journal: run.Path}
	bus.Emit(event.Event{Type: event.RunFinished, Outcome: outcome, Summary: &sum, Message: why})
	if err := j.Sync(); err != nil {
		j.Close()
		return err
	}
	return j.Close()
}

// AgreeJournal checks that every host is where the journal of run says it
// can be.
func AgreeJournal(run *journal.Run, obs plan.Observed) error {
	var bad []string
	for _, s := range run.Plan.Steps {
		if s.Kind != plan.StepDeploy {
			continue
		}
		st, ok := obs.State(s.Host)
		if !ok || !st.Reachable {
			bad = append(bad, fmt.Sprintf("%s is unreachable (%s): it must be reachable to resume", s.Host, st.Error))
			continue
		}
		switch {
		case run.Progress.Finished[s.ID] && st.Version != s.To && !laterStepTouches(run, s):
			bad = append(bad, fmt.Sprintf("%s runs %s but the journal says it finished %s", s.Host, st.Version, s.String()))
		case !run.Progress.Started[s.ID] && st.Version != s.From && !earlierStepTouches(run, s):
			bad = append(bad, fmt.Sprintf("%s runs %s but the journal says %s has not started (expected %s)", s.Host, st.Version, s.ID, s.From))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the fleet does not agree with the journal of run %s; check the hosts before going on: %s", run.ID, strings.Join(bad, "; "))
	}
	return nil
}

// laterStepTouches / earlierStepTouches allow for multi-hop plans, where a
// host goes through several versions.
func laterStepTouches(run *journal.Run, s plan.Step) bool {
	for _, t := range run.Plan.Steps {
		if t.Kind == plan.StepDeploy && t.Host == s.Host && t.Hop > s.Hop && run.Progress.Started[t.ID] {
			return true
		}
	}
	return false
}

func earlierStepTouches(run *journal.Run, s plan.Step) bool {
	for _, t := range run.Plan.Steps {
		if t.Kind == plan.StepDeploy && t.Host == s.Host && t.Hop < s.Hop {
			return true
		}
	}
	return false
}

// hostsInFlight are the hosts whose deploy step started and did not finish
// and that the run did not settle itself (back in service after its own
// compensation, or failed and reverted): relctl died in the middle of them.
func hostsInFlight(run *journal.Run) map[string]bool {
	settled := map[event.HostState]bool{event.HostInService: true, event.HostFailed: true, event.HostRolledBack: true, event.HostSkipped: true}
	out := map[string]bool{}
	for _, s := range run.Plan.Steps {
		if s.Kind == plan.StepDeploy && run.Progress.Started[s.ID] && !run.Progress.Finished[s.ID] && !run.Progress.Reverted[s.ID] && !settled[run.Hosts[s.Host]] {
			out[s.Host] = true
		}
	}
	return out
}
