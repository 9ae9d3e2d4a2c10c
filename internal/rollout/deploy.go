package rollout

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
)

// hostRun is one host's deploy: its values and how to report.
type hostRun struct {
	e    *Engine
	step plan.Step
	h    fleet.Host
	vals fleet.Values
}

func (r *hostRun) emit(ev event.Event) {
	ev.Step, ev.Host = r.step.ID, r.h.Name
	r.e.bus.Emit(ev)
}

func (r *hostRun) state(st event.HostState, version, msg string) {
	r.emit(event.Event{Type: event.HostChanged, State: st, Version: version, Message: msg})
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

// cmd runs a rendered command template on the host, streaming its output.
func (r *hostRun) cmd(ctx context.Context, name string, vals fleet.Values, timeout time.Duration) error {
	t := r.e.inv.Template(name)
	if t == nil {
		return nil
	}
	script, err := t.Render(vals)
	if err != nil {
		return fmt.Errorf("commands.%s: %w", name, err)
	}
	return r.script(ctx, script, vals, timeout)
}

func (r *hostRun) script(ctx context.Context, script string, vals fleet.Values, timeout time.Duration) error {
	_, err := r.e.cfg.Hosts.Run(ctx, r.h.Name, remote.Command{
		Script: script, Env: vals.Env(), Timeout: timeout,
		Stdout: func(l string) { r.emit(event.Event{Type: event.StepOutput, Stream: "stdout", Line: l}) },
		Stderr: func(l string) { r.emit(event.Event{Type: event.StepOutput, Stream: "stderr", Line: l}) },
	})
	return err
}

// deployHost takes one host from step.From to step.To: drain → wait idle →
// stop → switch → start → healthy → version → enable → verify. Once it has
// begun it runs to the end even if the operator interrupts: a host is never
// abandoned mid-switch. On failure it compensates (see revert).
func (e *Engine) deployHost(ctx context.Context, s plan.Step) error {
	ctx = context.WithoutCancel(ctx)
	h := e.host(s.Host)
	r := &hostRun{e: e, step: s, h: h, vals: e.inv.HostValues(h, s.From, s.To)}
	e.mu.Lock()
	e.touched[h.Name] = true
	e.mu.Unlock()
	st := e.plan.Settings

	err := r.action(plan.ActionDrain, event.HostDraining, func() (string, error) {
		res, err := e.cfg.Balancer.Drain(ctx, h.Server)
		if err != nil {
			return "", err
		}
		if res.Idle {
			return fmt.Sprintf("out of rotation, idle after %s", res.Waited.Round(time.Millisecond)), nil
		}
		return fmt.Sprintf("out of rotation; drain timeout after %s with %d session(s) still open: going on", res.Waited.Round(time.Millisecond), res.Remaining), nil
	})
	if err != nil {
		return e.revert(ctx, r, err, false, false)
	}
	if err := r.action(plan.ActionStop, event.HostStopping, func() (string, error) {
		return "", r.cmd(ctx, fleet.CmdStop, r.vals, e.cfg.CommandTimeout)
	}); err != nil {
		return e.revert(ctx, r, err, true, false)
	}
	if err := r.action(plan.ActionSwitch, event.HostSwitching, func() (string, error) {
		return "current → " + s.To, r.script(ctx, switchScript(r.vals.Path, s.To), r.vals, e.cfg.CommandTimeout)
	}); err != nil {
		return e.revert(ctx, r, err, true, true)
	}
	if err := e.startAndCheck(ctx, r, r.vals); err != nil {
		return e.revert(ctx, r, err, true, true)
	}
	if err := r.action(plan.ActionEnable, event.HostEnabling, func() (string, error) {
		return "", e.cfg.Balancer.Enable(ctx, h.Server, time.Duration(st.HealthTimeout))
	}); err != nil {
		return e.revert(ctx, r, err, true, true)
	}
	_ = r.action(plan.ActionVerify, "", func() (string, error) { return "UP on every balancer endpoint", nil })
	r.state(event.HostInService, s.To, "")
	e.setFinal(h.Name, event.HostInService, "", s.To)
	return nil
}

// startAndCheck starts the app and waits until it is healthy and runs the
// version it should.
func (e *Engine) startAndCheck(ctx context.Context, r *hostRun, vals fleet.Values) error {
	if err := r.action(plan.ActionStart, event.HostStarting, func() (string, error) {
		return "", r.cmd(ctx, fleet.CmdStart, vals, e.cfg.CommandTimeout)
	}); err != nil {
		return err
	}
	if err := r.action(plan.ActionHealth, event.HostChecking, func() (string, error) {
		return e.waitHealthy(ctx, r, vals)
	}); err != nil {
		return err
	}
	return r.action(plan.ActionVersion, "", func() (string, error) {
		got, err := e.runningVersion(ctx, r.h, vals)
		if err != nil {
			return "", err
		}
		if got != vals.Version {
			return "", fmt.Errorf("runs %q, want %q", got, vals.Version)
		}
		return "runs " + got, nil
	})
}

// runningVersion asks the version command, or reads the current symlink.
func (e *Engine) runningVersion(ctx context.Context, h fleet.Host, vals fleet.Values) (string, error) {
	if t := e.inv.Template(fleet.CmdVersion); t != nil {
		script, err := t.Render(vals)
		if err != nil {
			return "", err
		}
		return output(ctx, e.cfg.Hosts, h.Name, script)
	}
	out, err := output(ctx, e.cfg.Hosts, h.Name, "readlink "+shell.Quote(vals.Path+"/current"))
	return path.Base(out), err
}

// waitHealthy polls the health command until it has passed for stable_for,
// or fails after the health timeout with the last failure's output.
func (e *Engine) waitHealthy(ctx context.Context, r *hostRun, vals fleet.Values) (string, error) {
	st := e.plan.Settings
	timeout, interval, stable := time.Duration(st.HealthTimeout), time.Duration(st.HealthInterval), time.Duration(st.StableFor)
	t := e.inv.Template(fleet.CmdHealth)
	script, err := t.Render(vals)
	if err != nil {
		return "", err
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var okSince time.Time
	checks := 0
	var lastOut []string
	var lastErr error
	for {
		checks++
		var out []string
		attempt := min(max(interval, 5*time.Second), time.Until(deadline)+time.Second)
		_, err := e.cfg.Hosts.Run(ctx, r.h.Name, remote.Command{Script: script, Env: vals.Env(), Timeout: attempt,
			Stdout: func(l string) { out = append(out, l) }, Stderr: func(l string) { out = append(out, l) }})
		now := time.Now()
		if err == nil {
			if okSince.IsZero() {
				okSince = now
			}
			if now.Sub(okSince) >= stable {
				return fmt.Sprintf("healthy after %d check(s) in %s", checks, now.Sub(start).Round(time.Millisecond)), nil
			}
		} else {
			okSince, lastErr, lastOut = time.Time{}, err, out
			if errors.Is(err, remote.ErrConnectionLost) {
				return "", err
			}
		}
		if now.After(deadline) {
			for _, l := range lastOut {
				r.emit(event.Event{Type: event.StepOutput, Stream: "stderr", Line: l})
			}
			return "", fmt.Errorf("not healthy within %s (%d checks): %v", timeout, checks, lastErr)
		}
		time.Sleep(min(interval, time.Until(deadline)+time.Millisecond))
	}
}

// revert brings a host whose deploy failed back to the release it ran,
// healthy and in the balancer — or reports it "left drained" with the
// reason, never silently.
func (e *Engine) revert(ctx context.Context, r *hostRun, cause error, drained, switched bool) error {
	e.mu.Lock()
	e.failed++
	e.mu.Unlock()
	s := r.step
	r.state(event.HostFailed, "", cause.Error())
	back := e.inv.HostValues(r.h, s.To, s.From)
	err := func() error {
		r.state(event.HostReverting, "", fmt.Sprintf("going back to %s after: %v", s.From, cause))
		if switched {
			_ = r.cmd(ctx, fleet.CmdStop, back, e.cfg.CommandTimeout)
			if err := r.script(ctx, switchScript(back.Path, s.From), back, e.cfg.CommandTimeout); err != nil {
				return fmt.Errorf("switch back to %s: %w", s.From, err)
			}
		}
		if drained {
			if err := e.startAndCheck(ctx, r, back); err != nil {
				return err
			}
		}
		if err := e.cfg.Balancer.Enable(ctx, r.h.Server, time.Duration(e.plan.Settings.HealthTimeout)); err != nil {
			return fmt.Errorf("enable: %w", err)
		}
		return nil
	}()
	if err != nil {
		reason := fmt.Sprintf("%v; going back to %s failed: %v", cause, s.From, err)
		r.state(event.HostLeftDrained, "", reason)
		e.setFinal(r.h.Name, event.HostLeftDrained, reason, "")
		return fmt.Errorf("%w (LEFT DRAINED: %v)", cause, err)
	}
	if e.inRollback {
		msg := fmt.Sprintf("rollback failed, still serving %s: %v", s.From, cause)
		r.state(event.HostFailed, s.From, msg)
		e.setFinal(r.h.Name, event.HostFailed, msg, s.From)
	} else {
		r.state(event.HostRolledBack, s.From, fmt.Sprintf("back on %s and serving, after: %v", s.From, cause))
		e.setFinal(r.h.Name, event.HostRolledBack, "", s.From)
		e.mu.Lock()
		e.reverted[s.ID] = true
		e.mu.Unlock()
	}
	return cause
}

// switchScript points current at releases/<v> atomically.
func switchScript(base, v string) string {
	rel := fleet.ReleaseDir(base, v)
	return fmt.Sprintf(`set -e
rel=%[1]s; cur=%[2]s
[ -d "$rel" ] || { echo "release %[3]s is not staged on this host ($rel is missing)" >&2; exit 4; }
ln -sfn "$rel" "$cur.relctl-tmp"
mv -T "$cur.relctl-tmp" "$cur"`, shell.Quote(rel), shell.Quote(strings.TrimRight(base, "/")+"/current"), v)
}
