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
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/tui"
	"github.com/relctl/relctl/internal/version"
)

// tuiBackend is the TUI's view of the world: the same observe, plan and
// engine code the line commands use.
type tuiBackend struct {
	ctx  context.Context
	ios  *IO
	inv  *fleet.Inventory
	conn *rollout.SSH

	mu  sync.Mutex
	obs plan.Observed
	bal lb.Balancer
}

var _ tui.Backend = (*tuiBackend)(nil)

func (b *tuiBackend) Observe(ctx context.Context) ([]observe.Host, error) {
	hosts, obs := observe.Fleet(ctx, b.inv, b.conn, observe.Options{Health: true})
	b.mu.Lock()
	b.obs = obs
	b.mu.Unlock()
	return hosts, hostKeyProblem(hosts)
}

func (b *tuiBackend) observed() plan.Observed {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.obs.Hosts == nil {
		_, b.obs = observe.Fleet(b.ctx, b.inv, b.conn, observe.Options{})
	}
	return b.obs
}

func (b *tuiBackend) Lock(ctx context.Context) (*rollout.LockInfo, error) {
	return lockFor(b.inv, b.conn).Read(ctx)
}

func (b *tuiBackend) balancer() (lb.Balancer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bal == nil {
		bal, err := balancer(b.inv, b.conn)
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
	set := map[string]bool{}
	for v := range b.inv.Releases {
		set[v] = true
	}
	if pat, err := artifactPath(b.inv, "*"); err == nil {
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

func (b *tuiBackend) PlanUpgrade(to string) (*plan.Plan, error) {
	return plan.Build(b.inv, b.observed(), plan.Options{To: to, CanVerify: canVerify(b.inv)})
}

func (b *tuiBackend) lastRun() *journal.Run {
	dir, err := journalDir(b.inv)
	if err != nil {
		return nil
	}
	r, _ := journal.Latest(dir)
	return r
}

func (b *tuiBackend) PlanDowngrade(to, reason string) (*plan.Plan, error) {
	var last *plan.LastRun
	if r := b.lastRun(); r != nil && r.Original != nil {
		last = &plan.LastRun{From: r.Original.From, To: r.Original.To, PostMigrated: r.PostMigrated}
	}
	return plan.Downgrade(b.inv, b.observed(), plan.DowngradeOptions{To: to, Reason: reason, Last: last, CanVerify: canVerify(b.inv)})
}

func (b *tuiBackend) PlanRollback() (*plan.Plan, error) {
	r := b.lastRun()
	if r == nil {
		return nil, errors.New("no run to roll back")
	}
	if r.Plan.Kind != plan.KindUpgrade {
		return nil, fmt.Errorf("the last run was a %s, not an upgrade", r.Plan.Kind)
	}
	return plan.Rollback(b.inv, r.Plan, r.Progress)
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
func (h *runHandle) Answer(d rollout.Decision) { h.gate.Answer(d) }

func (b *tuiBackend) start(x execution) (tui.Handle, <-chan event.Event, error) {
	gate := tui.NewGate()
	ch := event.NewChan(4096)
	x.forced = forceOf(b.ctx)
	pr, err := prepare(x, gate, ch)
	if err != nil {
		return nil, nil, err
	}
	go func() {
		defer ch.Close()
		defer pr.journal.Close()
		pr.eng.Run(b.ctx)
	}()
	return &runHandle{eng: pr.eng, gate: gate}, ch.C, nil
}

func (b *tuiBackend) Start(p *plan.Plan) (tui.Handle, <-chan event.Event, error) {
	if err := refuseUnfinished(b.inv); err != nil && p.Kind != plan.KindRollback {
		return nil, nil, err
	}
	return b.start(execution{ios: b.ios, inv: b.inv, conn: b.conn, plan: p, force: p.Kind == plan.KindDowngrade})
}

func (b *tuiBackend) Resume(rollback bool) (tui.Handle, <-chan event.Event, error) {
	dir, err := journalDir(b.inv)
	if err != nil {
		return nil, nil, err
	}
	run, _ := journal.Unfinished(dir)
	if run == nil {
		return nil, nil, errors.New("no unfinished run")
	}
	obs := b.observed()
	if err := agreeJournal(run, obs); err != nil {
		return nil, nil, err
	}
	x := execution{ios: b.ios, inv: b.inv, conn: b.conn, plan: run.Plan, resume: run}
	if rollback && run.Plan.Kind != plan.KindRollback {
		rb, err := plan.Rollback(b.inv, run.Plan, run.Progress)
		if err != nil {
			return nil, nil, err
		}
		rb.Basis = plan.Basis{Fingerprint: obs.Fingerprint(), Hosts: obs.Hosts}
		rb, _ = plan.DropSettled(rb, obs)
		if err := finishAbandoned(run); err != nil {
			return nil, nil, err
		}
		x.plan, x.resume = rb, nil
	}
	return b.start(x)
}

// trafficBackend is the TUI backend of a fleet with live traffic through
// its balancer (the demo's): it has the tui.TrafficSource capability.
type trafficBackend struct {
	*tuiBackend
	tui.TrafficSource
}

// runTUI opens the TUI on inv and maps how its last run ended to an exit
// code. traffic, when not nil, feeds the live traffic panel (the demo).
func runTUI(ctx context.Context, ios *IO, inv *fleet.Inventory, cf connFlags, o tui.Options, traffic tui.TrafficSource) error {
	conn := connect(ios, inv, cf)
	defer conn.Pool.Close()
	tb := &tuiBackend{ctx: ctx, ios: ios, inv: inv, conn: conn}
	var b tui.Backend = tb
	if traffic != nil {
		b = trafficBackend{tb, traffic}
	}
	o.App, o.FleetFile, o.Demo = inv.App, inv.File, traffic != nil
	if dir, err := journalDir(inv); err == nil && o.Unfinished == nil {
		o.Unfinished, _ = journal.Unfinished(dir)
	}
	outcome, sum, err := tui.Run(ctx, b, o, ios.In, ios.Out)
	if err != nil {
		return err
	}
	if sum != nil {
		return report(ios, false, rollout.Result{Outcome: outcome, Summary: *sum})
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
		if !ios.interactive() || !isTerminal(ios.Out) {
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
