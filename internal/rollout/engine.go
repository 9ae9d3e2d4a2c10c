// Package rollout executes a Plan: step by step, staging in parallel, batches
// in order with their hosts in parallel, each host drained, switched,
// health-checked and put back. It emits one event stream, keeps the lock,
// compensates every failure so that no host is left drained without saying
// so, and applies the failure policy.
//
// It never formats output: views consume its events.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/plan"
)

// Decision is the operator's answer at a gate or after a failure.
type Decision string

// Decisions.
const (
	Promote  Decision = "promote"  // go on
	RollBack Decision = "rollback" // send every switched host back
	Abort    Decision = "abort"    // stop safely now, hosts as they are
	Stop     Decision = "stop"     // end the process, leaving the run paused and resumable
)

// Gate asks the operator. The TUI implements it with a dialog; --yes with
// AutoApprove.
type Gate interface {
	// Approve is asked after the canary batch.
	Approve(ctx context.Context, step plan.Step) (Decision, error)
	// Failed is asked when the failure policy is pause.
	Failed(ctx context.Context, reason string) (Decision, error)
}

// AutoApprove promotes every gate and stops (leaving the run paused and
// resumable) when the policy says pause: what --yes means.
type AutoApprove struct{}

// Approve implements Gate.
func (AutoApprove) Approve(context.Context, plan.Step) (Decision, error) { return Promote, nil }

// Failed implements Gate.
func (AutoApprove) Failed(context.Context, string) (Decision, error) { return Stop, nil }

// Artifact is a release file on the operator's machine.
type Artifact struct {
	Path   string
	SHA256 string
}

// Config is everything a run needs.
type Config struct {
	Inventory *fleet.Inventory
	Plan      *plan.Plan
	Hosts     Hosts
	Balancer  lb.Balancer
	Gate      Gate
	Bus       *event.Bus
	Journal   *journal.Writer // nil in some tests
	Artifacts map[string]Artifact
	RunID     string
	Owner     string
	// Resume holds the progress of an earlier process of this same run:
	// finished steps are skipped, the rest run again (every step is
	// idempotent).
	Resume *plan.Progress
	// ForceBalancer starts even when a server is already DRAIN/MAINT.
	ForceBalancer bool
	// LockLease is how long the lock outlives a silent process (default 60s).
	LockLease time.Duration
	// CommandTimeout bounds stop, start, switch and staging commands (default 5m).
	CommandTimeout time.Duration
	// LockWait queues behind another run's lock for this long (0 = refuse at once).
	LockWait time.Duration
}

// Result is how a run ended.
type Result struct {
	Outcome event.Outcome
	Summary event.Summary
	Err     error
}

// Engine runs one plan (and, on failure or request, its rollback).
type Engine struct {
	cfg   Config
	inv   *fleet.Inventory
	hosts map[string]fleet.Host
	bus   *event.Bus

	mu          sync.Mutex
	paused      bool
	abortReq    string
	rollbackReq bool
	wake        chan struct{}

	plan       *plan.Plan
	progress   plan.Progress
	inRollback bool
	lock       *Lock
	lockInfo   LockInfo
	lockHeld   bool
	stopRenew  func()
	held       *Held // the lock's renewals while the run holds it (lockrun.go)
	touched    map[string]bool
	final      map[string]event.HostState
	versions   map[string]string
	wentBack   map[string]bool // hosts a rollback plan sent back
	reasons    map[string]string
	reverted   map[string]bool
	failed     int
	postDone   bool
	start      time.Time
}

// New prepares an engine.
func New(cfg Config) *Engine {
	if cfg.LockLease == 0 {
		cfg.LockLease = 60 * time.Second
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 5 * time.Minute
	}
	if cfg.Gate == nil {
		cfg.Gate = AutoApprove{}
	}
	e := &Engine{
		cfg: cfg, inv: cfg.Inventory, bus: cfg.Bus, plan: cfg.Plan,
		hosts: map[string]fleet.Host{}, wake: make(chan struct{}, 1),
		touched: map[string]bool{}, final: map[string]event.HostState{}, versions: map[string]string{}, wentBack: map[string]bool{}, reasons: map[string]string{}, reverted: map[string]bool{},
		progress: plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}},
	}
	for _, h := range cfg.Inventory.Hosts {
		e.hosts[h.Name] = h
	}
	e.inRollback = cfg.Plan.Kind == plan.KindRollback
	lockHost := cfg.Plan.Settings.MigrationsHost
	e.lock = &Lock{Hosts: cfg.Hosts, Host: lockHost, Path: cfg.Inventory.HostPath(e.hosts[lockHost]), Lease: cfg.LockLease}
	e.lockInfo = LockInfo{Owner: cfg.Owner, RunID: cfg.RunID, Fingerprint: cfg.Plan.Basis.Fingerprint}
	return e
}

