package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/demo/sandbox"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/shell"
	"github.com/relctl/relctl/internal/tui"
)

type demoOptions struct {
	hosts      int
	plain      bool
	to         string
	failHealth string
	badRelease string
	keep       bool
	balancer   string
	rate       int
}

func newDemoCmd(ios *IO) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a local demo fleet with live traffic and upgrade it, to see relctl work",
		Long: `demo starts a fleet on this machine: in-process SSH hosts on 127.0.0.1, each
running the demo shop app (1.0.0), behind a load balancer (HAProxy when it is
installed, otherwise a built-in one speaking the same admin API), with steady
traffic through it. Then it upgrades the fleet with the same code apply uses.

In a terminal it opens the TUI, and exits with the code of the run started
there (3 after a rollback). With --plain (or without a terminal, or in one
the TUI cannot draw in: TERM=dumb, under 60x16) it runs the whole upgrade
to --to (2.0.0, through the required stop 1.1.0), prints every step and the
traffic figures, and exits 0 only if no request failed.
Everything it started is stopped when it exits, Ctrl-C included, and its
directory is removed.

With --keep the fleet outlives the upgrade (or the TUI): relctl prints the
inventory, every process it left running (pids) and commands to drive the
fleet from another terminal, and keeps it all running until Ctrl-C (or
SIGTERM). Then it stops every process and keeps the directory (fleet.yaml,
journal, host trees) for you to read.`,
		Example: `  relctl demo
  relctl demo --plain
  relctl demo --plain --fail-health 2.0.0     # watch the canary fail and the run roll back
  relctl demo --plain --to 1.1.0 --keep       # then drive the fleet from another terminal until Ctrl-C
  relctl demo --bad-release 2.0.0             # 2.0.0 answers 10% of requests with 500, health green:
                                              # canary analysis (mode auto) rolls it back by itself`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), ios, o) },
	}
	f := cmd.Flags()
	f.IntVar(&o.hosts, "hosts", 6, "number of demo hosts")
	f.BoolVar(&o.plain, "plain", false, "run the upgrade non-interactively with plain output (the default without a terminal)")
	f.StringVar(&o.to, "to", "2.0.0", "version to upgrade to (--plain)")
	f.StringVar(&o.failHealth, "fail-health", "", "make this release fail its health check, to watch an automatic rollback")
	f.BoolVar(&o.keep, "keep", false, "after the upgrade (or the TUI) keep the fleet running until Ctrl-C, for other relctl commands from another terminal; then stop it and keep its directory (fleet.yaml, journal, host trees)")
	f.StringVar(&o.badRelease, "bad-release", "", "make this release answer 10% of requests with 500 while its health stays green; the demo's canary analysis (mode auto) rolls it back")
	f.StringVar(&o.balancer, "balancer", "auto", "auto, haproxy or builtin")
	f.IntVar(&o.rate, "rate", 50, "demo traffic, requests per second")
	return cmd
}

