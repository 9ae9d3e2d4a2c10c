package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/shell"
)

// haproxy drives HAProxy through its runtime API (the "stats socket" with
// `level admin`). It opens one short-lived connection per command: in
// non-interactive mode HAProxy answers one command and closes, which keeps
// the driver free of prompt-mode parsing; a local or SSH-forwarded
// connection costs well under a millisecond.
//
// HAProxy forgets runtime states when it reloads (a new process reads the
// config file). The driver therefore remembers, per endpoint, which servers
// it drained and has not put back ("held"), and the process (pid, start
// time) each endpoint answered from. Every Preflight, Drain, Enable,
// Restore, States, Verify and EnsureOut first asks `show info`; when the
// process changed, it re-drains every held server the new process does not
// have drained, and reports it (DrainResult.Note, EnsureOut's note,
// TakeNotes).
type haproxy struct {
	cfg Config
	c   Connector

	// mu serialises reload checks with the state changes that add or
	// remove held servers, so a re-drain can never undo a concurrent
	// Enable, nor miss a concurrent Drain. It also guards the fields below.
	mu sync.Mutex
	// procs[i] is the process endpoint i answered from last (zero: not
	// read yet); retired[i] the pids it moved away from.
	procs   []haproxyProc
	retired []map[int]bool
	reloads []int // reloads handled per endpoint
	// held[i] is the set of servers this driver drained on endpoint i and
	// has not put back; lost[i] those of them a reload put back in
	// rotation and whose re-drain failed (retried by every call).
	held []map[string]bool
	lost []map[string]bool
	// notes are reload reports not yet returned, by server ("" = none).
	notes map[string][]string
}

// haproxyProc identifies the HAProxy process behind an admin socket.
type haproxyProc struct {
	Pid   int
	Start int64 // Start_time_sec (unix seconds)
}

var _ Balancer = (*haproxy)(nil)

// defaultEnableTimeout applies when Enable is called with timeout <= 0.
const defaultEnableTimeout = 60 * time.Second

func newHAProxy(cfg Config, c Connector) (*haproxy, error) {
	if cfg.Backend == "" {
		return nil, errors.New("balancer.backend is required")
	}
	if !validName(cfg.Backend) {
		return nil, fmt.Errorf("balancer.backend %q: use letters, digits and .-_: only", cfg.Backend)
	}
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("balancer.endpoints: haproxy needs at least one admin socket (socket or tcp)")
	}
	for i, ep := range cfg.Endpoints {
		switch {
		case ep.Socket != "" && ep.TCP != "":
			return nil, fmt.Errorf("balancer.endpoints[%d]: set socket or tcp, not both", i)
		case ep.Socket == "" && ep.TCP == "":
			return nil, fmt.Errorf("balancer.endpoints[%d]: socket or tcp is required", i)
		case ep.Socket != "" && !path.IsAbs(ep.Socket):
			return nil, fmt.Errorf("balancer.endpoints[%d].socket %q must be an absolute path", i, ep.Socket)
		case ep.TCP != "":
			if _, _, err := net.SplitHostPort(ep.TCP); err != nil {
				return nil, fmt.Errorf("balancer.endpoints[%d].tcp %q: want host:port: %w", i, ep.TCP, err)
			}
		}
	}
	if cfg.UpstreamFile != "" || cfg.IdleCheck != "" || cfg.Exec != (ExecCommands{}) {
		return nil, errors.New("balancer: upstream_file, idle_check and exec do not apply to kind haproxy")
	}
	h := &haproxy{cfg: cfg, c: c,
		procs:   make([]haproxyProc, len(cfg.Endpoints)),
		retired: make([]map[int]bool, len(cfg.Endpoints)),
		reloads: make([]int, len(cfg.Endpoints)),
		held:    make([]map[string]bool, len(cfg.Endpoints)),
		lost:    make([]map[string]bool, len(cfg.Endpoints)),
		notes:   map[string][]string{},
	}
	for i := range cfg.Endpoints {
		h.retired[i] = map[int]bool{}
		h.held[i] = map[string]bool{}
		h.lost[i] = map[string]bool{}
	}
	return h, nil
}

