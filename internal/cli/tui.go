package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/tui"
	"github.com/relctl/relctl/internal/version"
)

// tuiBackend is the TUI's view of the world: a thin adapter over the same
// operations (package ops) the line commands call.
type tuiBackend struct {
	ctx context.Context
	ios *IO
	env *ops.Env

	mu       sync.Mutex
	bal      lb.Balancer
	prepared map[*plan.Plan]*ops.Prepared // what each plan the TUI holds was prepared with
	refused  error                        // the last start refused by the lock (or a before_run hook), until a run starts
	result   *rollout.Result              // how the last run ended
	// runDone is closed when the last run's Wait returned (its end hooks
	// included); events is that run's channel.
	runDone chan struct{}
	events  *event.Chan
}

var _ tui.Backend = (*tuiBackend)(nil)

func (b *tuiBackend) Observe(ctx context.Context) ([]observe.Host, error) {
	hosts := b.env.ObserveHosts(ctx, true)
	return hosts, ops.HostKeyProblem(hosts)
}

// Lock returns the lock's holder; an error says why it cannot be read
// (the TUI shows "lock: unknown (<why>)", never "free").
func (b *tuiBackend) Lock(ctx context.Context) (*rollout.LockInfo, error) {
	return b.env.ReadLockInfo(ctx)
}

func (b *tuiBackend) balancer() (lb.Balancer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bal == nil {
		bal, err := balancer(b.env.Inv, b.env.Conn)
		if err != nil {
			return nil, err
		}
		b.bal = bal
	}
	return b.bal, nil
}

func (b *tuiBackend) Balancer(ctx context.Context) ([]lb.ServerState, error) {
	bal, err := b.balancer()
	if err != nil {
		return nil, err
	}
	return bal.States(ctx)
}

// Targets are the releases table's versions and those with an artifact on
// this machine, newest first.
func (b *tuiBackend) Targets() []string {
	inv := b.env.Inv
	set := map[string]bool{}
	for v := range inv.Releases {
		set[v] = true
	}
	if pat, err := artifactPath(inv, "*"); err == nil {
		files, _ := filepath.Glob(pat)
		pre, suf, _ := strings.Cut(pat, "*")
		for _, f := range files {
			v := strings.TrimSuffix(strings.TrimPrefix(f, pre), suf)
			if version.Valid(v) == nil {
				set[v] = true
			}
		}
	}
	var out []string
	for v := range set {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return version.Less(out[j], out[i]) })
	return out
}

// keep remembers how p was prepared, for Start.
func (b *tuiBackend) keep(pr *ops.Prepared, err error) (*plan.Plan, error) {
	if err != nil {
		return nil, err
	}
	if pr.Plan == nil {
		return nil, errors.New(pr.Nothing)
	}
	b.mu.Lock()
	if b.prepared == nil {
		b.prepared = map[*plan.Plan]*ops.Prepared{}
	}
	b.prepared[pr.Plan] = pr
	b.mu.Unlock()
	return pr.Plan, nil
}

func (b *tuiBackend) PlanUpgrade(to string) (*plan.Plan, error) {
	return b.keep(b.env.PlanUpgrade(b.ctx, ops.UpgradeOptions{To: to}))
}

func (b *tuiBackend) PlanDowngrade(to, reason string) (*plan.Plan, error) {
	return b.keep(b.env.PlanDowngrade(b.ctx, to, reason))
}

func (b *tuiBackend) PlanRollback() (*plan.Plan, error) {
	return b.keep(b.env.PlanRollback(b.ctx))
}

// runHandle controls one engine run for the TUI.
type runHandle struct {
	eng  *rollout.Engine
	gate *tui.Gate
}

func (h *runHandle) Pause()                    { h.eng.Pause() }
func (h *runHandle) Resume()                   { h.eng.Resume() }
func (h *runHandle) Abort(why string)          { h.eng.Abort(why) }
func (h *runHandle) RequestRollback()          { h.eng.RequestRollback() }
func (h *runHandle) Force()                    { h.eng.Force() }
func (h *runHandle) Answer(d rollout.Decision) { h.gate.Answer(d) }

// start runs pr through ops.Start: a fresh observation and the stale-plan
// guard, the lock checked before any journal is written.
func (b *tuiBackend) start(pr *ops.Prepared) (tui.Handle, <-chan event.Event, error) {
	gate := tui.NewGate()
	ch := event.NewChan(4096)
	run, err := b.env.Start(b.ctx, pr, ops.StartOptions{Gate: gate, Sinks: []event.Sink{ch}, Force: forceOf(b.ctx)})
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if errors.Is(err, rollout.ErrLocked) || errors.Is(err, ops.ErrHookRefused) {
			b.refused = err
		}
		return nil, nil, err
	}
	b.refused = nil
	done := make(chan struct{})
	b.runDone, b.events = done, ch
	go func() {
		defer close(done)
		defer ch.Close()
		res := run.Wait(b.ctx)
		b.mu.Lock()
		b.result = &res
		b.mu.Unlock()
	}()
	return &runHandle{eng: run.Engine, gate: gate}, ch.C, nil
}

