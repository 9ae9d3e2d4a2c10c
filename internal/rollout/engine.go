// Package rollout executes a Plan: step by step, staging in parallel, batches
// in order with their hosts in parallel. Each host runs exactly the plan's
// action list, walked through one table of runners (deploy.go), each with
// the undo that compensation unwinds in reverse. It emits one event stream,
// keeps the lock, gives every remote call a deadline (the inventory's
// timeouts), compensates every failure so that no host is left drained
// without saying so, and applies the failure policy.
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

	"github.com/relctl/relctl/internal/analysis"
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
	// CommandTimeout, when set, caps the inventory's stop, start, switch
	// and upload timeouts (tests use it to keep a run short).
	CommandTimeout time.Duration
	// LockWait queues behind another run's lock for this long (0 = refuse at once).
	LockWait time.Duration
	// Force, when it is closed, forces the run to end (a second Ctrl-C):
	// the action in flight is cut, the host in flight gets one attempt,
	// bounded by ForceGrace, to go back into rotation, and the run ends.
	Force <-chan struct{}
	// ForceGrace bounds that attempt, and each closing call (unlock,
	// balancer re-assert, audit) once forced (default 10s).
	ForceGrace time.Duration
	// TakeOver is the lock, as read, of the dead run this run continues
	// (the rollback of an unfinished run): the lock step takes it over
	// (Lock.TakeOver, audited with both run ids) instead of refusing it.
	TakeOver *LockInfo
	// OnLocked, when set, is called once, as soon as the run holds the
	// lock: the run has started changing the fleet.
	OnLocked func()
	// Secrets is where the inventory's secrets are read from at preflight
	// (zero: relctl's environment, files, sh -c).
	Secrets fleet.SecretSource
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
	to         fleet.Timeouts // the inventory's timeouts, capped by CommandTimeout

	// hard is the context of work that one interrupt does not stop (the
	// host in flight, a migration); Force cancels it.
	hard       context.Context
	hardCancel context.CancelFunc
	forced     chan struct{} // closed by Force
	forceOnce  sync.Once
	forcedAt   time.Time       // set by Force before forced is closed
	switched   map[string]bool // deploy steps whose switch completed
	comped     map[string]bool // deploy steps handled by their own compensation
	// rbFailed are the hosts a rollback could not take back, and why.
	rbFailed map[string]string
	// sessions counts the SSH sessions per host, when Hosts can.
	sessions SessionCounter
	// lastVerdict is the last canary analysis verdict (analysis.go).
	lastVerdict *analysis.Verdict
	// sec holds the run's secrets, resolved at preflight (envsec.go).
	sec secretState
	// outBefore: host → its balancer state when a forced run started, for
	// hosts already out of service (outbefore.go).
	outBefore map[string]string
}

// New prepares an engine.
func New(cfg Config) *Engine {
	if cfg.LockLease == 0 {
		cfg.LockLease = 60 * time.Second
	}
	if cfg.Gate == nil {
		cfg.Gate = AutoApprove{}
	}
	if cfg.ForceGrace == 0 {
		cfg.ForceGrace = 10 * time.Second
	}
	e := &Engine{
		cfg: cfg, inv: cfg.Inventory, bus: cfg.Bus, plan: cfg.Plan,
		hosts: map[string]fleet.Host{}, wake: make(chan struct{}, 1),
		touched: map[string]bool{}, final: map[string]event.HostState{}, versions: map[string]string{}, wentBack: map[string]bool{}, reasons: map[string]string{}, reverted: map[string]bool{},
		progress: plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}},
		forced:   make(chan struct{}), switched: map[string]bool{}, comped: map[string]bool{}, rbFailed: map[string]string{},
	}
	e.sessions, _ = cfg.Hosts.(SessionCounter)
	e.to = cfg.Inventory.Timeouts
	if c := cfg.CommandTimeout; c > 0 {
		for _, d := range []*time.Duration{&e.to.Stop, &e.to.Start, &e.to.Switch, &e.to.Upload} {
			*d = min(*d, c)
		}
	}
	e.hard, e.hardCancel = context.WithCancel(context.Background())
	// Every remote call of the run has a deadline, whatever its caller
	// forgot: see bounded.
	cfg.Hosts = bounded{Hosts: cfg.Hosts, def: e.to.Observe, upload: e.to.Upload}
	e.cfg.Hosts = cfg.Hosts
	for _, h := range cfg.Inventory.Hosts {
		e.hosts[h.Name] = h
	}
	e.inRollback = cfg.Plan.Kind == plan.KindRollback
	lockHost := cfg.Plan.Settings.MigrationsHost
	e.lock = &Lock{Hosts: bounded{Hosts: cfg.Hosts, def: e.to.Lock}, Host: lockHost, Path: cfg.Inventory.HostPath(e.hosts[lockHost]), Lease: cfg.LockLease}
	e.lockInfo = LockInfo{Owner: cfg.Owner, RunID: cfg.RunID, Fingerprint: cfg.Plan.Basis.Fingerprint, Environment: cfg.Plan.Environment, Reason: cfg.Plan.Reason, Ticket: cfg.Plan.Ticket}
	return e
}

