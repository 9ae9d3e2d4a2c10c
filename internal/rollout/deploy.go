package rollout

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
	"github.com/relctl/relctl/internal/version"
)

// hostRun is one host's deploy (or rollback) step: its values, what its
// actions learned, and how to report.
type hostRun struct {
	e    *Engine
	step plan.Step
	h    fleet.Host
	vals fleet.Values // forward: step.From → step.To
	back fleet.Values // backward: step.To → step.From
	// drain is what the drain action saw; wait-idle reports and confirms it.
	drain      lb.DrainResult
	drainStart time.Time
	// version is what the version command prints in the health wait's
	// command, still running when the health action ends (health.go);
	// the version action waits for it, judges it and clears it.
	version *versionRead
	// chain is the host's forward actions sent as one command (chain.go);
	// chainTried: the first chainable action has been reached.
	chain      *hostChain
	chainTried bool
}

func (r *hostRun) emit(ev event.Event) {
	ev.Step, ev.Host = r.step.ID, r.h.Name
	r.e.bus.Emit(ev)
}

func (r *hostRun) state(st event.HostState, version, msg string) {
	r.emit(event.Event{Type: event.HostChanged, State: st, Version: version, Message: msg})
}

func (r *hostRun) warn(msg string) {
	r.emit(event.Event{Type: event.Warning, Message: msg})
}

// action runs fn between ActionStarted and ActionDone events.
func (r *hostRun) action(a plan.Action, st event.HostState, fn func() (string, error)) error {
	if st != "" {
		r.state(st, "", "")
	}
	r.emit(event.Event{Type: event.ActionStarted, Action: a})
	t0 := time.Now()
	msg, err := fn()
	ev := event.Event{Type: event.ActionDone, Action: a, Status: event.StatusOK, Message: msg, Duration: time.Since(t0)}
	if err != nil {
		ev.Status, ev.Error = event.StatusFailed, err.Error()
	}
	r.emit(ev)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.h.Name, a, err)
	}
	return nil
}

// cmd runs a rendered command template on the host, streaming its output,
// bounded by timeout.
func (r *hostRun) cmd(ctx context.Context, name string, vals fleet.Values, timeout time.Duration) error {
	t := r.e.inv.HostTemplate(r.h, name)
	if t == nil {
		return nil
	}
	script, err := t.Render(vals)
	if err != nil {
		return fmt.Errorf("commands.%s: %w", name, err)
	}
	script, env, err := r.e.commandEnv(name, script, vals)
	if err != nil {
		return err
	}
	return r.run(ctx, script, env, timeout)
}

// script runs one of relctl's own scripts (unpack, prune, ...) as the SSH
// user, with the RELCTL_* values only: env: and secrets are for the
// inventory's commands.
func (r *hostRun) script(ctx context.Context, script string, vals fleet.Values, timeout time.Duration) error {
	vals.EnvVars = nil
	return r.run(ctx, script, vals.Env(), timeout)
}

func (r *hostRun) run(ctx context.Context, script string, env map[string]string, timeout time.Duration) error {
	_, err := r.e.hostsRun(ctx, r.h.Name, remote.Command{
		Script: script, Env: env, Timeout: timeout,
		Stdout: func(l string) { r.emit(event.Event{Type: event.StepOutput, Stream: "stdout", Line: l}) },
		Stderr: func(l string) { r.emit(event.Event{Type: event.StepOutput, Stream: "stderr", Line: l}) },
	})
	return err
}

// runner is how the executor runs one plan.Action on a host, and how it
// takes it back. The plan's action list is walked through this table, so
// what the preview lists is exactly what runs.
type runner struct {
	// state is the host state shown while the action runs ("" = unchanged).
	state event.HostState
	run   func(r *hostRun, ctx context.Context) (string, error)
	// undo takes the action back; nil when there is nothing to undo (a
	// check, a wait). It is called in reverse order of the actions that
	// completed.
	undo func(r *hostRun, ctx context.Context) (string, error)
	// partial means a failure may have left the action half done (a
	// drain on one endpoint of two, a stop that was cut): its undo runs as
	// well when it is the action that failed.
	partial bool
}