var _ NoteTaker = (*haproxy)(nil)

func (h *haproxy) Kind() string { return KindHAProxy }

func (h *haproxy) Describe() string {
	names := make([]string, len(h.cfg.Endpoints))
	for i, ep := range h.cfg.Endpoints {
		names[i] = ep.String()
	}
	return fmt.Sprintf("haproxy backend %s via %s (%s), drain up to %s; a reload (new pid in show info) is noticed and drained servers are drained again",
		h.cfg.Backend, plural(len(names), "endpoint", "endpoints"), strings.Join(names, ", "), h.cfg.DrainTimeout)
}

// where names an endpoint in errors: "haproxy 127.0.0.1:9999".
func (h *haproxy) where(ep Endpoint) string { return "haproxy " + ep.String() }

// command sends one runtime API command to ep and returns the whole reply.
// Transport failures wrap ErrUnreachable.
func (h *haproxy) command(ctx context.Context, ep Endpoint, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	network, addr := "unix", ep.Socket
	if addr == "" {
		network, addr = "tcp", ep.TCP
	}
	conn, err := h.c.DialVia(ctx, ep.SSH, network, addr)
	if err != nil {
		return "", fmt.Errorf("%w: dial %s %s: %w", ErrUnreachable, network, addr, err)
	}
	defer conn.Close()
	// SSH-forwarded unix conns do not support deadlines: close on ctx end.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", h.ioErr(ctx, "send", cmd, err)
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 32<<20))
	if err != nil && len(reply) == 0 {
		return "", h.ioErr(ctx, "read reply to", cmd, err)
	}
	return string(reply), nil
}

func (h *haproxy) ioErr(ctx context.Context, verb, cmd string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %q: %w", verb, cmd, ctxErr)
	}
	return fmt.Errorf("%w: %s %q: %w", ErrUnreachable, verb, cmd, err)
}

func (h *haproxy) stats(ctx context.Context, ep Endpoint) ([]ServerState, error) {
	// "show stat <proxy> 4 -1": servers (type 4) of one proxy only.
	reply, err := h.command(ctx, ep, "show stat "+h.cfg.Backend+" 4 -1")
	if err != nil {
		return nil, err
	}
	rows, err := parseShowStat(reply, h.cfg.Backend)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("show stat: backend %q has no servers: %w", h.cfg.Backend, ErrUnknownBackend)
	}
	for i := range rows {
		rows[i].Endpoint = ep.String()
	}
	return rows, nil
}

func (h *haproxy) admin(ctx context.Context, ep Endpoint) ([]serverAdmin, error) {
	reply, err := h.command(ctx, ep, "show servers state "+h.cfg.Backend)
	if err != nil {
		return nil, err
	}
	return parseServersState(reply)
}

func (h *haproxy) setState(ctx context.Context, ep Endpoint, server, state string) error {
	reply, err := h.command(ctx, ep, "set server "+h.cfg.Backend+"/"+server+" state "+state)
	if err != nil {
		return err
	}
	return parseSetReply(reply)
}

// runtimeCmd is the shell command an operator runs to send cmd to ep's
// admin socket, e.g. `echo 'set server shop/web2 state ready' | ssh lb1
// 'socat stdio /run/haproxy/admin.sock'`.
func (h *haproxy) runtimeCmd(ep Endpoint, cmd string) string {
	addr := shell.Quote(ep.Socket)
	if ep.Socket == "" {
		addr = shell.Quote("tcp:" + ep.TCP)
	}
	sock := "socat stdio " + addr
	if ep.SSH != "" {
		sock = "ssh " + shell.Quote(ep.SSH) + " " + shell.Quote(sock)
	}
	return "echo " + shell.Quote(cmd) + " | " + sock
}

func (h *haproxy) checkServer(server string) error {
	if !validName(server) {
		return fmt.Errorf("server name %q: use letters, digits and .-_: only: %w", server, ErrUnknownServer)
	}
	return nil
}