// Force ends the run now (a second Ctrl-C): the action in flight is cut,
// the host in flight gets one attempt, bounded by ForceGrace, to go back
// into rotation, nothing else starts, and the run finishes with every host
// not in service named. It is safe to call more than once.
func (e *Engine) Force() {
	e.forceOnce.Do(func() {
		e.forcedAt = time.Now()
		close(e.forced)
		e.hardCancel()
		e.mu.Lock()
		if e.abortReq == "" {
			e.abortReq = "forced by a second interrupt"
		}
		e.mu.Unlock()
		e.bus.Emit(event.Event{Type: event.Control, Control: event.CtlForced, Message: fmt.Sprintf("forced: cutting the command in flight; the host in flight gets one attempt (≤%s) to go back into rotation, then relctl exits", e.cfg.ForceGrace)})
		select {
		case e.wake <- struct{}{}:
		default:
		}
	})
}

func (e *Engine) isForced() bool {
	select {
	case <-e.forced:
		return true
	default:
		return false
	}
}

// graceCtx is the context of compensation and of the run's closing calls:
// it is not cut by the first interrupt, and once the run is forced it ends
// ForceGrace after the force — one deadline for every call of the host's
// one attempt (stopping a lost chain, then the undo), however many there
// are and whenever they begin.
func (e *Engine) graceCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	go func() {
		select {
		case <-e.forced:
		case <-stop:
			return
		}
		t := time.NewTimer(max(0, e.cfg.ForceGrace-time.Since(e.forcedAt)))
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-stop:
		}
	}()
	return ctx, func() { close(stop); cancel() }
}

// closingCtx bounds one closing call (unlock, re-assert, audit): d
// normally, ForceGrace once forced.
func (e *Engine) closingCtx(d time.Duration) (context.Context, context.CancelFunc) {
	if e.isForced() {
		// Three closing calls (unlock, re-assert, audit) after the host's
		// one attempt: together they stay within the 30 s an operator
		// who forced the end may wait.
		d = min(d, e.cfg.ForceGrace/2)
	}
	return context.WithTimeout(context.Background(), d)
}

func (e *Engine) markSwitched(id string) {
	e.mu.Lock()
	e.switched[id] = true
	e.mu.Unlock()
}

func (e *Engine) markCompensated(id string) {
	e.mu.Lock()
	e.comped[id] = true
	e.mu.Unlock()
}

// Pause asks the run to stop after the hosts in flight, until Resume.
func (e *Engine) Pause() {
	e.control(func() { e.paused = true }, event.CtlPauseRequested, "pause requested: stopping after the hosts in flight")
}

// Resume lets a paused run go on.
func (e *Engine) Resume() { e.control(func() { e.paused = false }, event.CtlResumed, "resumed") }

// Abort asks the run to stop safely: the hosts in flight finish (or are
// reverted), nothing further starts, the lock is released.
func (e *Engine) Abort(why string) {
	e.control(func() { e.abortReq = why }, event.CtlAbortRequested, "abort requested: "+why)
}

// RequestRollback asks the run to send every switched host back, after the
// hosts in flight.
func (e *Engine) RequestRollback() {
	e.control(func() { e.rollbackReq = true }, event.CtlRollbackRequested, "rollback requested: after the hosts in flight, every switched host goes back")
}

