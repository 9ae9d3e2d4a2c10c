package rollout

import (
	"context"
	"net"
	"strings"

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
	out, err := rawOutput(ctx, h, host, script)
	return strings.TrimSpace(out), err
}

// rawOutput returns stdout exactly as printed, line by line.
func rawOutput(ctx context.Context, h Hosts, host, script string) (string, error) {
	var b strings.Builder
	_, err := h.Run(ctx, host, remote.Command{Script: script, Stdout: func(l string) {
		b.WriteString(l)
		b.WriteByte('\n')
	}})
	return b.String(), err
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
	// Raw stdout: drivers compare file contents byte for byte.
	return rawOutput(ctx, s, sshHost, script)
}
