// Package ops is relctl's application layer: the operator's operations
// (plan an upgrade, load a saved plan, plan a rollback or a downgrade or a
// repair, resume an unfinished run, start a plan), each observing the fleet,
// reading the journal and the lock, checking, and returning what the CLI
// and the TUI both need. The front ends only ask, confirm and show.
//
// Every start goes through Start, and Start through plan.CheckBasis on a
// fresh observation: no front end starts a plan from a cached view of the
// fleet. ops never formats output beyond error messages, and never asks the
// operator anything.
package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/hooks"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/version"
	"github.com/relctl/relctl/internal/view"
)

// Env is what every operation works on: the inventory, the SSH side of the
// fleet and this machine's journal directory.
type Env struct {
	Inv        *fleet.Inventory
	Conn       *rollout.SSH
	JournalDir string
	Owner      string // user@machine, for the lock and the audit
	// Reason and Ticket are what the operator says about the runs this
	// invocation prepares (--reason, --ticket; see CheckNote): recorded in
	// their plans (note.go).
	Reason, Ticket string
	// Hooks runs the inventory's hooks (nil: the inventory's own, run in
	// its directory; hooks.go).
	Hooks *hooks.Runner

	// Seams for tests; nil means the real thing over Conn.
	ObserveFleet func(ctx context.Context, health bool) []observe.Host
	ReadLock     func(ctx context.Context) (*rollout.LockInfo, error)
	// RemoteOutput runs a read-only script on a host (nil: Conn.Output).
	RemoteOutput func(ctx context.Context, host, script string) (string, error)
	Now          func() time.Time
}

// Error is an operation's refusal or failure with the exit code it means
// (README's table, view's constants).
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(code int, err error) error {
	if err == nil {
		return nil
	}
	var oe *Error
	if errors.As(err, &oe) {
		return err
	}
	return &Error{Code: code, Err: err}
}

// Code is the exit code err means: an *Error's own, 4 for any lock
// refusal (CLI or TUI path alike), 1 otherwise.
func Code(err error) int {
	var oe *Error
	switch {
	case err == nil:
		return view.ExitOK
	case errors.Is(err, rollout.ErrLocked):
		return view.ExitLocked
	case errors.As(err, &oe):
		return oe.Code
	}
	return view.ExitError
}

// PlanErrCode maps planning errors: bad requests are usage errors (2).
func PlanErrCode(err error) int {
	switch {
	case errors.Is(err, plan.ErrNoPath), errors.Is(err, plan.ErrUpfromMismatch), errors.Is(err, plan.ErrIsDowngrade),
		errors.Is(err, plan.ErrDowngradeRefused), errors.Is(err, plan.ErrMixedFleet), errors.Is(err, plan.ErrPastPointOfNoReturn),
		errors.Is(err, ErrImmutable), errors.Is(err, version.ErrInvalid), errors.Is(err, fleet.ErrSelection), errors.Is(err, plan.ErrSelectionPath):
		return view.ExitUsage
	}
	return view.ExitError
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Lock is the fleet's lock: on the migrations host, under its path.
func (e *Env) Lock() *rollout.Lock {
	inv := e.Inv
	h := inv.Hosts[0]
	for _, x := range inv.Hosts {
		if x.Name == inv.Migrations.Host {
			h = x
		}
	}
	return &rollout.Lock{Hosts: rollout.WithDeadlines(e.Conn, inv.Timeouts.Lock, 0), Host: h.Name, Path: inv.HostPath(h), Lease: time.Minute}
}

// ReadLockInfo returns the fleet's lock holder (nil: free), or why it
// cannot be read.
func (e *Env) ReadLockInfo(ctx context.Context) (*rollout.LockInfo, error) {
	if e.ReadLock != nil {
		return e.ReadLock(ctx)
	}
	return e.Lock().Read(ctx)
}

func (e *Env) output(ctx context.Context, host, script string) (string, error) {
	if e.RemoteOutput != nil {
		return e.RemoteOutput(ctx, host, script)
	}
	return e.Conn.Output(ctx, host, script)
}

// ObserveHosts observes every host (health included when asked).
func (e *Env) ObserveHosts(ctx context.Context, health bool) []observe.Host {
	if e.ObserveFleet != nil {
		return e.ObserveFleet(ctx, health)
	}
	hosts, _ := observe.Fleet(ctx, e.Inv, e.Conn, observe.Options{Health: health})
	return hosts
}

// Observe observes the fleet before a change, stopping at once on a
// host-key problem: a changed key is a hard stop, whatever else is seen.
func (e *Env) Observe(ctx context.Context) (plan.Observed, error) {
	hosts := e.ObserveHosts(ctx, false)
	obs := Observation(hosts)
	if err := HostKeyProblem(hosts); err != nil {
		return obs, fail(view.ExitError, err)
	}
	return obs, nil
}

// Observation is the planner's view of observed hosts.
func Observation(hosts []observe.Host) plan.Observed {
	o := plan.Observed{Hosts: make([]plan.HostState, len(hosts))}
	for i, h := range hosts {
		o.Hosts[i] = h.HostState
	}
	return o
}

// HostKeyProblem returns the first host-key error among observed hosts, so
// that it is reported as the hard stop it is.
func HostKeyProblem(hosts []observe.Host) error {
	for _, h := range hosts {
		if strings.Contains(h.Error, "host key") || strings.Contains(h.Error, "known_hosts") {
			return fmt.Errorf("%s: %s", h.Name, h.Error)
		}
	}
	return nil
}

// Balancer builds the inventory's balancer driver over conn.
func Balancer(inv *fleet.Inventory, conn lb.Connector) (lb.Balancer, error) {
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
		return nil, fail(view.ExitUsage, fmt.Errorf("%s: balancer: %w", inv.File, err))
	}
	return bal, nil
}

// CanVerify reports whether the inventory's balancer can read a server's
// state back, for the planner. Building a driver does no I/O.
func CanVerify(inv *fleet.Inventory) bool {
	bal, err := Balancer(inv, lb.LocalConnector{})
	return err == nil && bal.CanVerify()
}

// ArtifactPath resolves the artifact of version v relative to the inventory.
func ArtifactPath(inv *fleet.Inventory, v string) (string, error) {
	p, err := inv.ArtifactPath(v)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(inv.File), p)
	}
	return p, nil
}

// SHA256File is the hex sha256 of a file's content.
func SHA256File(path string) (string, error) {
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

// artifacts finds and hashes the artifact of every version p stages.
func artifacts(inv *fleet.Inventory, p *plan.Plan) (map[string]rollout.Artifact, error) {
	out := map[string]rollout.Artifact{}
	for _, s := range p.Steps {
		for _, v := range s.Versions {
			if _, ok := out[v]; ok {
				continue
			}
			path, err := ArtifactPath(inv, v)
			if err != nil {
				return nil, fail(view.ExitUsage, err)
			}
			sum, err := SHA256File(path)
			if err != nil {
				return nil, fail(view.ExitUsage, fmt.Errorf("artifact for %s: %w (artifact.source in %s)", v, err, inv.File))
			}
			out[v] = rollout.Artifact{Path: path, SHA256: sum}
		}
	}
	return out, nil
}