func (h *haproxy) Preflight(ctx context.Context, servers []string, force bool) error {
	var errs []error
	for i, ep := range h.cfg.Endpoints {
		if err := h.checkReload(ctx, i); err != nil {
			errs = append(errs, fmt.Errorf("preflight on %s: %w", h.where(ep), err))
			continue
		}
		stats, err := h.stats(ctx, ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("preflight on %s: %w", h.where(ep), err))
			continue
		}
		admins, err := h.admin(ctx, ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("preflight on %s: %w", h.where(ep), err))
			continue
		}
		for _, s := range servers {
			if err := h.checkServer(s); err != nil {
				errs = append(errs, fmt.Errorf("preflight %s on %s: %w", s, h.where(ep), err))
				continue
			}
			st, ok := findState(stats, s)
			if !ok {
				errs = append(errs, fmt.Errorf("preflight %s on %s: backend %s has no server %s: %w", s, h.where(ep), h.cfg.Backend, s, ErrUnknownServer))
				continue
			}
			adm, ok := findAdmin(admins, h.cfg.Backend, s)
			if !ok {
				errs = append(errs, fmt.Errorf("preflight %s on %s: show servers state does not list %s: %w", s, h.where(ep), s, ErrUnknownServer))
				continue
			}
			if as := adm.AdminStatus(); as != StatusUp {
				if !force {
					errs = append(errs, fmt.Errorf("preflight %s on %s: %s is %s (set by an operator or an earlier run), not in rotation; put it back with `%s`, or force to proceed: %w",
						s, h.where(ep), s, as, h.runtimeCmd(ep, "set server "+h.cfg.Backend+"/"+s+" state ready"), ErrNotUp))
				}
				continue
			}
			if st.Status != StatusUp && !force {
				// Not an admin state: HAProxy's own check keeps it out; it
				// comes back by itself once the app answers the check. Force
				// upgrades it as it is (it is out of service anyway): Enable
				// puts it back only once the check passes.
				errs = append(errs, fmt.Errorf("preflight %s on %s: %s is %s (check %s): HAProxy's health check fails, so the app is not answering; fix the app on that host (HAProxy puts it back by itself once the check passes; watch with `%s`), or force to upgrade it as it is (it goes back into rotation only once the check passes): %w",
					s, h.where(ep), s, st.Status, orNone(st.CheckStatus), h.runtimeCmd(ep, "show stat "+h.cfg.Backend+" 4 -1"), ErrNotUp))
			}
		}
	}
	return errors.Join(errs...)
}

func (h *haproxy) Drain(ctx context.Context, server string) (DrainResult, error) {
	if err := h.checkServer(server); err != nil {
		return DrainResult{}, fmt.Errorf("drain %s on haproxy: %w", server, err)
	}
	start := time.Now()
	res, err := h.drain(ctx, server, start)
	res.Note = h.takeNotes(server)
	return res, err
}

// drain is Drain without the notes. A reload noticed while waiting (on
// every poll) re-drains the server, which is held from the first `set`.
func (h *haproxy) drain(ctx context.Context, server string, start time.Time) (DrainResult, error) {
	for i, ep := range h.cfg.Endpoints {
		if err := h.checkReload(ctx, i); err != nil {
			return DrainResult{}, fmt.Errorf("drain %s on %s: %w", server, h.where(ep), err)
		}
		if err := h.setHeld(ctx, i, server, "drain"); err != nil {
			return DrainResult{}, fmt.Errorf("drain %s on %s: %w", server, h.where(ep), err)
		}
	}
	deadline := start.Add(h.cfg.DrainTimeout)
	for {
		remaining := 0
		for i, ep := range h.cfg.Endpoints {
			seen := h.reloadCount(i)
			if err := h.checkReload(ctx, i); err != nil {
				return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: %w", server, h.where(ep), err)
			}
			rows, err := h.stats(ctx, ep)
			if err != nil {
				return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: %w", server, h.where(ep), err)
			}
			st, ok := findState(rows, server)
			if !ok {
				return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: server vanished from show stat: %w", server, h.where(ep), ErrUnknownServer)
			}
			if st.Status == StatusUp || st.Status == StatusNoLB {
				// A reload just before show stat, handled by now (here or
				// by a concurrent call) with a re-drain: keep waiting.
				if err := h.checkReload(ctx, i); err != nil {
					return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: %w", server, h.where(ep), err)
				}
				if h.reloadCount(i) != seen {
					remaining++
					continue
				}
				// Not a reload: another operator set it ready.
				return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: server is %s again (set ready by another operator or tool?)", server, h.where(ep), st.Status)
			}
			remaining += st.Sessions + st.Queued
		}
		// One clock reading for both: a timed-out drain never reports
		// having waited less than its timeout.
		now := time.Now()
		waited := now.Sub(start)
		if remaining == 0 {
			return DrainResult{Idle: true, Waited: waited}, nil
		}
		if !now.Before(deadline) {
			return DrainResult{Idle: false, Waited: waited, Remaining: remaining}, nil
		}
		if err := sleepCtx(ctx, min(h.cfg.PollInterval, time.Until(deadline))); err != nil {
			return DrainResult{Waited: time.Since(start), Remaining: remaining}, fmt.Errorf("drain %s on haproxy: %w", server, err)
		}
	}
}