func runDemo(ctx context.Context, ios *IO, o *demoOptions) error {
	if o.hosts < 1 || o.hosts > 200 {
		return withCode(ExitUsage, fmt.Errorf("--hosts %d: between 1 and 200", o.hosts))
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return err
	}
	fmt.Fprintf(ios.Err, "starting a demo fleet of %d hosts…\n", o.hosts)
	t0 := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	d, err := sandbox.Start(startCtx, sandbox.Options{
		Hosts: o.hosts, Keep: o.keep, Relctl: self, FailHealth: o.failHealth, BadRelease: o.badRelease,
		Balancer: o.balancer, Traffic: true, Rate: o.rate,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		err := d.Close()
		if err != nil {
			fmt.Fprintf(ios.Err, "demo: stopping: %v\n", err)
		}
		if o.keep {
			if err == nil {
				fmt.Fprintf(ios.Err, "demo: stopped every process it started; kept %s (fleet.yaml, journal, host trees): rm -rf %s when done\n", d.Dir, shell.Quote(d.Dir))
			} else {
				fmt.Fprintf(ios.Err, "demo: kept %s\n", d.Dir)
			}
		}
	}()
	fmt.Fprintf(ios.Err, "demo fleet up in %s: %d hosts on 1.0.0 behind %s at %s, traffic at %d req/s\n  inventory: %s\n",
		time.Since(t0).Round(time.Millisecond), len(d.Hosts), d.BalancerKind, d.Frontend, o.rate, d.FleetFile)
	// The demo's runs are journaled inside the demo, not in the user's state.
	if err := os.Setenv("XDG_STATE_HOME", filepath.Join(d.Dir, "state")); err != nil {
		return err
	}
	inv, err := fleet.Load(d.FleetFile)
	if err != nil {
		return err
	}
	if o.failHealth != "" {
		// A release that never gets healthy: give up on it sooner than a
		// real fleet would, so the newcomer sees the rollback quickly.
		inv.Health.Timeout = 5 * time.Second
		fmt.Fprintf(ios.Err, "%s will fail its health check; relctl gives a host %s to become healthy\n", o.failHealth, inv.Health.Timeout)
	}
	if o.badRelease != "" {
		a := inv.Analysis
		fmt.Fprintf(ios.Err, "%s will answer %g%% of its requests with 500 while its health check stays green; canary analysis (mode %s) watches each canary for %s\n",
			o.badRelease, sandbox.DefaultBadShare*100, a.Mode, a.Duration)
	}
	// wantTUI: a terminal the TUI cannot draw in (TERM=dumb, too small)
	// gets the plain demo, with a note saying why.
	if !o.plain && wantTUI(ios, outFlags{}) {
		err = runDemoTUI(ctx, ios, inv, d)
	} else {
		err = runDemoPlain(ctx, ios, inv, d, o)
	}
	if o.keep {
		holdDemo(ctx, ios, d)
	}
	return err
}

func runDemoPlain(ctx context.Context, ios *IO, inv *fleet.Inventory, d *sandbox.Demo, o *demoOptions) error {
	runErr := runApply(ctx, ios, inv, &ApplyOptions{To: o.to, Out: outFlags{yes: true, plain: true}})
	// Let in-flight requests land before the figures are read.
	time.Sleep(300 * time.Millisecond)
	st := d.Traffic()
	failed := st.Non2xx + st.Errors
	if o.badRelease != "" {
		// The bad release's own 500s are the point of the demo: every
		// other failure still fails it.
		failed -= st.ByStatus[500]
	}
	fmt.Fprintf(ios.Out, "traffic:\t%d requests, %d failed (%d non-2xx, %d errors), p50 %s, p99 %s\n",
		st.Requests, failed, st.Non2xx, st.Errors, st.P50.Round(time.Microsecond), st.P99.Round(time.Microsecond))
	for _, e := range st.FirstErrors {
		fmt.Fprintf(ios.Out, "traffic error:\t%s\n", e)
	}
	if failed > 0 {
		return withCode(ExitError, errors.Join(runErr, fmt.Errorf("demo: %d requests failed during the run", failed)))
	}
	if o.badRelease != "" && codeOf(runErr) == ExitRolledBack {
		fmt.Fprintf(ios.Out, "demo:\tcanary analysis caught %s and the run rolled back by itself; the only failed requests were the %d 500s the bad release served\n", o.badRelease, st.ByStatus[500])
		return nil
	}
	if o.failHealth != "" {
		// The run is expected to roll back; that is the demo's success.
		if codeOf(runErr) == ExitRolledBack {
			fmt.Fprintf(ios.Out, "demo:\t%s failed its health check on the canary and the run rolled back, with zero failed requests\n", o.failHealth)
			return nil
		}
	}
	return runErr
}

// runDemoTUI opens the TUI on the demo fleet, with its live traffic panel.
func runDemoTUI(ctx context.Context, ios *IO, inv *fleet.Inventory, d *sandbox.Demo) error {
	return runTUI(ctx, ios, inv, connFlags{}, tui.Options{}, demoTraffic{d})
}

// demoTraffic is the demo's load generator as the TUI's traffic panel
// reads it.
type demoTraffic struct{ d *sandbox.Demo }

var _ tui.TrafficSource = demoTraffic{}

func (t demoTraffic) Traffic() (tui.TrafficStats, bool) {
	s := t.d.Traffic()
	if s == nil {
		return tui.TrafficStats{}, false
	}
	return tui.TrafficStats{Requests: s.Requests, Failed: s.Non2xx + s.Errors, P50: s.P50, P99: s.P99}, true
}

// holdDemo is --keep: it says what runs and how to reach it, and keeps the
// demo running until ctx ends (Ctrl-C or SIGTERM); runDemo's Close then
// stops it all and keeps the directory.
func holdDemo(ctx context.Context, ios *IO, d *sandbox.Demo) {
	if ctx.Err() != nil {
		return // interrupted during the run: stop now
	}
	// No run is in flight from here: an interrupt stops the demo fleet,
	// and says so.
	setPhase(ctx, demoKeepWords)
	me := os.Getpid()
	q := shell.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "\ndemo: --keep: the demo fleet keeps running until Ctrl-C here (or kill -TERM %d). Running now:\n", me)
	for _, h := range d.Hosts {
		app := "no app serving"
		if pid, ok := demoapp.ServingPid(h.Path); ok {
			app = fmt.Sprintf("app pid %d on %s", pid, h.AppAddr)
		}
		fmt.Fprintf(&b, "  %s: ssh %s (inside this relctl, pid %d), %s\n", h.Name, h.SSHAddr, me, app)
	}
	lb := fmt.Sprintf("inside this relctl, pid %d", me)
	if pid := d.BalancerPID(); pid > 0 {
		lb = fmt.Sprintf("pid %d", pid)
	}
	fmt.Fprintf(&b, "  balancer: %s (%s) at %s, admin %s\n", d.BalancerKind, lb, d.Frontend, d.AdminAddr)
	fmt.Fprintf(&b, "  directory: %s\n", d.Dir)
	fmt.Fprintf(&b, "From another terminal:\n")
	fmt.Fprintf(&b, "  export XDG_STATE_HOME=%s   # the demo's journal, for status, resume and history\n", q(filepath.Join(d.Dir, "state")))
	fmt.Fprintf(&b, "  relctl -f %s status\n", q(d.FleetFile))
	fmt.Fprintf(&b, "  relctl -f %s history\n", q(d.FleetFile))
	fmt.Fprintf(&b, "  relctl -f %s            # the TUI\n", q(d.FleetFile))
	fmt.Fprintf(&b, "  curl %s/version\n", d.Frontend)
	fmt.Fprintf(&b, "Ctrl-C stops every process above; the directory stays.\n")
	fmt.Fprint(ios.Err, b.String())
	<-ctx.Done()
	fmt.Fprintln(ios.Err, "demo: stopping every process of the demo fleet; its directory stays")
}