// runners is the executor's table: one runner per plan action.
var runners = map[plan.Action]runner{
	plan.ActionDrain:    {state: event.HostDraining, run: (*hostRun).runDrain, undo: (*hostRun).undoDrain, partial: true},
	plan.ActionWaitIdle: {run: (*hostRun).runWaitIdle},
	plan.ActionStop:     {state: event.HostStopping, run: (*hostRun).runStop, undo: (*hostRun).undoStop, partial: true},
	plan.ActionSwitch:   {state: event.HostSwitching, run: (*hostRun).runSwitch, undo: (*hostRun).undoSwitch, partial: true},
	plan.ActionStart:    {state: event.HostStarting, run: (*hostRun).runStart, undo: (*hostRun).undoStart, partial: true},
	plan.ActionHealth:   {state: event.HostChecking, run: (*hostRun).runHealth},
	plan.ActionVersion:  {run: (*hostRun).runVersion},
	plan.ActionEnable:   {state: event.HostEnabling, run: (*hostRun).runEnable, undo: (*hostRun).undoEnable, partial: true},
	plan.ActionVerify:   {run: (*hostRun).runVerify},
}

// checkActions refuses, before anything changes, a plan whose action list
// this executor cannot run as listed.
func (e *Engine) checkActions() error {
	if err := e.checkRoleActions(); err != nil {
		return err
	}
	for _, a := range e.plan.Actions {
		if _, ok := runners[a]; !ok {
			return fmt.Errorf("the plan lists action %q, which this relctl cannot run: rebuild the plan", a)
		}
		if a == plan.ActionVerify && !e.cfg.Balancer.CanVerify() {
			return fmt.Errorf("the plan lists verify, but balancer %s cannot read a server's state back: rebuild the plan", e.cfg.Balancer.Kind())
		}
		if a == plan.ActionVersion && e.inv.Template(fleet.CmdVersion) == nil {
			return errors.New("the plan lists a version check, but the inventory has no commands.version: rebuild the plan")
		}
	}
	return nil
}