// checkOK reports whether a HAProxy check status is a pass.
func checkOK(s string) bool {
	switch s {
	case "L4OK", "L6OK", "L7OK", "L7OKC":
		return true
	}
	return false
}

func (h *haproxy) Enable(ctx context.Context, server string, timeout time.Duration) error {
	if err := h.checkServer(server); err != nil {
		return fmt.Errorf("enable %s on haproxy: %w", server, err)
	}
	if timeout <= 0 {
		timeout = defaultEnableTimeout
	}
	deadline := time.Now().Add(timeout)

	// 1. Make sure checks run: a MAINT server has its checks paused, so move it
	// to DRAIN first (still no traffic). Note which endpoints check at all.
	checked := make([]bool, len(h.cfg.Endpoints))
	for i, ep := range h.cfg.Endpoints {
		if err := h.checkReload(ctx, i); err != nil {
			return fmt.Errorf("enable %s on %s: %w", server, h.where(ep), err)
		}
		admins, err := h.admin(ctx, ep)
		if err != nil {
			return fmt.Errorf("enable %s on %s: %w", server, h.where(ep), err)
		}
		adm, ok := findAdmin(admins, h.cfg.Backend, server)
		if !ok {
			return fmt.Errorf("enable %s on %s: backend %s has no server %s: %w", server, h.where(ep), h.cfg.Backend, server, ErrUnknownServer)
		}
		if adm.AdminState&adminForcedMaint != 0 {
			if err := h.setHeld(ctx, i, server, "drain"); err != nil {
				return fmt.Errorf("enable %s on %s: leave maint for drain: %w", server, h.where(ep), err)
			}
		}
		checked[i] = adm.HasCheck()
	}

	// 2. Wait for the balancer's own check to pass while the server is still
	// out of rotation.
	var last []ServerState
	for {
		passing := true
		last = last[:0]
		for i, ep := range h.cfg.Endpoints {
			if !checked[i] {
				continue
			}
			// A reload now would put the server in rotation before its
			// check passed: it is still held, so this drains it again.
			if err := h.checkReload(ctx, i); err != nil {
				return fmt.Errorf("enable %s on %s: %w", server, h.where(ep), err)
			}
			rows, err := h.stats(ctx, ep)
			if err != nil {
				return fmt.Errorf("enable %s on %s: %w", server, h.where(ep), err)
			}
			st, ok := findState(rows, server)
			if !ok {
				return fmt.Errorf("enable %s on %s: %w", server, h.where(ep), ErrUnknownServer)
			}
			last = append(last, st)
			if !checkOK(st.CheckStatus) || st.Status == StatusDown {
				passing = false
			}
		}
		if passing {
			break
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("enable %s on haproxy: health check did not pass within %s (%s); server left out of rotation: %w",
				server, timeout, describeStates(last), ErrNotUp)
		}
		if err := sleepCtx(ctx, min(h.cfg.PollInterval, time.Until(deadline))); err != nil {
			return fmt.Errorf("enable %s on haproxy: waiting for health check: %w", server, err)
		}
	}

	// 3. Ready on every endpoint.
	for i, ep := range h.cfg.Endpoints {
		if err := h.setHeld(ctx, i, server, "ready"); err != nil {
			return fmt.Errorf("enable %s on %s: %w", server, h.where(ep), err)
		}
	}

	// 4. Verify UP everywhere.
	for {
		up := true
		last = last[:0]
		for _, ep := range h.cfg.Endpoints {
			rows, err := h.stats(ctx, ep)
			if err != nil {
				return fmt.Errorf("enable %s on %s: verify: %w", server, h.where(ep), err)
			}
			st, ok := findState(rows, server)
			if !ok {
				return fmt.Errorf("enable %s on %s: verify: %w", server, h.where(ep), ErrUnknownServer)
			}
			last = append(last, st)
			if st.Status != StatusUp {
				up = false
			}
		}
		if up {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("enable %s on haproxy: set ready but not UP within %s (%s); HAProxy's checks decide when it takes traffic: %w",
				server, timeout, describeStates(last), ErrNotUp)
		}
		if err := sleepCtx(ctx, min(h.cfg.PollInterval, time.Until(deadline))); err != nil {
			return fmt.Errorf("enable %s on haproxy: verify UP: %w", server, err)
		}
	}
}

