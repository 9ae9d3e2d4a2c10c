package lb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// execBalancer runs operator-supplied commands for balancers relctl has no
// driver for. Drain and Enable are required; State, when set, prints one
// line per server, "server status [sessions]", and lets relctl verify
// states, wait for sessions to reach zero, and check preflight. IdleCheck,
// when set, decides idleness instead of the session count.
type execBalancer struct {
	cfg       Config
	c         Connector
	endpoints []Endpoint
	drain     *cmdTemplate
	enable    *cmdTemplate
	state     *cmdTemplate // nil when unset
	idle      *cmdTemplate // nil when unset
}

var _ Balancer = (*execBalancer)(nil)

func newExec(cfg Config, c Connector) (Balancer, error) {
	if cfg.Exec.Drain == "" {
		return nil, errors.New("balancer.exec.drain is required for kind exec")
	}
	if cfg.Exec.Enable == "" {
		return nil, errors.New("balancer.exec.enable is required for kind exec")
	}
	if cfg.UpstreamFile != "" {
		return nil, errors.New("balancer.upstream_file does not apply to kind exec")
	}
	eps, err := hostEndpoints(cfg)
	if err != nil {
		return nil, err
	}
	e := &execBalancer{cfg: cfg, c: c, endpoints: eps}
	if e.drain, err = parseCmd("balancer.exec.drain", cfg.Exec.Drain); err != nil {
		return nil, err
	}
	if e.enable, err = parseCmd("balancer.exec.enable", cfg.Exec.Enable); err != nil {
		return nil, err
	}
	if cfg.Exec.State != "" {
		if e.state, err = parseCmd("balancer.exec.state", cfg.Exec.State); err != nil {
			return nil, err
		}
	}
	if cfg.IdleCheck != "" {
		if e.idle, err = parseCmd("balancer.idle_check", cfg.IdleCheck); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *execBalancer) Kind() string { return KindExec }

func (e *execBalancer) Describe() string {
	hosts := make([]string, len(e.endpoints))
	for i, ep := range e.endpoints {
		hosts[i] = ep.String()
	}
	var idle string
	switch {
	case e.idle != nil:
		idle = fmt.Sprintf("idle_check polled up to %s", e.cfg.DrainTimeout)
	case e.state != nil:
		idle = fmt.Sprintf("sessions from the state command polled up to %s (idle assumed when it prints none)", e.cfg.DrainTimeout)
	default:
		idle = "idle assumed when the drain command returns (no state or idle_check command)"
	}
	return fmt.Sprintf("exec commands for %s on %s (%s); %s",
		orNone(e.cfg.Backend), plural(len(hosts), "host", "hosts"), strings.Join(hosts, ", "), idle)
}

func (e *execBalancer) where(ep Endpoint) string { return "exec " + ep.String() }

// run renders t for server and runs it on ep.
func (e *execBalancer) run(ctx context.Context, ep Endpoint, t *cmdTemplate, server string) (string, error) {
	script, err := t.render(server, e.cfg.Backend, addressOf(e.cfg, server))
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, err := e.c.RunOn(ctx, ep.SSH, script)
	if err != nil {
		return out, fmt.Errorf("%s: %w", t.key, outputErr(err, out))
	}
	return out, nil
}

// parseStateLines parses "server status [sessions]" lines; blank lines and
// lines starting with '#' are skipped. hasSessions tells whether every line
// carried a session count.
func parseStateLines(out, endpoint string) (sts []ServerState, hasSessions bool, err error) {
	hasSessions = true
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 {
			return nil, false, fmt.Errorf("state line %d %q: want \"server status [sessions]\"", i+1, line)
		}
		st := ServerState{Server: f[0], Status: parseStatus(f[1]), Endpoint: endpoint}
		if len(f) >= 3 {
			n, err := strconv.Atoi(f[2])
			if err != nil || n < 0 {
				return nil, false, fmt.Errorf("state line %d %q: sessions %q is not a count", i+1, line, f[2])
			}
			st.Sessions = n
		} else {
			hasSessions = false
		}
		sts = append(sts, st)
	}
	if len(sts) == 0 {
		hasSessions = false
	}
	return sts, hasSessions, nil
}

func (e *execBalancer) statesOn(ctx context.Context, ep Endpoint) ([]ServerState, bool, error) {
	out, err := e.run(ctx, ep, e.state, "")
	if err != nil {
		return nil, false, err
	}
	return parseStateLines(out, ep.String())
}

func (e *execBalancer) States(ctx context.Context) ([]ServerState, error) {
	if e.state == nil {
		return nil, errors.New("states on exec: balancer.exec.state is not set")
	}
	var out []ServerState
	for _, ep := range e.endpoints {
		sts, _, err := e.statesOn(ctx, ep)
		if err != nil {
			return out, fmt.Errorf("states on %s: %w", e.where(ep), err)
		}
		out = append(out, sts...)
	}
	return out, nil
}

func (e *execBalancer) Preflight(ctx context.Context, servers []string, force bool) error {
	var errs []error
	for _, ep := range e.endpoints {
		if e.state == nil {
			cctx, cancel := context.WithTimeout(ctx, cmdTimeout)
			_, err := e.c.RunOn(cctx, ep.SSH, "true")
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("preflight on %s: %w: %w", e.where(ep), ErrUnreachable, err))
			}
			continue
		}
		sts, _, err := e.statesOn(ctx, ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("preflight on %s: %w", e.where(ep), err))
			continue
		}
		for _, s := range servers {
			st, ok := findState(sts, s)
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("preflight %s on %s: the state command does not list %s: %w", s, e.where(ep), s, ErrUnknownServer))
			case st.Status == StatusDrain || st.Status == StatusMaint:
				if !force {
					errs = append(errs, fmt.Errorf("preflight %s on %s: %s is %s, not in rotation; put it back with balancer.exec.enable: `%s`, or force to proceed: %w",
						s, e.where(ep), s, st.Status, e.repair(ep, s), ErrNotUp))
				}
			case st.Status != StatusUp:
				errs = append(errs, fmt.Errorf("preflight %s on %s: %s is %s, not in rotation (force does not override this: fix the app, or put it back with balancer.exec.enable: `%s`): %w",
					s, e.where(ep), s, st.Status, e.repair(ep, s), ErrNotUp))
			}
		}
	}
	return errors.Join(errs...)
}

