package rollout

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/remote"
)

// Hosts is what the engine needs from the fleet: run a command on a host and
// upload a file to it. SSH implements it over the real transport; tests use
// a fake that asserts the exact command order.
type Hosts interface {
	Run(ctx context.Context, host string, cmd remote.Command) (remote.Result, error)
	Upload(ctx context.Context, host, local, remotePath, sha256hex string) (skipped bool, err error)
}

// output runs script on host and returns its trimmed stdout.
func output(ctx context.Context, h Hosts, host, script string) (string, error) {
	out, err := rawOutput(ctx, h, host, script, 0)
	return strings.TrimSpace(out), err
}

// rawOutput returns stdout exactly as printed, line by line. timeout 0
// leaves the deadline to h (see bounded).
func rawOutput(ctx context.Context, h Hosts, host, script string, timeout time.Duration) (string, error) {
	var b strings.Builder
	_, err := h.Run(ctx, host, remote.Command{Script: script, Timeout: timeout, Stdout: func(l string) {
		b.WriteString(l)
		b.WriteByte('\n')
	}})
	return b.String(), err
}

// slack is how long past a command's own timeout its context lives: the
// remote side kills the command's process group when the timeout passes
// (TERM, then KILL after a grace) and reports it; the context is the net
// under that, for a dial or a session that never answers.
const slack = 20 * time.Second

// bounded gives every remote call a deadline: a command without a Timeout
// gets def, and the context of every call ends shortly after the
// command's timeout (uploads: after upload), so no call waits forever on a
// host, whoever forgot to bound it.
type bounded struct {
	Hosts
	def    time.Duration
	upload time.Duration
}

// Run implements Hosts.
func (b bounded) Run(ctx context.Context, host string, cmd remote.Command) (remote.Result, error) {
	if cmd.Timeout <= 0 {
		cmd.Timeout = b.def
	}
	ctx, cancel := context.WithTimeout(ctx, cmd.Timeout+slack)
	defer cancel()
	return b.Hosts.Run(ctx, host, cmd)
}

// Upload implements Hosts.
func (b bounded) Upload(ctx context.Context, host, local, remotePath, sha string) (bool, error) {
	d := b.upload
	if d <= 0 {
		d = b.def
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return b.Hosts.Upload(ctx, host, local, remotePath, sha)
}

// WithDeadlines wraps h so that every command without a Timeout gets def,
// and every call's context ends shortly after its command's timeout
// (uploads: after upload, or def when upload is 0). Commands outside a run
// (status, lock, history) use it so that none can wait forever.
func WithDeadlines(h Hosts, def, upload time.Duration) Hosts {
	return bounded{Hosts: h, def: def, upload: upload}
}

// hostsRun runs cmd on host through the run's bounded Hosts.
func (e *Engine) hostsRun(ctx context.Context, host string, cmd remote.Command) (remote.Result, error) {
	return e.cfg.Hosts.Run(ctx, host, cmd)
}

// output runs a read-only script on host, bounded by timeout, and returns
// its stdout.
func (e *Engine) output(ctx context.Context, host, script string, timeout time.Duration) (string, error) {
	return rawOutput(ctx, e.cfg.Hosts, host, script, timeout)
}

// lbCall runs one balancer call with a deadline: lb drivers bound each of
// their own commands, and this bounds the whole call (a drain's wait, an
// enable's wait for the check) so that it too cannot hang.
func (e *Engine) lbCall(ctx context.Context, d time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := fn(ctx)
	e.balancerNotes()
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%w (no answer within %s)", err, d)
	}
	return err
}

// balancerNotes passes on what the balancer did on its own during a call
// (a HAProxy reload noticed and the drained servers drained again): the
// operator hears of it as a warning, never not at all.
func (e *Engine) balancerNotes() {
	nt, ok := e.cfg.Balancer.(lb.NoteTaker)
	if !ok {
		return
	}
	for _, n := range nt.TakeNotes() {
		e.bus.Emit(event.Event{Type: event.Warning, Message: "balancer: " + n})
	}
}

// drainBound bounds a drain (or a re-check before stop): the drain
// timeout, plus time for the balancer's own commands.
func (e *Engine) drainBound() time.Duration {
	return time.Duration(e.plan.Settings.DrainTimeout) + e.to.Observe + 2*time.Second
}

// enableBound bounds an enable: the balancer's check must pass within the
// health timeout.
func (e *Engine) enableBound() time.Duration {
	return time.Duration(e.plan.Settings.HealthTimeout) + e.to.Observe + 2*time.Second
}

// SSH is Hosts (and lb.Connector) over a remote.Pool: each inventory host
// name maps to its connection settings; balancer hosts not in the inventory
// use Default with their name as address.
type SSH struct {
	Pool    *remote.Pool
	Configs map[string]remote.HostConfig
	Default remote.HostConfig
}

var (
	_ Hosts        = (*SSH)(nil)
	_ lb.Connector = (*SSH)(nil)
)

func (s *SSH) client(ctx context.Context, host string) (*remote.Client, error) {
	cfg, ok := s.Configs[host]
	if !ok {
		cfg = s.Default
		cfg.Name, cfg.Address = host, host
	}
	return s.Pool.Get(ctx, cfg)
}

// Run implements Hosts.
func (s *SSH) Run(ctx context.Context, host string, cmd remote.Command) (remote.Result, error) {
	c, err := s.client(ctx, host)
	if err != nil {
		return remote.Result{}, err
	}
	return c.Run(ctx, cmd)
}

// Upload implements Hosts.
func (s *SSH) Upload(ctx context.Context, host, local, remotePath, sha string) (bool, error) {
	c, err := s.client(ctx, host)
	if err != nil {
		return false, err
	}
	return c.Upload(ctx, local, remotePath, sha)
}

// SessionCounter is a Hosts that counts the SSH sessions it opened per
// host; the run's summary reports them.
type SessionCounter interface {
	SessionCounts() map[string]int
}

var _ SessionCounter = (*SSH)(nil)

// SessionCounts implements SessionCounter: the sessions the pool opened to
// each host since it was made.
func (s *SSH) SessionCounts() map[string]int { return s.Pool.SessionCounts() }

// Output runs script on host and returns its trimmed stdout.
func (s *SSH) Output(ctx context.Context, host, script string) (string, error) {
	return output(ctx, s, host, script)
}

// DialVia implements lb.Connector.
func (s *SSH) DialVia(ctx context.Context, sshHost, network, addr string) (net.Conn, error) {
	if sshHost == "" {
		return lb.LocalConnector{}.DialVia(ctx, "", network, addr)
	}
	c, err := s.client(ctx, sshHost)
	if err != nil {
		return nil, err
	}
	return c.DialContext(ctx, network, addr)
}

// RunOn implements lb.Connector.
func (s *SSH) RunOn(ctx context.Context, sshHost, script string) (string, error) {
	if sshHost == "" {
		return lb.LocalConnector{}.RunOn(ctx, "", script)
	}
	// Raw stdout: drivers compare file contents byte for byte. lb bounds
	// each of its commands with its context.
	return rawOutput(ctx, s, sshHost, script, 0)
}