func (e *Engine) control(f func(), kind event.ControlKind, msg string) {
	e.mu.Lock()
	f()
	e.mu.Unlock()
	e.bus.Emit(event.Event{Type: event.Control, Control: kind, Message: msg})
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// errAbort and errRollback stop the step loop.
var (
	// errHopIncomplete ends a multi-hop run partially upgraded: the
	// failure budget left hosts behind, so the next hop cannot start.
	errHopIncomplete = errors.New("partially upgraded")
	errAbort         = errors.New("aborted")
	errRollback      = errors.New("rollback requested")
	errStopped       = errors.New("stopped, paused for the operator")
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
// RunFinished event, the lock released (unless the run paused, or its state
// is stated) and an audit record on every host it touched.
func (e *Engine) Run(ctx context.Context) Result {
	e.start = time.Now()
	defer e.hardCancel()
	if e.cfg.Force != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-e.cfg.Force:
				e.Force()
			case <-stop:
			}
		}()
	}
	if len(e.plan.Steps) == 0 {
		// Nothing to run (an empty rollback plan): say so, change nothing.
		if e.cfg.Resume == nil {
			e.bus.Emit(event.Event{Type: event.RunStarted, Plan: e.plan, Owner: e.cfg.Owner, Message: "nothing to do"})
		}
		return e.finish(ctx, event.OutcomeSucceeded, nil)
	}
	if e.cfg.Resume == nil {
		e.bus.Emit(event.Event{Type: event.RunStarted, Plan: e.plan, Owner: e.cfg.Owner, Message: e.plan.Steps[0].String()})
	} else {
		e.bus.Emit(event.Event{Type: event.Control, Control: event.CtlResumed, Message: fmt.Sprintf("resumed by %s", e.cfg.Owner)})
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
	var err error
	if err = e.checkActions(); err == nil {
		err = e.runSteps(ctx, e.cfg.Resume)
	}
	outcome := event.OutcomeSucceeded
	switch {
	case err == nil:
		if e.inRollback && len(e.rbFailed) > 0 {
			err = e.rollbackIncomplete()
			outcome = event.OutcomeFailed
		}
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
	case errors.Is(err, errHopIncomplete):
		outcome = event.OutcomePartial
	default:
		outcome = event.OutcomeFailed
		var rb *rolledBack
		if errors.As(err, &rb) {
			outcome = event.OutcomeRolledBack
		}
	}
	if outcome == event.OutcomeSucceeded {
		outcome, err = e.heldBack(outcome, err)
	}
	if outcome == event.OutcomeSucceeded && e.cfg.Plan.Kind != plan.KindRollback {
		if left := e.notOnTarget(); len(left) > 0 {
			// The failure budget let the run go on: the fleet is on two
			// versions. That is not "succeeded".
			outcome = event.OutcomePartial
			err = fmt.Errorf("partially upgraded: %s not on %s (within max_failed_hosts %d)", joinHosts(left), e.cfg.Plan.To, e.cfg.Plan.Settings.MaxFailedHosts)
		}
	}
	return e.finish(ctx, outcome, err)
}

