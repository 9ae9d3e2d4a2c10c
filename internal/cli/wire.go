package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/term"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/rollout"
)

// connFlags are the connection flags of every command that talks to hosts,
// and what the operator says about the runs it starts (note.go): they go
// with the operations' environment wherever it is built, the TUI's too.
type connFlags struct {
	acceptNew      bool
	reason, ticket string
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
	return ops.Balancer(inv, conn)
}

// newEnv is the operations' view of this invocation: the inventory, its
// SSH side and this machine's journal directory.
func newEnv(ios *IO, inv *fleet.Inventory, cf connFlags) (*ops.Env, error) {
	dir, err := journalDir(inv)
	if err != nil {
		return nil, err
	}
	if err := ops.CheckNote(cf.reason, cf.ticket); err != nil {
		return nil, err
	}
	return &ops.Env{Inv: inv, Conn: connect(ios, inv, cf), JournalDir: dir, Owner: owner(), Now: timeNow, Reason: cf.reason, Ticket: cf.ticket}, nil
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