// repair renders the enable command for server as ep's operator would run it.
func (e *execBalancer) repair(ep Endpoint, server string) string {
	script, err := e.enable.render(server, e.cfg.Backend, addressOf(e.cfg, server))
	if err != nil {
		return "balancer.exec.enable for " + server
	}
	return onHost(ep, script)
}

func (e *execBalancer) Drain(ctx context.Context, server string) (DrainResult, error) {
	start := time.Now()
	for _, ep := range e.endpoints {
		if _, err := e.run(ctx, ep, e.drain, server); err != nil {
			return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: %w", server, e.where(ep), err)
		}
	}
	if e.idle != nil {
		script, err := e.idle.render(server, e.cfg.Backend, addressOf(e.cfg, server))
		if err != nil {
			return DrainResult{}, fmt.Errorf("drain %s on exec: %w", server, err)
		}
		res, err := pollIdle(ctx, e.c, e.endpoints, script, start, e.cfg)
		if err != nil {
			return res, fmt.Errorf("drain %s on exec: %w", server, err)
		}
		return res, nil
	}
	if e.state == nil {
		return DrainResult{Idle: true, Assumed: true, Waited: time.Since(start)}, nil
	}
	deadline := start.Add(e.cfg.DrainTimeout)
	for {
		remaining, counted := 0, true
		for _, ep := range e.endpoints {
			sts, hasSessions, err := e.statesOn(ctx, ep)
			if err != nil {
				return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: %w", server, e.where(ep), err)
			}
			st, ok := findState(sts, server)
			if !ok {
				return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: the state command does not list it: %w", server, e.where(ep), ErrUnknownServer)
			}
			if st.Status == StatusUp {
				return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: still UP after the drain command", server, e.where(ep))
			}
			counted = counted && hasSessions
			remaining += st.Sessions
		}
		if !counted {
			return DrainResult{Idle: true, Assumed: true, Waited: time.Since(start)}, nil
		}
		if remaining == 0 {
			return DrainResult{Idle: true, Waited: time.Since(start)}, nil
		}
		if !time.Now().Before(deadline) {
			return DrainResult{Waited: time.Since(start), Remaining: remaining}, nil
		}
		if err := sleepCtx(ctx, min(e.cfg.PollInterval, time.Until(deadline))); err != nil {
			return DrainResult{Waited: time.Since(start), Remaining: remaining}, fmt.Errorf("drain %s on exec: %w", server, err)
		}
	}
}

func (e *execBalancer) Enable(ctx context.Context, server string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = defaultEnableTimeout
	}
	deadline := time.Now().Add(timeout)
	for _, ep := range e.endpoints {
		if _, err := e.run(ctx, ep, e.enable, server); err != nil {
			return fmt.Errorf("enable %s on %s: %w", server, e.where(ep), err)
		}
	}
	if e.state == nil {
		return nil
	}
	for {
		var last []ServerState
		up := true
		for _, ep := range e.endpoints {
			sts, _, err := e.statesOn(ctx, ep)
			if err != nil {
				return fmt.Errorf("enable %s on %s: verify: %w", server, e.where(ep), err)
			}
			st, ok := findState(sts, server)
			if !ok {
				return fmt.Errorf("enable %s on %s: verify: the state command does not list it: %w", server, e.where(ep), ErrUnknownServer)
			}
			last = append(last, st)
			up = up && st.Status == StatusUp
		}
		if up {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("enable %s on exec: not UP within %s (%s): %w", server, timeout, describeStates(last), ErrNotUp)
		}
		if err := sleepCtx(ctx, min(e.cfg.PollInterval, time.Until(deadline))); err != nil {
			return fmt.Errorf("enable %s on exec: verify UP: %w", server, err)
		}
	}
}

func (e *execBalancer) Restore(ctx context.Context, servers []string) error {
	var errs []error
	for _, ep := range e.endpoints {
		for _, s := range servers {
			if _, err := e.run(ctx, ep, e.enable, s); err != nil {
				errs = append(errs, fmt.Errorf("restore %s on %s: %w", s, e.where(ep), err))
			}
		}
	}
	return errors.Join(errs...)
}

// CanVerify implements Balancer: only with balancer.exec.state.
func (e *execBalancer) CanVerify() bool { return e.state != nil }

// Verify implements Balancer.
func (e *execBalancer) Verify(ctx context.Context, server string) error {
	if e.state == nil {
		return errors.New("balancer exec cannot verify without balancer.exec.state")
	}
	return verifyUp(ctx, e, e.endpoints, server)
}

// EnsureOut implements Balancer. Without a state command there is nothing
// to read back: the drain command's success is all relctl knows.
func (e *execBalancer) EnsureOut(ctx context.Context, server string) (string, error) {
	if e.state == nil {
		return "", nil
	}
	note, err := ensureOut(ctx, e, e.endpoints, server)
	if err != nil || note != "" || e.idle == nil {
		return note, err
	}
	// idle_check decides idleness over the state command's count.
	return ensureIdle(ctx, e.c, e.endpoints, e.cfg, e.idle, server)
}