func (b *tuiBackend) Start(p *plan.Plan) (tui.Handle, <-chan event.Event, error) {
	b.mu.Lock()
	pr := b.prepared[p]
	b.mu.Unlock()
	if pr == nil {
		// A plan the TUI was handed (apply opened it): fresh start.
		pr = &ops.Prepared{Plan: p, Force: p.Kind == plan.KindDowngrade}
	}
	return b.start(pr)
}

func (b *tuiBackend) Resume(rollback bool) (tui.Handle, <-chan event.Event, error) {
	pr, err := b.env.PlanResume(b.ctx, rollback)
	if err != nil {
		if errors.Is(err, rollout.ErrLocked) {
			b.mu.Lock()
			b.refused = err
			b.mu.Unlock()
		}
		return nil, nil, err
	}
	if pr.Settle != nil {
		if err := b.env.Settle(b.ctx, pr); err != nil {
			return nil, nil, err
		}
	}
	if pr.Nothing != "" {
		return nil, nil, &tui.Nothing{Msg: pr.Nothing}
	}
	return b.start(pr)
}

// trafficBackend is the TUI backend of a fleet with live traffic through
// its balancer (the demo's): it has the tui.TrafficSource capability.
type trafficBackend struct {
	*tuiBackend
	tui.TrafficSource
}

// runTUI opens the TUI on inv and maps how its last run ended to an exit
// code. traffic, when not nil, feeds the live traffic panel (the demo).
//
// prepared, when given, is how o.Plan was prepared (apply's --force): the
// TUI's start of that plan goes on with it.
func runTUI(ctx context.Context, ios *IO, inv *fleet.Inventory, cf connFlags, o tui.Options, traffic tui.TrafficSource, prepared ...*ops.Prepared) error {
	env, err := newEnv(ios, inv, cf)
	if err != nil {
		return err
	}
	defer env.Conn.Pool.Close()
	tb := &tuiBackend{ctx: ctx, ios: ios, env: env}
	for _, pr := range prepared {
		_, _ = tb.keep(pr, nil)
	}
	var b tui.Backend = tb
	if traffic != nil {
		b = trafficBackend{tb, traffic}
	}
	o.App, o.FleetFile, o.Demo = inv.App, inv.File, traffic != nil
	if o.Unfinished == nil {
		u, err := journal.Unfinished(env.JournalDir)
		if err != nil {
			return withCode(ExitError, err)
		}
		o.Unfinished = u
	}
	outcome, sum, err := tui.Run(ctx, b, o, ios.In, ios.Out)
	if err != nil {
		return err
	}
	return tb.exit(outcome, sum)
}

// exit reports how the TUI's last run ended, as the CLI does after a run
// (the summary, every host not in service named), and returns the error
// carrying the exit code the CLI would give (view.Verdict; 4 for a start
// the lock refused, 8 for one a before_run hook refused).
func (tb *tuiBackend) exit(outcome event.Outcome, sum *event.Summary) error {
	ios := tb.ios
	tb.mu.Lock()
	done, events := tb.runDone, tb.events
	tb.mu.Unlock()
	if sum != nil && done != nil {
		// The run finished: its end hooks (bounded by their timeouts) may
		// still run. Wait for them, so that the summary reports them and
		// relctl does not exit under them; nobody reads the events now.
		go func() {
			for range events.C {
			}
		}()
		<-done
	}
	tb.mu.Lock()
	res, refused := tb.result, tb.refused
	tb.mu.Unlock()
	switch {
	case sum != nil && res != nil:
		return report(ios, false, *res)
	case sum != nil:
		return report(ios, false, rollout.Result{Outcome: outcome, Summary: *sum})
	case refused != nil:
		// The operator tried to start and the lock (or a before_run
		// hook) refused it: exit 4 (8), as on the command line.
		return refused
	}
	return nil
}

// wantTUI reports whether this invocation should open the TUI. A terminal
// the TUI cannot draw in (TERM=dumb, smaller than tui.MinWidth×MinHeight)
// gets plain output, with a note saying why.
func wantTUI(ios *IO, of outFlags) bool {
	if of.plain || of.json || of.yes || !ios.interactive() || !isTerminal(ios.Out) {
		return false
	}
	w, h := 0, 0
	if f, ok := ios.Out.(interface{ Fd() uintptr }); ok {
		w, h, _ = term.GetSize(int(f.Fd()))
	}
	if ok, note := tui.Usable(os.Getenv("TERM"), w, h); !ok {
		fmt.Fprintln(ios.Err, note)
		return false
	}
	return true
}

// rootRun opens the TUI when relctl runs with no subcommand in a terminal.
func rootRun(ios *IO, g *globals, cf *connFlags) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if !wantTUI(ios, outFlags{}) {
			// No terminal, or one the TUI cannot draw in (wantTUI said
			// why): the commands, which all work without the TUI.
			return cmd.Help()
		}
		inv, err := loadFleet(g)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprint(ios.Err, tui.NoInventory(g.fleet))
		}
		if err != nil {
			return err
		}
		return runTUI(cmd.Context(), ios, inv, *cf, tui.Options{}, nil)
	}
}