// notOnTarget lists the hosts of the plan that did not end on its target.
func (e *Engine) notOnTarget() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, h := range e.cfg.Plan.DeployHosts() {
		if e.final[h] != event.HostInService || e.versions[h] != e.cfg.Plan.To {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// rollbackIncomplete names every host a rollback could not take back.
func (e *Engine) rollbackIncomplete() error {
	var hs []string
	for h := range e.rbFailed {
		hs = append(hs, h)
	}
	sort.Strings(hs)
	var parts []string
	for _, h := range hs {
		parts = append(parts, h+": "+e.rbFailed[h])
	}
	return fmt.Errorf("rollback incomplete: %s could not be taken back (%s); every other switched host went back", joinHosts(hs), strings.Join(parts, "; "))
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
					e.versions[g.Host] = g.To
				}
				if g.Kind == plan.StepPostMigrate {
					e.postDone = true // the summary covers the whole run
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
			var rb *rolledBack
			if ctx.Err() != nil && !errors.As(err, &rb) && !errors.Is(err, errAbort) && !errors.Is(err, errRollback) && !errors.Is(err, errStopped) {
				// Cut by the operator's interrupt (an upload, a wait):
				// an abort, not a failure.
				return fmt.Errorf("%w: interrupted: %v", errAbort, err)
			}
			return err
		}
		if s.Kind == plan.StepDeploy && i < len(steps) && steps[i].Kind == plan.StepDeploy && e.plan.Settings.WaitBetweenBatches > 0 {
			e.bus.Emit(event.Event{Type: event.Control, Control: event.CtlWaiting, Message: fmt.Sprintf("waiting %s before the next batch", e.plan.Settings.WaitBetweenBatches)})
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
	if s.Hop > 0 && s.Kind != plan.StepCleanup && s.Kind != plan.StepUnlock && !e.inRollback {
		// A hop starts only from a fleet the previous hop left whole: a
		// host the failure budget left behind would otherwise skip a
		// required stop.
		if behind := e.unverified(plan.Step{Hop: s.Hop - 1}); len(behind) > 0 {
			prev := e.plan.Hops[s.Hop-1]
			return fmt.Errorf("%w: %s not on %s, so the hop %s → %s did not start", errHopIncomplete, joinHosts(behind), prev.To, prev.To, e.plan.Hops[s.Hop].To)
		}
	}
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
		if missing := e.unverified(s); len(missing) > 0 {
			// Post-migrate never runs on a mixed fleet: the hosts left on
			// the old version could not run on the schema it leaves.
			msg := fmt.Sprintf("%v: %s not on %s; post-migrate not run (run it once every host runs %s)", errMixedFleet, joinHosts(missing), s.To, s.To)
			e.bus.Emit(event.Event{Type: event.Warning, Step: s.ID, Host: s.Host, Message: msg})
			e.bus.Emit(event.Event{Type: event.StepFinished, Step: s.ID, Host: s.Host, Status: event.StatusSkipped, Error: msg})
			return nil
		}
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
	if a := e.plan.Settings.Analysis; a != nil && !e.inRollback {
		return e.analysedGate(ctx, s, *a)
	}
	e.bus.Emit(event.Event{Type: event.GateRequested, Control: event.CtlCanaryGate, Step: s.ID, Version: s.To, Message: fmt.Sprintf("the canary runs %s: promote it to the rest of the fleet, or roll back", s.To)})
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
	if e.inRollback {
		// A rollback goes as far as it can: a host it cannot take back is
		// named and skipped, every other switched host still goes back.
		e.mu.Lock()
		for _, s := range steps {
			if !e.progress.Finished[s.ID] {
				why := e.reasons[s.Host]
				if why == "" {
					why = string(e.final[s.Host])
				}
				e.rbFailed[s.Host] = why
			}
		}
		e.mu.Unlock()
		e.bus.Emit(event.Event{Type: event.Warning, Message: "rollback goes on without " + err.Error()})
		if e.isForced() {
			return fmt.Errorf("%w: forced", errAbort)
		}
		return nil
	}
	if ctx.Err() != nil || e.isForced() {
		// The operator interrupted: the hosts in flight were finished or
		// reverted, and nothing new starts — not even the failure
		// policy's rollback of other hosts.
		return fmt.Errorf("%w: interrupted; %v", errAbort, err)
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
	e.bus.Emit(event.Event{Type: event.Control, Control: event.CtlPausedForFailure, Message: "paused for the operator (on_failure: pause): " + cause.Error()})
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
	prog := plan.Progress{Started: e.progress.Started, Finished: e.progress.Finished, Reverted: map[string]bool{}, Switched: map[string]bool{}}
	e.mu.Lock()
	for id := range e.progress.Started {
		if s, ok := e.plan.Step(id); ok && s.Kind == plan.StepDeploy {
			if e.comped[id] {
				prog.Reverted[id] = true // its own compensation handled it
			}
			if e.switched[id] || e.progress.Finished[id] || (e.cfg.Resume != nil && e.cfg.Resume.Finished[id]) {
				prog.Switched[id] = true
			}
		}
	}
	if e.cfg.Resume != nil {
		// Steps started before the resume and not re-run: what they did
		// is not known here, so they count as switched.
		for id := range e.cfg.Resume.Started {
			if !e.progress.Started[id] {
				prog.Switched[id] = true
			}
		}
	}
	e.mu.Unlock()
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
	// is worse than waiting for it. Abort and Force still do.
	if err := e.runSteps(e.hard, nil); err != nil {
		return err
	}
	if len(e.rbFailed) > 0 {
		return e.rollbackIncomplete()
	}
	return nil
}

func (e *Engine) finish(_ context.Context, outcome event.Outcome, err error) Result {
	var lockState string
	if e.lockHeld && outcome != event.OutcomePaused {
		ctx, cancel := e.closingCtx(e.to.Lock + 5*time.Second)
		if uerr := e.releaseLock(ctx); uerr != nil {
			lockState = fmt.Sprintf("still held on %s by run %s (%v): run `relctl lock break` once you have checked the fleet", e.lock.Host, e.cfg.RunID, uerr)
			e.bus.Emit(event.Event{Type: event.Warning, Message: "the lock is " + lockState})
		}
		cancel()
	} else if e.lockHeld {
		lockState = fmt.Sprintf("held on %s by run %s while the run is paused: relctl resume continues it", e.lock.Host, e.cfg.RunID)
	}
	if e.stopRenew != nil {
		e.stopRenew()
	}
	ctx, cancel := e.closingCtx(e.enableBound())
	e.restoreBalancer(ctx)
	cancel()
	ctx, cancel = e.closingCtx(e.to.Lock + 5*time.Second)
	e.audit(ctx, outcome)
	cancel()
	sum := e.summary(err)
	sum.Lock, sum.Forced = lockState, e.isForced()
	if outcome == event.OutcomePartial {
		sum.Held = e.cfg.Plan.HeldBack()
	}
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
	if e.sessions != nil {
		s.SSHSessions = e.sessions.SessionCounts()
	}
	e.mu.Lock()
	s.Analysis = e.lastVerdict
	s.OutBefore = e.outBeforeSummary()
	e.mu.Unlock()
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
		if !e.cfg.Plan.Balanced(h) {
			continue // never put into the balancer (a role with balancer: none)
		}
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
