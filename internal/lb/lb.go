package lb

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// Connector reaches balancer endpoints; the caller adapts its SSH pool to it.
// lb never imports SSH code.
type Connector interface {
	// DialVia opens network ("unix" or "tcp") addr: through an SSH connection
	// to sshHost when sshHost != "", else locally. lb closes the conn when
	// its context ends, so the conn need not support deadlines.
	DialVia(ctx context.Context, sshHost, network, addr string) (net.Conn, error)
	// RunOn runs a shell script on sshHost ("" = locally) and returns stdout;
	// non-zero exit is an error that includes stderr.
	RunOn(ctx context.Context, sshHost, script string) (string, error)
}

// Endpoint is one balancer instance. Every command goes to each endpoint of a
// Config (an HA pair gets the same drain twice).
type Endpoint struct {
	SSH    string // balancer host reached over SSH ("lb1.example.com"); "" = local
	Socket string // unix admin socket path (on the SSH host, or local when SSH == "")
	TCP    string // "127.0.0.1:9999" TCP admin socket (reached via SSH host when SSH != "")
}

// String names the endpoint in messages: "127.0.0.1:9999",
// "/run/haproxy/admin.sock", "lb1.example.com:/run/haproxy/admin.sock",
// "lb1.example.com" or "local".
func (e Endpoint) String() string {
	addr := e.Socket
	if addr == "" {
		addr = e.TCP
	}
	switch {
	case e.SSH != "" && addr != "":
		return e.SSH + ":" + addr
	case e.SSH != "":
		return e.SSH
	case addr != "":
		return addr
	}
	return "local"
}

// ExecCommands are the shell templates of the exec driver. Each may use
// {{.Server}}, {{.Backend}} and {{.Address}}; values are shell-quoted by lb.
type ExecCommands struct {
	Drain  string // takes the server out of rotation (required)
	Enable string // puts it back (required)
	State  string // optional: prints lines "server status [sessions]"
}

// Config selects and configures a driver. It mirrors the inventory's
// `balancer:` section; error messages name its keys.
type Config struct {
	Kind         string        // "haproxy" | "nginx" | "exec" | "none"
	Backend      string        // haproxy backend / nginx upstream name
	DrainTimeout time.Duration // default 30s
	PollInterval time.Duration // default 100ms
	Endpoints    []Endpoint    // every command goes to each; success only when all agree

	// UpstreamFile is the nginx file holding `upstream <Backend> { server ...; }`
	// on each endpoint's host.
	UpstreamFile string
	// NginxBinary is the command prefix used for `-t` and `-s reload`
	// (default "nginx"). It is operator configuration and is inserted
	// unquoted, so "sudo nginx" or "nginx -c /etc/nginx/nginx.conf" work.
	NginxBinary string
	// IdleCheck (nginx, exec) is a command template, run on each endpoint's
	// host, that exits 0 when the server has no requests left, e.g.
	// `test "$(curl -fsS http://{{.Address}}/inflight)" = 0`. Drain polls it
	// every PollInterval until it passes twice in a row (nginx reloads
	// asynchronously) or DrainTimeout. Without it nginx waits a fixed
	// DrainTimeout and says so in Describe and DrainResult.Assumed.
	IdleCheck string

	// Exec holds the exec driver's templates.
	Exec ExecCommands

	// Addresses maps a server name to its host address, for {{.Address}} in
	// templates and so that nginx `server <address>` lines can be matched by
	// inventory server name. Optional.
	Addresses map[string]string
}

// Status is a server's state as the balancer reports it.
type Status string

// The statuses drivers report. HAProxy's transitional forms ("UP 1/3",
// "DOWN 1/2", "MAINT (via x/y)") are reduced to their first word, and
// "no check" to UP.
const (
	StatusUp      Status = "UP"
	StatusDown    Status = "DOWN"
	StatusDrain   Status = "DRAIN"
	StatusMaint   Status = "MAINT"
	StatusNoLB    Status = "NOLB"
	StatusUnknown Status = "UNKNOWN"
)

// ServerState is one server as one endpoint sees it.
type ServerState struct {
	Server      string
	Status      Status
	Sessions    int    // current sessions (HAProxy scur)
	Queued      int    // queued requests (HAProxy qcur)
	CheckStatus string // last health check result, e.g. "L7OK", "L4CON"; "" if none
	Weight      int
	Endpoint    string // Endpoint.String() of the endpoint that reported it
	Addr        string // server address when the balancer reports it
	// Admin is the out-of-rotation state an operator or relctl set (DRAIN,
	// MAINT; UP when none), when the balancer reports it apart from health:
	// HAProxy shows a drained server whose app is stopped as Status DOWN,
	// Admin DRAIN. Empty when the driver cannot tell them apart.
	Admin Status
}

// OutOfRotation reports whether the server is held out of rotation by an
// admin state (DRAIN or MAINT), whatever its health.
func (s ServerState) OutOfRotation() bool {
	return s.Status == StatusDrain || s.Status == StatusMaint || s.Admin == StatusDrain || s.Admin == StatusMaint
}

// DrainResult tells how a drain ended.
type DrainResult struct {
	Idle      bool          // false: DrainTimeout passed with Remaining sessions
	Waited    time.Duration // from the drain command to idle (or timeout)
	Remaining int           // sessions + queued left at timeout, summed over endpoints; -1 when only an idle_check command was asked
	// Assumed is true when the balancer cannot count sessions and Idle only
	// means a fixed wait (nginx without IdleCheck, exec without a count)
	// has passed.
	Assumed bool
	// Note says what the driver did on its own during the call, one
	// sentence per event joined by "; ", e.g. "haproxy lb1:/run/haproxy/admin.sock
	// reloaded (pid 812 → 9140) and forgot that web2 was drained: drained
	// it again". Empty when nothing happened.
	Note string
}

