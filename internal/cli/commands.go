package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/shell"
	"github.com/relctl/relctl/internal/tui"
)

func newStatusCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every host's version, health, balancer state, and the lock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			conn := connect(ios, inv, cf)
			defer conn.Pool.Close()
			ctx := cmd.Context()
			var (
				hosts  []observe.Host
				states []lb.ServerState
				lbErr  error
				lock   *rollout.LockInfo
				lkErr  error
				wg     sync.WaitGroup
			)
			wg.Add(2)
			go func() { defer wg.Done(); hosts, _ = observe.Fleet(ctx, inv, conn, observe.Options{Health: true}) }()
			go func() {
				defer wg.Done()
				if bal, err := balancer(inv, conn); err != nil {
					lbErr = err
				} else {
					sctx, cancel := context.WithTimeout(ctx, inv.Timeouts.Observe)
					defer cancel()
					states, lbErr = bal.States(sctx)
				}
			}()
			wg.Wait()
			lock, lkErr = lockFor(inv, conn).Read(ctx)
			byServer := map[string][]string{}
			for _, s := range states {
				x := string(s.Status)
				if s.Sessions > 0 {
					x += fmt.Sprintf(" (%d sess)", s.Sessions)
				}
				byServer[s.Server] = append(byServer[s.Server], x)
			}
			if asJSON {
				return json.NewEncoder(ios.Out).Encode(map[string]any{"hosts": hosts, "balancer": states, "lock": lock})
			}
			tw := table(ios.Out)
			fmt.Fprintln(tw, "HOST\tVERSION\tHEALTH\tBALANCER\tRELEASES")
			unreachable := 0
			for i, h := range hosts {
				v, health := h.Version, h.Health
				if !h.Reachable {
					unreachable++
					v, health = "?", "unreachable: "+h.Error
				}
				lbs := strings.Join(byServer[inv.Hosts[i].Server], ",")
				if lbs == "" {
					lbs = "-"
					if inv.Balancer.Kind == fleet.BalancerNone {
						lbs = "(none)"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, v, health, lbs, strings.Join(h.Releases, " "))
			}
			tw.Flush()
			switch {
			case lkErr != nil:
				fmt.Fprintf(ios.Out, "lock: unknown: %v\n", lkErr)
			case lock == nil:
				fmt.Fprintln(ios.Out, "lock: free")
			default:
				fmt.Fprintf(ios.Out, "lock: %s\n", lock)
			}
			if lbErr != nil {
				fmt.Fprintf(ios.Out, "balancer: %v\n", lbErr)
			}
			if dir, err := journalDir(inv); err == nil {
				if r, _ := journal.Unfinished(dir); r != nil {
					fmt.Fprintf(ios.Out, "unfinished run: %s by %s (%s %s → %s): relctl resume, or relctl resume --rollback\n", r.ID, r.Owner, r.Plan.Kind, r.Plan.From, r.Plan.To)
				}
			}
			if unreachable > 0 {
				return withCode(ExitError, fmt.Errorf("%s unreachable", plural(unreachable, "host")))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&cf.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	return cmd
}

func lockFor(inv *fleet.Inventory, hosts rollout.Hosts) *rollout.Lock {
	h := inv.Hosts[0]
	for _, x := range inv.Hosts {
		if x.Name == inv.Migrations.Host {
			h = x
		}
	}
	return &rollout.Lock{Hosts: rollout.WithDeadlines(hosts, inv.Timeouts.Lock, 0), Host: h.Name, Path: inv.HostPath(h), Lease: time.Minute}
}

func newRollbackCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	var of outFlags
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Send every host the last run switched back to the version it ran (before the point of no return)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			dir, err := journalDir(inv)
			if err != nil {
				return err
			}
			last, lerr := journal.Latest(dir)
			if last == nil {
				return withCode(ExitUsage, fmt.Errorf("no run to roll back in %s %v", dir, errOrEmpty(lerr)))
			}
			if last.Resumable() && !last.Finished {
				return withCode(ExitUsage, fmt.Errorf("run %s did not finish: use relctl resume --rollback", last.ID))
			}
			if last.Plan.Kind != plan.KindUpgrade {
				return withCode(ExitUsage, fmt.Errorf("the last run (%s) was a %s %s → %s, not an upgrade: nothing to roll back", last.ID, last.Plan.Kind, last.Plan.From, last.Plan.To))
			}
			p, err := plan.Rollback(inv, last.Plan, last.Progress)
			if err != nil {
				return withCode(ExitUsage, err)
			}
			if p.Empty() {
				fmt.Fprintln(ios.Out, "nothing to roll back: the last run switched no host")
				return nil
			}
			conn := connect(ios, inv, cf)
			defer conn.Pool.Close()
			ctx := cmd.Context()
			obs, err := observeForPlan(ctx, inv, conn)
			if err != nil {
				return err
			}
			p.Basis = plan.Basis{Fingerprint: obs.Fingerprint(), Hosts: obs.Hosts}
			if err := agree(p, obs); err != nil {
				return withCode(ExitError, err)
			}
			p, _ = plan.DropSettled(p, obs)
			if p.Empty() {
				fmt.Fprintf(ios.Out, "nothing to roll back: every host the last run switched is already on %s\n", p.To)
				return nil
			}
			if !of.json {
				fmt.Fprint(ios.Err, plan.RenderText(p))
			}
			if err := confirm(ios, of, fmt.Sprintf("roll %s back to %s?", plural(len(p.DeployHosts()), "host"), p.To)); err != nil {
				return err
			}
			return execute(ctx, execution{ios: ios, inv: inv, conn: conn, plan: p, of: of})
		},
	}
	addRunFlags(cmd, &cf, &of)
	return cmd
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}