// Pause asks the run to stop after the hosts in flight, until Resume.
func (e *Engine) Pause() {
	e.control(func() { e.paused = true }, "pause requested: stopping after the hosts in flight")
}

// Resume lets a paused run go on.
func (e *Engine) Resume() { e.control(func() { e.paused = false }, "resumed") }

// Abort asks the run to stop safely: the hosts in flight finish (or are
// reverted), nothing further starts, the lock is released.
func (e *Engine) Abort(why string) {
	e.control(func() { e.abortReq = why }, "abort requested: "+why)
}

// RequestRollback asks the run to send every switched host back, after the
// hosts in flight.
func (e *Engine) RequestRollback() {
	e.control(func() { e.rollbackReq = true }, "rollback requested: after the hosts in flight, every switched host goes back")
}

func (e *Engine) control(f func(), msg string) {
	e.mu.Lock()
	f()
	e.mu.Unlock()
	e.bus.Emit(event.Event{Type: event.Control, Message: msg})
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// errAbort and errRollback stop the step loop.
var (
	errAbort    = errors.New("aborted")
	errRollback = errors.New("rollback requested")
	errStopped  = errors.New("stopped, paused for the operator")
)

// checkpoint is called between steps and batches: it honours the operator's
// requests and Ctrl-C, and waits while paused.
func (e *Engine) checkpoint(ctx context.Context) error {
	for {
		e.mu.Lock()
		abort, rb, paused := e.abortReq, e.rollbackReq, e.paused
		e.mu.Unlock()
		if err := e.lockLost(); err != nil { // lock lost: no new step (lockrun.go)
			return err
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%w: interrupted", errAbort)
		case abort != "":
			return fmt.Errorf("%w: %s", errAbort, abort)
		case rb && !e.inRollback:
			return errRollback
		case !paused:
			if j := e.cfg.Journal; j != nil {
				if err := j.Err(); err != nil {
					return fmt.Errorf("%w: the journal cannot be written, so nothing more is changed: %v", errAbort, err)
				}
			}
			return nil
		}
		select {
		case <-e.wake:
		case <-ctx.Done():
		}
	}
}

// Run executes the plan and returns how it ended. It always ends with a
// RunFinished event, the lock released (unless the run paused) and an audit
// record on every host it touched.
func (e *Engine) Run(ctx context.Context) Result {
	e.start = time.Now()
	if e.cfg.Resume == nil {
		e.bus.Emit(event.Event{Type: event.RunStarted, Plan: e.plan, Owner: e.cfg.Owner, Message: e.plan.Steps[0].String()})
	} else {
		e.bus.Emit(event.Event{Type: event.Control, Message: fmt.Sprintf("resumed by %s", e.cfg.Owner)})
		if !e.plan.HasKind(plan.StepLock) {
			// An inline rollback plan has no lock step: take our lock again.
			if err := e.acquireLock(ctx, plan.Step{}); err != nil {
				return e.finish(ctx, event.OutcomeFailed, err)
			}
		}
	}
	for _, s := range e.plan.Skipped {
		e.bus.Emit(event.Event{Type: event.HostChanged, Host: s.Host, State: event.HostSkipped, Version: s.Version, Message: s.Reason})
	}
	err := e.runSteps(ctx, e.cfg.Resume)
	outcome := event.OutcomeSucceeded
	switch {
	case err == nil:
	case errors.Is(err, errRollback):
		err = e.rollback(ctx, "the operator asked for a rollback")
		outcome = event.OutcomeRolledBack
		if err != nil {
			outcome = outcomeOf(err)
		}
	case errors.Is(err, errAbort):
		outcome = event.OutcomeAborted
	case errors.Is(err, errStopped):
		outcome = event.OutcomePaused
	default:
		outcome = event.OutcomeFailed
		var rb *rolledBack
		if errors.As(err, &rb) {
			outcome = event.OutcomeRolledBack
		}
	}
	return e.finish(ctx, outcome, err)
}

func outcomeOf(err error) event.Outcome {
	switch {
	case errors.Is(err, errAbort):
		return event.OutcomeAborted
	case errors.Is(err, errStopped):
		return event.OutcomePaused
	}
	return event.OutcomeFailed
}

// rolledBack is the error of a run whose failure policy rolled it back.
type rolledBack struct{ cause error }

func (r *rolledBack) Error() string { return "rolled back after: " + r.cause.Error() }
func (r *rolledBack) Unwrap() error { return r.cause }

// runSteps runs e.plan from the start, skipping what done says finished.
func (e *Engine) runSteps(ctx context.Context, done *plan.Progress) error {
	steps := e.plan.Steps
	for i := 0; i < len(steps); {
		j := i + 1
		s := steps[i]
		switch s.Kind {
		case plan.StepStage, plan.StepCleanup:
			for j < len(steps) && steps[j].Kind == s.Kind {
				j++
			}
		case plan.StepDeploy:
			for j < len(steps) && steps[j].Kind == plan.StepDeploy && steps[j].Hop == s.Hop && steps[j].Batch == s.Batch {
				j++
			}
		}
		group := steps[i:j]
		i = j
		var todo []plan.Step
		for _, g := range group {
			if done != nil && done.Finished[g.ID] {
				e.progress.Finished[g.ID] = true
				e.bus.Emit(event.Event{Type: event.StepSkipped, Step: g.ID, Host: g.Host, Message: "finished before the resume"})
				if g.Kind == plan.StepDeploy {
					e.touched[g.Host] = true
					e.final[g.Host] = event.HostInService
				}
				if g.Kind == plan.StepLock {
					// Take our own lock again (the lease may have lapsed).
					todo = append(todo, g)
				}
				continue
			}
			todo = append(todo, g)
		}
		if len(todo) == 0 {
			continue
		}
		if s.Kind != plan.StepPreflight && s.Kind != plan.StepUnlock {
			if err := e.checkpoint(ctx); err != nil {
				return err
			}
		}
		if err := e.runGroup(ctx, todo); err != nil {
			return err
		}
		if s.Kind == plan.StepDeploy && i < len(steps) && steps[i].Kind == plan.StepDeploy && e.plan.Settings.WaitBetweenBatches > 0 {
			e.bus.Emit(event.Event{Type: event.Control, Message: fmt.Sprintf("waiting %s before the next batch", e.plan.Settings.WaitBetweenBatches)})
			select {
			case <-time.After(time.Duration(e.plan.Settings.WaitBetweenBatches)):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

func (e *Engine) runGroup(ctx context.Context, group []plan.Step) error {
	s := group[0]
	switch s.Kind {
	case plan.StepPreflight:
		return e.step(ctx, s, e.preflight)
	case plan.StepLock:
		return e.step(ctx, s, e.acquireLock)
	case plan.StepStage:
		return e.parallel(ctx, group, e.cfg.Plan.Settings.Parallel, e.stage)
	case plan.StepMigrate:
		return e.step(ctx, s, func(ctx context.Context, s plan.Step) error { return e.migrate(ctx, s, fleet.CmdMigrate) })
	case plan.StepDeploy:
		return e.batch(ctx, group)
	case plan.StepGate:
		return e.gate(ctx, s)
	case plan.StepPostMigrate:
		return e.step(ctx, s, e.postMigrate)
	case plan.StepCleanup:
		err := e.parallel(ctx, group, e.cfg.Plan.Settings.Parallel, e.cleanup)
		if err != nil {
			e.bus.Emit(event.Event{Type: event.Warning, Message: "cleanup: " + err.Error() + " (the release is done; old releases were left in place)"})
		}
		return nil
	case plan.StepUnlock:
		return e.step(ctx, s, func(ctx context.Context, s plan.Step) error { return e.releaseLock(ctx) })
	}
	return fmt.Errorf("step %s: unknown kind %q", s.ID, s.Kind)
}

// step runs one step between StepStarted and StepFinished events. The
// journal is synced before fn runs.
func (e *Engine) step(ctx context.Context, s plan.Step, fn func(context.Context, plan.Step) error) error {
	e.mu.Lock()
	e.progress.Started[s.ID] = true
	e.mu.Unlock()
	e.bus.Emit(event.Event{Type: event.StepStarted, Step: s.ID, Host: s.Host, Message: s.String()})
	if j := e.cfg.Journal; j != nil && s.Mutating {
		if err := j.Err(); err != nil {
			err = fmt.Errorf("journal cannot be written, %s not started: %w", s.ID, err)
			e.bus.Emit(event.Event{Type: event.StepFinished, Step: s.ID, Host: s.Host, Status: event.StatusFailed, Error: err.Error()})
			return fmt.Errorf("%w: %v", errAbort, err)
		}
	}
	t0 := time.Now()
	err := fn(ctx, s)
	ev := event.Event{Type: event.StepFinished, Step: s.ID, Host: s.Host, Status: event.StatusOK, Duration: time.Since(t0)}
	if err != nil {
		ev.Status, ev.Error = event.StatusFailed, err.Error()
	} else {
		e.mu.Lock()
		e.progress.Finished[s.ID] = true
		e.mu.Unlock()
	}
	e.bus.Emit(ev)
	return err
}

// parallel runs fn over steps with at most limit at once; every step runs
// (one failure does not cancel the others' uploads), and the errors are
// joined, each prefixed with its host.
func (e *Engine) parallel(ctx context.Context, steps []plan.Step, limit int, fn func(context.Context, plan.Step) error) error {
	if limit < 1 {
		limit = 1
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	errs := make([]error, len(steps))
	for i, s := range steps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = e.step(ctx, s, fn)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (e *Engine) gate(ctx context.Context, s plan.Step) error {
	e.progress.Started[s.ID] = true
	e.bus.Emit(event.Event{Type: event.GateRequested, Step: s.ID, Message: fmt.Sprintf("the canary runs %s: promote it to the rest of the fleet, or roll back", s.To)})
	d, err := e.cfg.Gate.Approve(ctx, s)
	if err != nil {
		d = Abort
	}
	if ctx.Err() != nil {
		d = Abort
	}
	e.bus.Emit(event.Event{Type: event.GateAnswered, Step: s.ID, Message: string(d)})
	switch d {
	case Promote:
		e.progress.Finished[s.ID] = true
		return nil
	case RollBack:
		return errRollback
	default:
		return fmt.Errorf("%w: the canary was not promoted", errAbort)
	}
}

// batch deploys a batch's hosts in parallel, then applies the failure
// policy if the failure budget is spent.
func (e *Engine) batch(ctx context.Context, steps []plan.Step) error {
	err := e.parallel(ctx, steps, len(steps), e.deployHost)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	failed, budget := e.failed, e.plan.Settings.MaxFailedHosts
	e.mu.Unlock()
	if failed <= budget {
		e.bus.Emit(event.Event{Type: event.Warning, Message: fmt.Sprintf("%d host(s) failed, within the failure budget of %d: going on", failed, budget)})
		return nil
	}
	return e.onFailure(ctx, err)
}

func (e *Engine) onFailure(ctx context.Context, cause error) error {
	if e.inRollback {
		return cause
	}
	if e.plan.Settings.OnFailure == fleet.OnFailureRollback {
		if err := e.rollback(ctx, "on_failure: rollback after: "+cause.Error()); err != nil {
			return fmt.Errorf("%v; and the rollback failed: %w", cause, err)
		}
		return &rolledBack{cause: cause}
	}
	e.bus.Emit(event.Event{Type: event.Control, Message: "paused for the operator (on_failure: pause): " + cause.Error()})
	d, err := e.cfg.Gate.Failed(ctx, cause.Error())
	if err != nil {
		d = Stop
	}
	e.bus.Emit(event.Event{Type: event.GateAnswered, Message: string(d)})
	switch d {
	case Promote:
		return nil
	case RollBack:
		if err := e.rollback(ctx, "the operator chose rollback after: "+cause.Error()); err != nil {
			return err
		}
		return &rolledBack{cause: cause}
	case Abort:
		return fmt.Errorf("%w: after %v", errAbort, cause)
	}
	return fmt.Errorf("%w: %v", errStopped, cause)
}

// rollback switches the run to the rollback plan of what it did so far.
func (e *Engine) rollback(ctx context.Context, why string) error {
	prog := plan.Progress{Started: e.progress.Started, Finished: e.progress.Finished, Reverted: map[string]bool{}}
	for id := range e.progress.Started {
		if s, ok := e.plan.Step(id); ok && s.Kind == plan.StepDeploy && e.reverted[id] {
			prog.Reverted[id] = true // already back on its previous release
		}
	}
	rb, err := plan.Rollback(e.inv, e.plan, prog)
	if err != nil {
		e.bus.Emit(event.Event{Type: event.Warning, Message: "rollback refused: " + err.Error()})
		return err
	}
	// Strip the rollback plan's own preflight/lock: this run holds the lock.
	var steps []plan.Step
	for _, s := range rb.Steps {
		if s.Kind == plan.StepDeploy || s.Kind == plan.StepUnlock {
			steps = append(steps, s)
		}
	}
	rb.Steps = steps
	e.plan, e.inRollback = rb, true
	e.progress = plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}}
	e.failed = 0
	e.bus.Emit(event.Event{Type: event.PlanChanged, Plan: rb, Message: why})
	// Ctrl-C during a rollback does not stop it: a half-rolled-back fleet
	// is worse than waiting for it. Abort still does.
	return e.runSteps(context.WithoutCancel(ctx), nil)
}

func (e *Engine) finish(ctx context.Context, outcome event.Outcome, err error) Result {
	bg := context.WithoutCancel(ctx)
	if e.lockHeld && outcome != event.OutcomePaused {
		if uerr := e.releaseLock(bg); uerr != nil {
			e.bus.Emit(event.Event{Type: event.Warning, Message: uerr.Error() + " — run `relctl lock break` once you have checked the fleet"})
		}
	}
	if e.stopRenew != nil {
		e.stopRenew()
	}
	e.restoreBalancer(bg)
	e.audit(bg, outcome)
	sum := e.summary(err)
	e.bus.Emit(event.Event{Type: event.RunFinished, Outcome: outcome, Summary: &sum, Error: sum.Error})
	return Result{Outcome: outcome, Summary: sum, Err: err}
}

func (e *Engine) summary(err error) event.Summary {
	orig := e.cfg.Plan
	s := event.Summary{Kind: orig.Kind, From: orig.From, To: orig.To, Elapsed: time.Since(e.start), PostMigrated: e.postDone}
	if e.cfg.Journal != nil {
		s.Journal = e.cfg.Journal.Path()
	}
	if err != nil {
		s.Error = err.Error()
	}
	var names []string
	for h := range e.final {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		st, v := e.final[h], e.versions[h]
		switch {
		case st == event.HostLeftDrained:
			if s.LeftDrained == nil {
				s.LeftDrained = map[string]string{}
			}
			s.LeftDrained[h] = e.reasons[h]
		case st == event.HostFailed:
			s.Failed = append(s.Failed, h)
		case st == event.HostRolledBack || e.wentBack[h] || (st == event.HostInService && orig.Kind == plan.KindRollback):
			s.RolledBack = append(s.RolledBack, h)
		case st == event.HostInService && v == orig.To:
			s.Upgraded = append(s.Upgraded, h)
		}
	}
	for _, sk := range orig.Skipped {
		s.Skipped = append(s.Skipped, sk.Host)
	}
	if len(e.versions) > 0 {
		s.Versions = map[string]string{}
		for h, v := range e.versions {
			s.Versions[h] = v
		}
	}
	return s
}

// restoreBalancer re-asserts "ready" for every server relctl put back in
// service (a balancer reload loses runtime state); it never touches a host
// left drained.
func (e *Engine) restoreBalancer(ctx context.Context) {
	e.mu.Lock()
	var servers []string
	for h, st := range e.final {
		if st == event.HostInService || st == event.HostRolledBack || (st == event.HostFailed && e.inRollback) {
			servers = append(servers, e.hosts[h].Server)
		}
	}
	e.mu.Unlock()
	if len(servers) == 0 {
		return
	}
	sort.Strings(servers)
	if err := e.cfg.Balancer.Restore(ctx, servers); err != nil {
		e.bus.Emit(event.Event{Type: event.Warning, Message: "re-assert balancer state of " + joinHosts(servers) + ": " + err.Error()})
	}
}

// setFinal records where a host ended up, and on which version ("" when
// unknown).
func (e *Engine) setFinal(host string, st event.HostState, reason string, version ...string) {
	e.mu.Lock()
	e.final[host] = st
	if len(version) > 0 {
		e.versions[host] = version[0]
	}
	if st == event.HostInService && e.inRollback {
		e.wentBack[host] = true
	}
	if reason != "" {
		e.reasons[host] = reason
	}
	e.mu.Unlock()
}

func (e *Engine) host(name string) fleet.Host { return e.hosts[name] }

func joinHosts(hs []string) string { return strings.Join(hs, ", ") }