func (r *hostRun) runDrain(ctx context.Context) (string, error) {
	e := r.e
	r.drainStart = time.Now()
	err := e.lbCall(ctx, e.drainBound(), func(ctx context.Context) error {
		res, err := e.cfg.Balancer.Drain(ctx, r.h.Server)
		r.drain = res
		return err
	})
	if r.drain.Note != "" {
		r.warn("drain: " + r.drain.Note)
	}
	if err != nil && e.cfg.Balancer.CanVerify() && ctx.Err() == nil {
		// A drain can fail because a reload (or another operator) put the
		// server back while it waited. Read the balancer's own state and,
		// if the server is back in rotation or busy, drain it again; an
		// error here is the one that counts.
		var note string
		err2 := e.lbCall(ctx, e.drainBound(), func(ctx context.Context) error {
			var err error
			note, err = e.cfg.Balancer.EnsureOut(ctx, r.h.Server)
			return err
		})
		if err2 != nil {
			return "", fmt.Errorf("%w; re-checked: %v", err, err2)
		}
		r.warn(fmt.Sprintf("drain: %v; re-checked the balancer: %s", err, orText(note, "out of rotation and idle")))
		r.drain = lb.DrainResult{Idle: true, Waited: time.Since(r.drainStart)}
		return "out of rotation on every balancer endpoint (drained again)", nil
	}
	if err != nil {
		return "", err
	}
	return "out of rotation on every balancer endpoint", nil
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (r *hostRun) undoDrain(ctx context.Context) (string, error) {
	e := r.e
	err := e.lbCall(ctx, e.enableBound(), func(ctx context.Context) error {
		return e.cfg.Balancer.Enable(ctx, r.h.Server, time.Duration(e.plan.Settings.HealthTimeout))
	})
	return "back in rotation", err
}

// runWaitIdle reports how the drain's wait for in-flight requests ended
// and, when the balancer can be read back, confirms from its own state
// that the server has no sessions left, polling for what is left of
// drain_timeout.
func (r *hostRun) runWaitIdle(ctx context.Context) (string, error) {
	e := r.e
	res := r.drain
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	fromDrain := func() string {
		if res.Idle {
			return fmt.Sprintf("idle after %s", ms(res.Waited))
		}
		return fmt.Sprintf("timeout after %s with %d session(s) left: going on", ms(res.Waited), res.Remaining)
	}
	if res.Assumed {
		return fmt.Sprintf("waited %s (the balancer cannot count sessions)", ms(res.Waited)), nil
	}
	if !e.cfg.Balancer.CanVerify() {
		return fromDrain(), nil
	}
	start := r.drainStart
	if start.IsZero() {
		start = time.Now()
	}
	deadline := start.Add(max(time.Duration(e.plan.Settings.DrainTimeout), res.Waited))
	for polls := 0; ; polls++ {
		left, reported, err := e.sessionsOf(ctx, r.h.Server)
		if err != nil {
			return "", err
		}
		switch {
		case !reported:
			// The balancer lists no sessions for this server: the drain's
			// own wait is all there is.
			return fromDrain(), nil
		case left == 0 && polls == 0 && res.Idle:
			return fromDrain(), nil
		case left == 0:
			return fmt.Sprintf("idle after %s", ms(time.Since(start))), nil
		case time.Now().After(deadline):
			return fmt.Sprintf("timeout after %s with %d session(s) left: going on", ms(time.Since(start)), left), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(min(100*time.Millisecond, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// sessionsOf sums server's sessions and queued requests over every
// endpoint; reported is false when no endpoint lists the server.
func (e *Engine) sessionsOf(ctx context.Context, server string) (int, bool, error) {
	var sts []lb.ServerState
	err := e.lbCall(ctx, e.to.Observe, func(ctx context.Context) error {
		var err error
		sts, err = e.cfg.Balancer.States(ctx)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("read balancer state: %w", err)
	}
	n, seen := 0, false
	for _, st := range sts {
		if st.Server == server {
			seen = true
			n += st.Sessions + st.Queued
		}
	}
	return n, seen, nil
}

// runStop re-checks the balancer right before the app stops (a reload or
// another operator may have put the server back), then stops the app.
func (r *hostRun) runStop(ctx context.Context) (string, error) {
	e := r.e
	var note string
	var err error
	if e.plan.Balanced(r.h.Name) { // a host of a role with balancer: none is in no balancer
		err = e.lbCall(ctx, e.drainBound(), func(ctx context.Context) error {
			var err error
			note, err = e.cfg.Balancer.EnsureOut(ctx, r.h.Server)
			return err
		})
	}
	if err != nil {
		return "", fmt.Errorf("not stopped: %w", err)
	}
	if note != "" {
		r.warn(note)
	}
	if err := r.forwardCmd(ctx, plan.ActionStop, func() error { return r.cmd(ctx, fleet.CmdStop, r.vals, e.to.Stop) }); err != nil {
		return "", err
	}
	if note != "" {
		return "stopped (" + note + ")", nil
	}
	return "stopped", nil
}

// undoStop brings the release the host ran before back up: start, healthy,
// and the version check when the plan lists one.
func (r *hostRun) undoStop(ctx context.Context) (string, error) {
	e := r.e
	if err := r.cmd(ctx, fleet.CmdStart, r.back, e.to.Start); err != nil {
		return "", fmt.Errorf("start %s: %w", r.step.From, err)
	}
	msg, err := e.waitHealthy(ctx, r, r.back, false)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.step.From, err)
	}
	if slices.Contains(e.plan.ActionsFor(r.step.Host), plan.ActionVersion) {
		if _, err := e.checkVersion(ctx, r, r.back); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s started, %s", r.step.From, msg), nil
}

func (r *hostRun) runSwitch(ctx context.Context) (string, error) {
	if err := r.forwardCmd(ctx, plan.ActionSwitch, func() error {
		return r.script(ctx, switchScript(r.vals.Path, r.step.To), r.vals, r.e.to.Switch)
	}); err != nil {
		return "", err
	}
	r.e.markSwitched(r.step.ID)
	return "current → " + r.step.To, nil
}

// undoSwitch points current back at the release the host ran. A rollback
// never moves a host forward: in a rollback run the switch is not undone
// (the host is named LEFT DRAINED instead).
func (r *hostRun) undoSwitch(ctx context.Context) (string, error) {
	if r.e.inRollback {
		return "", fmt.Errorf("not switched back to %s: a rollback never moves a host forward", r.step.From)
	}
	if err := r.script(ctx, switchScript(r.back.Path, r.step.From), r.back, r.e.to.Switch); err != nil {
		return "", fmt.Errorf("switch back to %s: %w", r.step.From, err)
	}
	return "current → " + r.step.From, nil
}

func (r *hostRun) runStart(ctx context.Context) (string, error) {
	return "", r.forwardCmd(ctx, plan.ActionStart, func() error { return r.cmd(ctx, fleet.CmdStart, r.vals, r.e.to.Start) })
}

// undoStart stops what was started (the new release).
func (r *hostRun) undoStart(ctx context.Context) (string, error) {
	if err := r.cmd(ctx, fleet.CmdStop, r.vals, r.e.to.Stop); err != nil {
		return "", fmt.Errorf("stop %s: %w", r.step.To, err)
	}
	return r.step.To + " stopped", nil
}

func (r *hostRun) runHealth(ctx context.Context) (string, error) {
	if msg, ok, err := r.chainedHealth(ctx); ok {
		return msg, err
	}
	acts := r.e.plan.ActionsFor(r.step.Host)
	i := slices.Index(acts, plan.ActionHealth)
	next := i >= 0 && i+1 < len(acts) && acts[i+1] == plan.ActionVersion
	return r.e.waitHealthy(ctx, r, r.vals, next)
}

// runVersion judges what the version command printed at the end of the
// health wait, in the same remote command, or runs it now.
func (r *hostRun) runVersion(ctx context.Context) (string, error) {
	if msg, ok, err := r.chainedVersion(ctx); ok {
		return msg, err
	}
	v := r.version
	r.version = nil
	if v == nil {
		return r.e.checkVersion(ctx, r, r.vals)
	}
	<-v.done // bounded: the command has its own timeout, its call a context
	if v.err != nil {
		return "", v.err
	}
	got, err := validVersion(r.h.Name, observe.VersionLine(v.out))
	if err != nil {
		return "", err
	}
	if got != r.vals.Version {
		return "", fmt.Errorf("runs %q, want %q", got, r.vals.Version)
	}
	return "runs " + got + " (read in the health wait's command)", nil
}

func (r *hostRun) runEnable(ctx context.Context) (string, error) {
	e := r.e
	return "", e.lbCall(ctx, e.enableBound(), func(ctx context.Context) error {
		return e.cfg.Balancer.Enable(ctx, r.h.Server, time.Duration(e.plan.Settings.HealthTimeout))
	})
}

func (r *hostRun) undoEnable(ctx context.Context) (string, error) {
	e := r.e
	err := e.lbCall(ctx, e.drainBound(), func(ctx context.Context) error {
		_, err := e.cfg.Balancer.Drain(ctx, r.h.Server)
		return err
	})
	return "out of rotation again", err
}

func (r *hostRun) runVerify(ctx context.Context) (string, error) {
	e := r.e
	err := e.lbCall(ctx, e.to.Observe, func(ctx context.Context) error {
		return e.cfg.Balancer.Verify(ctx, r.h.Server)
	})
	if err != nil {
		return "", err
	}
	return "UP on every balancer endpoint (read back from the balancer)", nil
}

// checkVersion asks what the host runs and compares it with vals.Version.
func (e *Engine) checkVersion(ctx context.Context, r *hostRun, vals fleet.Values) (string, error) {
	got, err := e.runningVersion(ctx, r.h, vals)
	if err != nil {
		return "", err
	}
	if got != vals.Version {
		return "", fmt.Errorf("runs %q, want %q", got, vals.Version)
	}
	return "runs " + got, nil
}

// runningVersion asks the version command (its first non-empty line, the
// same reading observe makes), or reads the current symlink; what the host
// reports is validated like --to.
func (e *Engine) runningVersion(ctx context.Context, h fleet.Host, vals fleet.Values) (string, error) {
	var got string
	if t := e.inv.HostTemplate(h, fleet.CmdVersion); t != nil {
		script, err := t.Render(vals)
		if err != nil {
			return "", err
		}
		out, err := e.output(ctx, h.Name, script, e.to.Version)
		if err != nil {
			return "", err
		}
		got = observe.VersionLine(out)
	} else {
		out, err := e.output(ctx, h.Name, "readlink "+shell.Quote(vals.Path+"/current"), e.to.Version)
		if err != nil {
			return "", err
		}
		got = path.Base(strings.TrimSpace(out))
	}
	return validVersion(h.Name, got)
}

// validVersion refuses what a host reports unless it is a valid version.
func validVersion(host, got string) (string, error) {
	if err := version.Valid(got); err != nil {
		return "", fmt.Errorf("%s reports an invalid version: %w", host, err)
	}
	return got, nil
}

// deployHost takes one host from step.From to step.To by running the
// plan's action list, in order, through the runners table. Once it has
// begun it runs to the end even if the operator interrupts once: a host
// is never abandoned mid-switch. A second interrupt (Force) cuts the
// action in flight; the host then gets one bounded attempt to go back. On
// failure it compensates: see compensate.
func (e *Engine) deployHost(_ context.Context, s plan.Step) error {
	ctx := e.hard
	h := e.host(s.Host)
	r := &hostRun{e: e, step: s, h: h, vals: e.hostValues(h, s.From, s.To), back: e.hostValues(h, s.To, s.From)}
	e.mu.Lock()
	e.touched[h.Name] = true
	e.mu.Unlock()
	if e.inRollback {
		if err := e.checkRollbackTarget(ctx, r); err != nil {
			return err
		}
	}
	var done []plan.Action
	for _, a := range e.plan.ActionsFor(s.Host) {
		rn := runners[a]
		err := r.action(a, rn.state, func() (string, error) { return rn.run(r, ctx) })
		if err != nil {
			r.endChain()
			undo := slices.Clone(done)
			if rn.partial {
				undo = append(undo, a)
			}
			undo = r.settleChain(undo) // a chain relctl lost: stop it, undo what its log says started
			return e.compensate(r, err, undo)
		}
		done = append(done, a)
	}
	r.state(event.HostInService, s.To, "")
	e.setFinal(h.Name, event.HostInService, "", s.To)
	return nil
}

// checkRollbackTarget refuses to roll a host that does not run the version
// the rollback takes it from (or already its target): a rollback never
// moves a host forward, and never touches a host it knows nothing about.
func (e *Engine) checkRollbackTarget(ctx context.Context, r *hostRun) error {
	s := r.step
	got, err := e.output(ctx, r.h.Name, "readlink "+shell.Quote(r.vals.Path+"/current"), e.to.Version)
	if err == nil {
		got = path.Base(strings.TrimSpace(got))
		if verr := version.Valid(got); verr != nil {
			err = fmt.Errorf("current names an invalid version: %w", verr)
		}
	}
	if err == nil && got != s.From && got != s.To {
		err = fmt.Errorf("it runs %s, not %s: a rollback never moves a host forward, so it is left as it is", got, s.From)
	}
	if err == nil {
		return nil
	}
	e.mu.Lock()
	e.failed++
	e.mu.Unlock()
	msg := fmt.Sprintf("not rolled back: %v", err)
	r.state(event.HostFailed, "", msg)
	e.setFinal(r.h.Name, event.HostFailed, msg)
	return fmt.Errorf("%s: rollback refused: %w", r.h.Name, err)
}

// compensate unwinds, in reverse, the actions of a failed host step that
// may have changed something, so that the host is back on the release it
// ran, healthy and in the balancer — or named LEFT DRAINED with the
// reason, never silently. Once the run is forced, the unwinding is one
// attempt bounded by the force grace.
func (e *Engine) compensate(r *hostRun, cause error, done []plan.Action) error {
	e.mu.Lock()
	e.failed++
	e.mu.Unlock()
	s := r.step
	r.state(event.HostFailed, "", cause.Error())
	ctx, cancel := e.graceCtx()
	defer cancel()
	var undone []string
	var err error
	if len(done) > 0 {
		r.state(event.HostReverting, "", fmt.Sprintf("going back to %s after: %v", s.From, cause))
	}
	for i := len(done) - 1; i >= 0 && err == nil; i-- {
		a := done[i]
		rn := runners[a]
		if rn.undo == nil {
			continue
		}
		err = r.action("undo-"+a, "", func() (string, error) { return rn.undo(r, ctx) })
		if err == nil {
			undone = append(undone, string(a))
		}
	}
	switched := slices.Contains(done, plan.ActionSwitch)
	if err != nil {
		reason := fmt.Sprintf("%v; going back to %s failed: %v", cause, s.From, err)
		if switched && e.inRollback {
			reason = fmt.Sprintf("%v; left on %s, out of rotation: %v", cause, s.To, err)
		}
		r.state(event.HostLeftDrained, "", reason)
		e.setFinal(r.h.Name, event.HostLeftDrained, reason, "")
		e.markCompensated(s.ID)
		return fmt.Errorf("%w (LEFT DRAINED: %v)", cause, err)
	}
	e.markCompensated(s.ID)
	if e.plan.Kind == plan.KindRepair {
		// A repair starts from a host out of rotation: undone, it is out
		// of rotation again, and says so.
		reason := fmt.Sprintf("repair failed, stopped again and left out of rotation: %v", cause)
		r.state(event.HostLeftDrained, "", reason)
		e.setFinal(r.h.Name, event.HostLeftDrained, reason, "")
		return cause
	}
	if e.inRollback {
		msg := fmt.Sprintf("rollback failed, still serving %s: %v", s.From, cause)
		r.state(event.HostFailed, s.From, msg)
		e.setFinal(r.h.Name, event.HostFailed, msg, s.From)
		return cause
	}
	msg := fmt.Sprintf("back on %s and serving, after: %v", s.From, cause)
	if len(undone) == 0 {
		msg = fmt.Sprintf("still on %s and serving (nothing had changed), after: %v", s.From, cause)
	}
	r.state(event.HostRolledBack, s.From, msg)
	e.setFinal(r.h.Name, event.HostRolledBack, "", s.From)
	e.mu.Lock()
	e.reverted[s.ID] = true
	e.mu.Unlock()
	return cause
}

// switchScript points current at releases/<v> atomically. Every value is
// shell-quoted, the version included.
func switchScript(base, v string) string {
	rel := fleet.ReleaseDir(base, v)
	return fmt.Sprintf(`set -e
rel=%[1]s; cur=%[2]s; v=%[3]s
[ -d "$rel" ] || { echo "release $v is not staged on this host ($rel is missing)" >&2; exit 4; }
ln -sfn "$rel" "$cur.relctl-tmp"
mv -T "$cur.relctl-tmp" "$cur"`, shell.Quote(rel), shell.Quote(strings.TrimRight(base, "/")+"/current"), shell.Quote(v))
}
