package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/rollout"
)

// connFlags are the connection flags of every command that talks to hosts.
type connFlags struct {
	acceptNew bool
}

// outFlags choose the output mode once (and how to wait for the lock).
type outFlags struct {
	plain, json, yes bool
	lockWait         time.Duration
}

func isTerminal(f any) bool {
	if x, ok := f.(interface{ Fd() uintptr }); ok {
		return term.IsTerminal(int(x.Fd()))
	}
	return false
}

// interactive reports whether relctl may ask the operator questions.
func (ios *IO) interactive() bool { return isTerminal(ios.In) && isTerminal(ios.Err) }

// connect builds the SSH side of the fleet from the inventory.
func connect(ios *IO, inv *fleet.Inventory, cf connFlags) *rollout.SSH {
	pool := remote.NewPool(remote.Options{
		AcceptNewHostKeys: cf.acceptNew,
		Warnf:             func(f string, a ...any) { fmt.Fprintf(ios.Err, "warning: "+f+"\n", a...) },
	})
	s := &rollout.SSH{Pool: pool, Configs: map[string]remote.HostConfig{}}
	base := remote.HostConfig{
		Port: inv.SSH.Port, User: inv.SSH.User, IdentityFile: inv.SSH.IdentityFile,
		KnownHosts: inv.SSH.KnownHosts, Jump: inv.SSH.Jump, UseSSHConfig: *inv.SSH.UseSSHConfig,
		ConnectTimeout:      inv.SSH.ConnectTimeout,
		ServerAliveInterval: inv.SSH.ServerAliveInterval,
		ServerAliveCountMax: inv.SSH.ServerAliveCountMax,
	}
	s.Default = base
	for _, h := range inv.Hosts {
		c := base
		c.Name, c.Address = h.Name, h.Address
		if h.SSH.User != "" {
			c.User = h.SSH.User
		}
		if h.SSH.Port != 0 {
			c.Port = h.SSH.Port
		}
		if h.SSH.IdentityFile != "" {
			c.IdentityFile = h.SSH.IdentityFile
		}
		if len(h.SSH.KnownHosts) > 0 {
			c.KnownHosts = h.SSH.KnownHosts
		}
		if h.SSH.Jump != "" {
			c.Jump = h.SSH.Jump
		}
		s.Configs[h.Name] = c
	}
	return s
}

// balancer builds the inventory's balancer driver.
func balancer(inv *fleet.Inventory, conn lb.Connector) (lb.Balancer, error) {
	b := inv.Balancer
	cfg := lb.Config{
		Kind: b.Kind, Backend: b.Backend, DrainTimeout: b.DrainTimeout, PollInterval: b.PollInterval,
		UpstreamFile: b.UpstreamFile, IdleCheck: b.IdleCheck, NginxBinary: b.Nginx,
		Exec:      lb.ExecCommands{Drain: b.Commands.Drain, Enable: b.Commands.Enable, State: b.Commands.State},
		Addresses: map[string]string{},
	}
	for _, e := range b.Endpoints {
		cfg.Endpoints = append(cfg.Endpoints, lb.Endpoint{SSH: e.SSH, Socket: e.Socket, TCP: e.TCP})
	}
	for _, h := range inv.Hosts {
		addr := h.Upstream
		if addr == "" {
			addr = h.Address
			if host, _, err := net.SplitHostPort(addr); err == nil {
				addr = host
			}
		}
		cfg.Addresses[h.Server] = addr
	}
	bal, err := lb.New(cfg, conn)
	if err != nil {
		return nil, withCode(ExitUsage, fmt.Errorf("%s: balancer: %w", inv.File, err))
	}
	return bal, nil
}

// canVerify reports whether the inventory's balancer can read a server's
// state back (lb.Balancer.CanVerify), for the planner: only then does a
// plan list verify. Building a driver does no I/O.
func canVerify(inv *fleet.Inventory) bool {
	bal, err := balancer(inv, lb.LocalConnector{})
	return err == nil && bal.CanVerify()
}

// artifacts finds and hashes the artifact of every version p stages.
func artifacts(inv *fleet.Inventory, p *plan.Plan) (map[string]rollout.Artifact, error) {
	out := map[string]rollout.Artifact{}
	for _, s := range p.Steps {
		for _, v := range s.Versions {
			if _, ok := out[v]; ok {
				continue
			}
			path, err := artifactPath(inv, v)
			if err != nil {
				return nil, withCode(ExitUsage, err)
			}
			sum, err := sha256File(path)
			if err != nil {
				return nil, withCode(ExitUsage, fmt.Errorf("artifact for %s: %w (artifact.source in %s)", v, err, inv.File))
			}
			out[v] = rollout.Artifact{Path: path, SHA256: sum}
		}
	}
	return out, nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// observeForPlan observes the fleet before a change, stopping at once on a
// host-key problem: a changed key is a hard stop, whatever else is seen.
func observeForPlan(ctx context.Context, inv *fleet.Inventory, conn *rollout.SSH) (plan.Observed, error) {
	hosts, obs := observe.Fleet(ctx, inv, conn, observe.Options{})
	if err := hostKeyProblem(hosts); err != nil {
		return obs, withCode(ExitError, err)
	}
	return obs, nil
}

// table writes aligned columns to a terminal and tab-separated ones to a
// pipe.
func table(w io.Writer) *tabwriter.Writer {
	if isTerminal(w) {
		return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	}
	return tabwriter.NewWriter(w, 0, 0, 1, '\t', 0)
}

// hostKeyProblem returns the first host-key error among observed hosts, so
// that it is reported as the hard stop it is.
func hostKeyProblem(hosts []observe.Host) error {
	for _, h := range hosts {
		if strings.Contains(h.Error, "host key") {
			return fmt.Errorf("%s: %s", h.Name, h.Error)
		}
	}
	return nil
}

// runEnd is how a run ended, for Verdict.
func runEnd(res rollout.Result) RunEnd {
	return RunEnd{Outcome: res.Outcome, Summary: res.Summary, Locked: errors.Is(res.Err, rollout.ErrLocked)}
}

// owner is user@machine for the lock and the audit.
func owner() string {
	h, _ := os.Hostname()
	return rollout.Owner(h)
}

// journalDir is where the inventory's app keeps its runs.
func journalDir(inv *fleet.Inventory) (string, error) {
	return journal.Dir(inv.App)
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return strconv.Itoa(n) + " " + s + "s"
}