// States implements Balancer. It first checks for a reload (re-draining
// held servers), then reads `show stat` and `show servers state`, so Admin
// tells a drained server whose app is stopped (DOWN) from one in rotation.
func (h *haproxy) States(ctx context.Context) ([]ServerState, error) {
	var out []ServerState
	for i, ep := range h.cfg.Endpoints {
		if err := h.checkReload(ctx, i); err != nil {
			return out, fmt.Errorf("states on %s: %w", h.where(ep), err)
		}
		rows, err := h.stats(ctx, ep)
		if err != nil {
			return out, fmt.Errorf("states on %s: %w", h.where(ep), err)
		}
		admins, err := h.admin(ctx, ep)
		if err != nil {
			return out, fmt.Errorf("states on %s: %w", h.where(ep), err)
		}
		for j := range rows {
			if adm, ok := findAdmin(admins, h.cfg.Backend, rows[j].Server); ok {
				rows[j].Admin = adm.AdminStatus()
			}
		}
		out = append(out, rows...)
	}
	return out, nil
}

func (h *haproxy) Restore(ctx context.Context, servers []string) error {
	var errs []error
	for i, ep := range h.cfg.Endpoints {
		if err := h.checkReload(ctx, i); err != nil {
			// Still try: restoring is the point of the call.
			errs = append(errs, fmt.Errorf("restore on %s: %w", h.where(ep), err))
		}
		for _, s := range servers {
			if err := h.checkServer(s); err != nil {
				errs = append(errs, fmt.Errorf("restore %s on %s: %w", s, h.where(ep), err))
				continue
			}
			if err := h.setHeld(ctx, i, s, "ready"); err != nil {
				errs = append(errs, fmt.Errorf("restore %s on %s: %w", s, h.where(ep), err))
				if errors.Is(err, ErrUnreachable) {
					break // the rest would fail the same way
				}
			}
		}
	}
	return errors.Join(errs...)
}

func describeStates(sts []ServerState) string {
	if len(sts) == 0 {
		return "no state seen"
	}
	parts := make([]string, len(sts))
	for i, st := range sts {
		parts[i] = fmt.Sprintf("%s: %s, check %s", st.Endpoint, st.Status, orNone(st.CheckStatus))
	}
	return strings.Join(parts, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// CanVerify implements Balancer.
func (h *haproxy) CanVerify() bool { return true }

// Verify implements Balancer.
func (h *haproxy) Verify(ctx context.Context, server string) error {
	return verifyUp(ctx, h, h.cfg.Endpoints, server)
}

// EnsureOut implements Balancer.
func (h *haproxy) EnsureOut(ctx context.Context, server string) (string, error) {
	note, err := ensureOut(ctx, h, h.cfg.Endpoints, server)
	// A reload seen by the States read that found the server already
	// re-drained and idle left its note pending.
	return joinNotes(h.takeNotes(server), note), err
}