// agree checks the fleet still runs what a plan's deploy steps start from
// (or already their target, which is then skipped by idempotence).
func agree(p *plan.Plan, obs plan.Observed) error {
	var bad []string
	for _, s := range p.Steps {
		if s.Kind != plan.StepDeploy {
			continue
		}
		st, ok := obs.State(s.Host)
		switch {
		case !ok || !st.Reachable:
			bad = append(bad, fmt.Sprintf("%s is unreachable: %s", s.Host, st.Error))
		case st.Version != s.From && st.Version != s.To:
			bad = append(bad, fmt.Sprintf("%s runs %s, expected %s or %s", s.Host, st.Version, s.From, s.To))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the fleet does not agree with the journal: %s", strings.Join(bad, "; "))
	}
	return nil
}

func newResumeCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	var of outFlags
	var rollback bool
	cmd := &cobra.Command{
		Use:   "resume [--rollback]",
		Short: "Continue the unfinished run (relctl died, or it paused), or roll it back",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			dir, err := journalDir(inv)
			if err != nil {
				return err
			}
			run, lerr := journal.Unfinished(dir)
			if run == nil {
				fmt.Fprintf(ios.Out, "no unfinished run in %s %s\n", dir, errOrEmpty(lerr))
				return nil
			}
			conn := connect(ios, inv, cf)
			defer conn.Pool.Close()
			ctx := cmd.Context()
			obs, err := observeForPlan(ctx, inv, conn)
			if err != nil {
				return err
			}
			if err := agreeJournal(run, obs); err != nil {
				return withCode(ExitError, err)
			}
			p := run.Plan
			x := execution{ios: ios, inv: inv, conn: conn, plan: p, of: of, resume: run}
			if rollback && p.Kind != plan.KindRollback {
				rb, err := plan.Rollback(inv, p, run.Progress)
				if err != nil {
					return withCode(ExitUsage, err)
				}
				rb.Basis = plan.Basis{Fingerprint: obs.Fingerprint(), Hosts: obs.Hosts}
				rb, _ = plan.DropSettled(rb, obs)
				x.plan, x.resume = rb, nil
				if err := finishAbandoned(run); err != nil {
					return err
				}
			}
			fmt.Fprintf(ios.Err, "resuming run %s by %s: %s %s → %s, %d of %d steps done\n", run.ID, run.Owner, x.plan.Kind, x.plan.From, x.plan.To, len(run.Progress.Finished), len(p.Steps))
			if err := confirm(ios, of, "go on?"); err != nil {
				return err
			}
			return execute(ctx, x)
		},
	}
	cmd.Flags().BoolVar(&rollback, "rollback", false, "roll the unfinished run back instead of finishing it")
	addRunFlags(cmd, &cf, &of)
	return cmd
}

// finishAbandoned closes an unfinished run's journal when a new run (its
// rollback) takes over, so that it is not offered for resume again.
func finishAbandoned(run *journal.Run) error {
	j, err := journal.Open(run.Path)
	if err != nil {
		return err
	}
	bus := event.NewBus(run.ID, nil, j)
	bus.Emit(event.Event{Type: event.RunFinished, Outcome: event.OutcomeAborted, Message: "superseded by a rollback run"})
	return j.Close()
}

