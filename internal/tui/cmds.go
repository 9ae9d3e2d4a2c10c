package tui

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// Messages. Commands never touch the model: they call the outside world and
// answer with one of these.
type (
	// fleetMsg is a fresh look at the fleet.
	fleetMsg struct {
		hosts   []observe.Host
		lock    *rollout.LockInfo
		lockErr error // the lock could not be read: it is unknown, not free
		servers []lb.ServerState
		targets []string
		err     error
		gen     int // which refresh this answers
	}
	// planMsg is a plan built on request (or why it could not be).
	planMsg struct {
		plan *plan.Plan
		err  error
	}
	// startedMsg says a run began (or could not).
	startedMsg struct {
		handle Handle
		events <-chan event.Event
		err    error
	}
	// eventsMsg carries the events that were waiting, in order.
	eventsMsg []event.Event
	// eventsClosedMsg: the run's channel closed.
	eventsClosedMsg struct{}
	// tickMsg drives spinners, elapsed times and the traffic panel.
	tickMsg time.Time
	// trafficMsg is a snapshot of the demo load.
	trafficMsg struct{ stats *TrafficStats }
	// calledMsg says a Handle call was made.
	calledMsg struct{ what string }
	// interruptMsg: the context ended (SIGINT/SIGTERM in the CLI).
	interruptMsg struct{}
	// lockMsg is a fresh look at the lock (the plan preview's).
	lockMsg struct {
		lock *rollout.LockInfo
		err  error
		gen  int
	}
)

const (
	tickEvery      = 150 * time.Millisecond
	trafficEvery   = 500 * time.Millisecond
	maxEventsBatch = 512
)

func refreshCmd(ctx context.Context, b Backend, gen int) tea.Cmd {
	return func() tea.Msg {
		m := fleetMsg{gen: gen}
		var errs []error
		hosts, err := b.Observe(ctx)
		m.hosts = hosts
		errs = append(errs, err)
		m.lock, m.lockErr = b.Lock(ctx)
		errs = append(errs, m.lockErr)
		m.servers, err = b.Balancer(ctx)
		errs = append(errs, err)
		m.targets = b.Targets()
		m.err = errors.Join(errs...)
		return m
	}
}

// lockCmd reads the lock again, for the plan preview.
func lockCmd(ctx context.Context, b Backend, gen int) tea.Cmd {
	return func() tea.Msg {
		li, err := b.Lock(ctx)
		return lockMsg{lock: li, err: err, gen: gen}
	}
}

func planUpgradeCmd(b Backend, to string) tea.Cmd {
	return func() tea.Msg {
		p, err := b.PlanUpgrade(to)
		return planMsg{plan: p, err: err}
	}
}

func planDowngradeCmd(b Backend, to, reason string) tea.Cmd {
	return func() tea.Msg {
		p, err := b.PlanDowngrade(to, reason)
		return planMsg{plan: p, err: err}
	}
}

// startCmd starts p, unless a fresh look at the lock finds it held by a
// live run: a second operator is refused before anything starts (the
// engine's lock step still guards the moment between the look and the
// start).
func startCmd(ctx context.Context, b Backend, p *plan.Plan) tea.Cmd {
	return func() tea.Msg {
		if li, err := b.Lock(ctx); err == nil && li != nil && !li.Expired() {
			return startedMsg{err: fmt.Errorf("the fleet is locked by %s (run %s): a second operator cannot start a run; wait for that run to end (relctl status shows it)", li.Owner, li.RunID)}
		}
		h, ch, err := b.Start(p)
		return startedMsg{handle: h, events: ch, err: err}
	}
}

func resumeCmd(b Backend, rollback bool) tea.Cmd {
	return func() tea.Msg {
		h, ch, err := b.Resume(rollback)
		return startedMsg{handle: h, events: ch, err: err}
	}
}

// waitForEvent waits for the next event and takes the ones already queued
// behind it, so a busy run costs one Update per batch, not per line. It is
// re-armed after each batch.
func waitForEvent(ch <-chan event.Event) tea.Cmd {
	return later(func() tea.Msg {
		e, ok := <-ch
		if !ok {
			return eventsClosedMsg{}
		}
		batch := eventsMsg{e}
		for len(batch) < maxEventsBatch {
			select {
			case e, ok := <-ch:
				if !ok {
					return batch // the next wait reports the close
				}
				batch = append(batch, e)
			default:
				return batch
			}
		}
		return batch
	})
}

func tickCmd() tea.Cmd {
	return later(tea.Tick(tickEvery, func(t time.Time) tea.Msg { return tickMsg(t) }))
}

// trafficCmd reads the traffic, when the backend has a TrafficSource.
func trafficCmd(b Backend) tea.Cmd {
	src, ok := b.(TrafficSource)
	if !ok {
		return nil
	}
	return func() tea.Msg {
		s, ok := src.Traffic()
		if !ok {
			return trafficMsg{}
		}
		return trafficMsg{stats: &s}
	}
}

// call runs a Handle method from a command.
func call(what string, f func()) tea.Cmd {
	return func() tea.Msg {
		f()
		return calledMsg{what: what}
	}
}

// laterMsg carries a command that waits (for the next event, a tick, a
// cursor blink): Update hands it back to the program to run. Marking the
// waits this way lets a test run every other command to completion,
// however slow the machine, and leave the waits alone.
type laterMsg struct{ cmd tea.Cmd }

// later marks cmd as a wait (see laterMsg); nil stays nil.
func later(cmd tea.Cmd) tea.Cmd {
	if cmd == nil {
		return nil
	}
	return func() tea.Msg { return laterMsg{cmd} }
}

// downPick is the downgrade picker's list: the versions the planner
// accepts as an emergency downgrade from what the fleet runs, the one it
// runs, and why each other version is not offered.
type downPick struct {
	probed  bool
	ok      []string
	running string
	refused map[string]string
	err     string
}

// downTargetsMsg is the planner's answer for each version.
type downTargetsMsg downPick

// downTargetsCmd asks the planner, version by version, which emergency
// downgrades it accepts: only declared downgrade_to paths (and the last
// run's upfrom before its post-migrate) plan; the version the fleet runs
// plans as "nothing to do" and is not offered. The reason given here is
// never used: the operator writes the real one after picking.
func downTargetsCmd(b Backend) tea.Cmd {
	return func() tea.Msg {
		d := downTargetsMsg{refused: map[string]string{}}
		for _, v := range b.Targets() {
			p, err := b.PlanDowngrade(v, "checking which versions a downgrade may go to")
			switch {
			case err != nil:
				d.refused[v] = err.Error()
			case p.Empty():
				d.running = v
			default:
				d.ok = append(d.ok, v)
			}
		}
		return d
	}
}

// gateLBMsg is the balancer's view when a canary gate opened.
type gateLBMsg struct {
	step    string
	servers map[string][]lb.ServerState
	err     error
}

// gateBalancerCmd asks the balancer how the canary is doing, for the gate.
func gateBalancerCmd(ctx context.Context, b Backend, step string) tea.Cmd {
	return func() tea.Msg {
		states, err := b.Balancer(ctx)
		msg := gateLBMsg{step: step, servers: map[string][]lb.ServerState{}, err: err}
		for _, s := range states {
			msg.servers[s.Server] = append(msg.servers[s.Server], s)
		}
		return msg
	}
}