// NoteTaker is implemented by drivers that act between calls on their own:
// the HAProxy driver re-drains the servers it holds out of rotation when it
// notices a reload. TakeNotes returns, once, what happened that no Drain
// or EnsureOut result has reported yet (a reload noticed during Enable,
// Verify or States). The executor calls it after each balancer action.
type NoteTaker interface {
	TakeNotes() []string
}

// Balancer is one driver bound to its configuration and endpoints.
type Balancer interface {
	Kind() string
	// Describe is one line for the plan, e.g. "haproxy backend shop via 2 endpoints".
	Describe() string
	// Preflight checks that every endpoint is reachable and each server exists
	// and is UP; DRAIN/MAINT is refused unless force (the error names the
	// server, the endpoint, its state and the command that puts it back).
	// DOWN (the balancer's own check fails) is refused too; HAProxy accepts
	// it with force, as its Enable puts a server back only once the check
	// passes (exec and nginx cannot tell, and refuse it always).
	Preflight(ctx context.Context, servers []string, force bool) error
	// Drain takes server out of rotation on every endpoint and waits until it
	// is idle or DrainTimeout passes. A timeout is not an error: see
	// DrainResult (whose Note reports a reload noticed meanwhile). On error the server may already be drained on some
	// endpoints: compensate with Enable (or Restore), never assume nothing
	// happened.
	Drain(ctx context.Context, server string) (DrainResult, error)
	// Enable puts server back only after the balancer's own check passes
	// (L7OK/L4OK) within timeout, then verifies UP on every endpoint. When the
	// check does not pass, the server stays out of rotation and the error
	// wraps ErrNotUp. timeout <= 0 means 60s. nginx has no check of its own:
	// its Enable removes `down`, reloads and reads the file back.
	Enable(ctx context.Context, server string, timeout time.Duration) error
	// States lists every server of the backend, once per endpoint.
	States(ctx context.Context) ([]ServerState, error)
	// Restore re-asserts "ready" for servers relctl touched, at run end
	// (a HAProxy reload loses runtime state).
	Restore(ctx context.Context, servers []string) error
	// CanVerify reports whether Verify and EnsureOut read the balancer's
	// real state. It is false for none (and exec without a state command):
	// the plan then lists no verify action for that balancer.
	CanVerify() bool
	// Verify checks, from the balancer's own state, that server is in
	// rotation (UP) on every endpoint; the error names each endpoint that
	// disagrees.
	Verify(ctx context.Context, server string) error
	// EnsureOut is called right before a host's app is stopped: server must
	// be out of rotation and idle on every endpoint. When a reload or
	// another operator put it back (or it still has sessions), EnsureOut
	// drains it again, waits for idle, and returns a note saying so. An
	// error means the app must not be stopped.
	EnsureOut(ctx context.Context, server string) (note string, err error)
}

// Kinds of balancer New accepts.
const (
	KindHAProxy = "haproxy"
	KindNginx   = "nginx"
	KindExec    = "exec"
	KindNone    = "none"
)

const (
	defaultDrainTimeout = 30 * time.Second
	defaultPollInterval = 100 * time.Millisecond
	// cmdTimeout bounds one admin command or one remote script.
	cmdTimeout = 15 * time.Second
)

// New validates cfg and returns the driver it names. Errors name the
// inventory key: "balancer.backend is required".
func New(cfg Config, c Connector) (Balancer, error) {
	if cfg.DrainTimeout < 0 {
		return nil, fmt.Errorf("balancer.drain_timeout must not be negative, got %s", cfg.DrainTimeout)
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = defaultDrainTimeout
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("balancer.poll_interval must not be negative, got %s", cfg.PollInterval)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = defaultPollInterval
	}
	cfg.Endpoints = append([]Endpoint(nil), cfg.Endpoints...)
	if cfg.Kind != KindNone && c == nil {
		return nil, fmt.Errorf("balancer %s: a connector is required", cfg.Kind)
	}
	switch cfg.Kind {
	case KindHAProxy:
		return newHAProxy(cfg, c)
	case KindNginx:
		return newNginx(cfg, c)
	case KindExec:
		return newExec(cfg, c)
	case KindNone:
		return noneBalancer{}, nil
	case "":
		return nil, fmt.Errorf("balancer.kind is required (haproxy, nginx, exec or none)")
	}
	return nil, fmt.Errorf("balancer.kind %q is unknown (want haproxy, nginx, exec or none)", cfg.Kind)
}

// hostEndpoints returns the endpoints of a command-driven driver, defaulting
// to one local endpoint, and rejects admin-socket keys that would be ignored.
func hostEndpoints(cfg Config) ([]Endpoint, error) {
	if len(cfg.Endpoints) == 0 {
		return []Endpoint{{}}, nil
	}
	for i, ep := range cfg.Endpoints {
		if ep.Socket != "" || ep.TCP != "" {
			return nil, fmt.Errorf("balancer.endpoints[%d]: socket and tcp apply to haproxy only; %s runs commands on the ssh host", i, cfg.Kind)
		}
	}
	return cfg.Endpoints, nil
}

// parseStatus reduces a balancer's status text to a Status.
func parseStatus(s string) Status {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "no check") {
		return StatusUp
	}
	word, _, _ := strings.Cut(s, " ")
	switch st := Status(strings.ToUpper(word)); st {
	case StatusUp, StatusDown, StatusDrain, StatusMaint, StatusNoLB:
		return st
	case "READY", "ENABLED":
		return StatusUp
	case "DRAINING", "DISABLED":
		return StatusDrain
	}
	return StatusUnknown
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