// agreeJournal checks that every host is where the journal says it can be.
func agreeJournal(run *journal.Run, obs plan.Observed) error {
	var bad []string
	for _, s := range run.Plan.Steps {
		if s.Kind != plan.StepDeploy {
			continue
		}
		st, ok := obs.State(s.Host)
		if !ok || !st.Reachable {
			bad = append(bad, fmt.Sprintf("%s is unreachable (%s): it must be reachable to resume", s.Host, st.Error))
			continue
		}
		switch {
		case run.Progress.Finished[s.ID] && st.Version != s.To && !laterStepTouches(run, s):
			bad = append(bad, fmt.Sprintf("%s runs %s but the journal says it finished %s", s.Host, st.Version, s.String()))
		case !run.Progress.Started[s.ID] && st.Version != s.From && !earlierStepTouches(run, s):
			bad = append(bad, fmt.Sprintf("%s runs %s but the journal says %s has not started (expected %s)", s.Host, st.Version, s.ID, s.From))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the fleet does not agree with the journal of run %s; check the hosts before going on: %s", run.ID, strings.Join(bad, "; "))
	}
	return nil
}

// laterStepTouches / earlierStepTouches allow for multi-hop plans, where a
// host goes through several versions.
func laterStepTouches(run *journal.Run, s plan.Step) bool {
	for _, t := range run.Plan.Steps {
		if t.Kind == plan.StepDeploy && t.Host == s.Host && t.Hop > s.Hop && run.Progress.Started[t.ID] {
			return true
		}
	}
	return false
}

func earlierStepTouches(run *journal.Run, s plan.Step) bool {
	for _, t := range run.Plan.Steps {
		if t.Kind == plan.StepDeploy && t.Host == s.Host && t.Hop < s.Hop {
			return true
		}
	}
	return false
}

func newDowngradeCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	var of outFlags
	var to, reason string
	cmd := &cobra.Command{
		Use:   "downgrade --to VERSION --reason TEXT",
		Short: "Emergency downgrade along a declared path: bigger batches, short drains, no canary pause, audited",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			dir, err := journalDir(inv)
			if err != nil {
				return err
			}
			if err := refuseUnfinished(inv); err != nil {
				return err
			}
			if wantTUI(ios, of) {
				return runTUI(cmd.Context(), ios, inv, cf, tui.Options{Downgrade: &struct{ To, Reason string }{to, reason}}, nil)
			}
			var last *plan.LastRun
			if r, _ := journal.Latest(dir); r != nil && r.Original != nil {
				last = &plan.LastRun{From: r.Original.From, To: r.Original.To, PostMigrated: r.PostMigrated}
			}
			conn := connect(ios, inv, cf)
			defer conn.Pool.Close()
			ctx := cmd.Context()
			obs, err := observeForPlan(ctx, inv, conn)
			if err != nil {
				return err
			}
			p, err := plan.Downgrade(inv, obs, plan.DowngradeOptions{To: to, Reason: reason, Last: last, CanVerify: canVerify(inv)})
			if err != nil {
				return withCode(planErrCode(err), err)
			}
			if p.Empty() {
				fmt.Fprintf(ios.Out, "nothing to do: every host runs %s\n", to)
				return nil
			}
			if !of.json {
				fmt.Fprint(ios.Err, plan.RenderText(p))
			}
			if err := confirm(ios, of, fmt.Sprintf("EMERGENCY DOWNGRADE of %s to %s?", plural(len(p.DeployHosts()), "host"), to)); err != nil {
				return err
			}
			return execute(ctx, execution{ios: ios, inv: inv, conn: conn, plan: p, of: of, force: true})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the version to go back to (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit record (required)")
	_ = cmd.MarkFlagRequired("to")
	addRunFlags(cmd, &cf, &of)
	return cmd
}

func newRepairCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	var of outFlags
	cmd := &cobra.Command{
		Use:   "repair HOST...",
		Short: "Bring hosts an earlier run left out of service back: start, healthy, enable, on the release each runs",
		Example: `  relctl repair web3            # preflight named web3 as left drained by an earlier run
  relctl repair web3 --yes --plain`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, hosts []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			if err := refuseUnfinished(inv); err != nil {
				return err
			}
			conn := connect(ios, inv, cf)
			defer conn.Pool.Close()
			ctx := cmd.Context()
			obs, err := observeForPlan(ctx, inv, conn)
			if err != nil {
				return err
			}
			p, err := plan.Repair(inv, obs, hosts, canVerify(inv))
			if err != nil {
				return withCode(ExitUsage, err)
			}
			if !of.json {
				fmt.Fprint(ios.Err, plan.RenderText(p))
			}
			if err := confirm(ios, of, fmt.Sprintf("bring %s back into service?", strings.Join(hosts, ", "))); err != nil {
				return err
			}
			// The servers are out of rotation: that is what is repaired.
			return execute(ctx, execution{ios: ios, inv: inv, conn: conn, plan: p, of: of, force: true})
		},
	}
	addRunFlags(cmd, &cf, &of)
	return cmd
}

func newLockCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Show who holds the fleet's deploy lock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			conn := connect(ios, inv, cf)
			defer conn.Pool.Close()
			l := lockFor(inv, conn)
			info, err := l.Read(cmd.Context())
			if err != nil {
				return err
			}
			if info == nil {
				fmt.Fprintf(ios.Out, "free (on %s)\n", l.Host)
				return nil
			}
			fmt.Fprintf(ios.Out, "%s (on %s)\n", info, l.Host)
			return nil
		},
	}
	var force bool
	brk := &cobra.Command{
		Use:   "break",
		Short: "Break an expired lock (any lock with --force); the break is audited",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			conn := connect(ios, inv, cf)
			defer conn.Pool.Close()
			ctx := cmd.Context()
			l := lockFor(inv, conn)
			info, err := l.Read(ctx)
			if err != nil {
				return err
			}
			if info == nil {
				fmt.Fprintln(ios.Out, "the fleet is not locked")
				return nil
			}
			if !info.Expired() && !force {
				return withCode(ExitLocked, fmt.Errorf("lock is %s and its lease is live: a run may be going on; --force breaks it anyway", info))
			}
			if err := l.Break(ctx); err != nil {
				return err
			}
			rec := rollout.HistoryRecord{Time: timeNow().UTC(), RunID: info.RunID, Owner: owner(), Kind: "lock-break", Host: l.Host,
				Result: "lock broken", Reason: "held by " + info.String()}
			b, _ := json.Marshal(rec)
			base := strings.TrimRight(l.Path, "/") + "/.relctl"
			actx, cancel := context.WithTimeout(ctx, inv.Timeouts.Lock)
			defer cancel()
			_, aerr := conn.Output(actx, l.Host, fmt.Sprintf("printf '%%s\\n' %s >> %s", shell.Quote(string(b)), shell.Quote(base+"/history.jsonl")))
			fmt.Fprintf(ios.Out, "broke the lock %s\n", info)
			if aerr != nil {
				return fmt.Errorf("lock broken, but the audit record was not written: %w", aerr)
			}
			return nil
		},
	}
	brk.Flags().BoolVar(&force, "force", false, "break a lock whose lease is still live")
	cmd.AddCommand(brk)
	cmd.PersistentFlags().BoolVar(&cf.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	return cmd
}

func newHistoryCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "What relctl did on the fleet, newest first, from every host's audit record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			conn := connect(ios, inv, cf)
			defer conn.Pool.Close()
			recs, errs := readHistory(cmd.Context(), inv, conn)
			sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.After(recs[j].Time) })
			if limit > 0 && len(recs) > limit {
				recs = recs[:limit]
			}
			if asJSON {
				enc := json.NewEncoder(ios.Out)
				for _, r := range recs {
					_ = enc.Encode(r)
				}
			} else {
				tw := table(ios.Out)
				fmt.Fprintln(tw, "TIME\tHOST\tRUN\tOWNER\tWHAT\tRESULT")
				for _, r := range recs {
					what := fmt.Sprintf("%s %s → %s", r.Kind, r.From, r.To)
					if r.Kind == "lock-break" {
						what = "lock break"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), r.Host, r.RunID, r.Owner, what, r.Result)
				}
				tw.Flush()
			}
			if err := errors.Join(errs...); err != nil {
				return withCode(ExitError, err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON lines")
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "at most this many records (0 = all)")
	cmd.Flags().BoolVar(&cf.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	return cmd
}

func readHistory(ctx context.Context, inv *fleet.Inventory, conn *rollout.SSH) ([]rollout.HistoryRecord, []error) {
	var mu sync.Mutex
	var recs []rollout.HistoryRecord
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, inv.SSH.MaxParallel)
	for _, h := range inv.Hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f := strings.TrimRight(inv.HostPath(h), "/") + "/.relctl/history.jsonl"
			hctx, cancel := context.WithTimeout(ctx, inv.Timeouts.Observe)
			defer cancel()
			out, err := conn.Output(hctx, h.Name, fmt.Sprintf("[ -f %[1]s ] && cat %[1]s || true", shell.Quote(f)))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
				return
			}
			for i, line := range strings.Split(out, "\n") {
				if strings.TrimSpace(line) == "" {
					continue
				}
				var r rollout.HistoryRecord
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s:%d: %v", h.Name, f, i+1, err))
					continue
				}
				recs = append(recs, r)
			}
		}()
	}
	wg.Wait()
	return recs, errs
}

// newDemoappCmd runs the demo application the demo fleet deploys (its
// artifacts wrap `relctl demoapp`). Hidden: it is not an operator's command.
func newDemoappCmd(ios *IO) *cobra.Command {
	return &cobra.Command{
		Use:                "demoapp",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := demoapp.Main(args, ios.Out, ios.Err); code != 0 {
				return withCode(code, errSilent)
			}
			return nil
		},
	}
}
