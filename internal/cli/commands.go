package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/tui"
)

// StatusOptions are status's flags.
type StatusOptions struct {
	Conn connFlags
	JSON bool
	Sel  selFlags
}

func newStatusCmd(ios *IO, g *globals) *cobra.Command {
	o := &StatusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every host's version, health, balancer state, and the lock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(ios, g, o.Conn, func(env *ops.Env) error {
				st, inv, err := env.StatusOf(cmd.Context(), o.Sel.selection())
				if err != nil {
					return err
				}
				return showStatus(ios, inv, st, o.JSON)
			})
		},
	}
	addSelectFlags(cmd, &o.Sel)
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&o.Conn.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	return cmd
}

// showStatus is status's view.
func showStatus(ios *IO, inv *fleet.Inventory, st ops.Status, asJSON bool) error {
	byServer := map[string][]string{}
	for _, s := range st.Balancer {
		x := string(s.Status)
		if s.Sessions > 0 {
			x += fmt.Sprintf(" (%d sess)", s.Sessions)
		}
		byServer[s.Server] = append(byServer[s.Server], x)
	}
	if asJSON {
		return json.NewEncoder(ios.Out).Encode(map[string]any{"hosts": st.Hosts, "balancer": st.Balancer, "lock": st.Lock})
	}
	tw := table(ios.Out)
	fmt.Fprintln(tw, "HOST\tVERSION\tHEALTH\tBALANCER\tRELEASES")
	unreachable := 0
	for i, h := range st.Hosts {
		v, health := h.Version, h.Health
		if !h.Reachable {
			unreachable++
			v, health = "?", "unreachable: "+h.Error
		}
		lbs := strings.Join(byServer[inv.Hosts[i].Server], ",")
		if lbs == "" {
			lbs = "-"
			if inv.Balancer.Kind == fleet.BalancerNone || !inv.HostBalanced(inv.Hosts[i]) {
				lbs = "(none)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, v, health, lbs, strings.Join(h.Releases, " "))
	}
	tw.Flush()
	switch {
	case st.LockErr != nil:
		fmt.Fprintf(ios.Out, "lock: unknown (%v)\n", st.LockErr)
	case st.Lock == nil:
		fmt.Fprintln(ios.Out, "lock: free")
	default:
		fmt.Fprintf(ios.Out, "lock: %s\n", st.Lock)
	}
	if st.LBErr != nil {
		fmt.Fprintf(ios.Out, "balancer: %v\n", st.LBErr)
	}
	switch r := st.Unfinished; {
	case st.JournalErr != nil:
		fmt.Fprintf(ios.Out, "journal: %v\n", st.JournalErr)
	case r != nil && st.Alive != nil && st.Alive.Alive:
		fmt.Fprintf(ios.Out, "running: %s by %s (%s %s → %s): %s\n", r.ID, r.Owner, r.Plan.Kind, r.Plan.From, r.Plan.To, st.Alive.Why)
	case r != nil:
		fmt.Fprintf(ios.Out, "unfinished run: %s by %s (%s %s → %s): relctl resume, or relctl resume --rollback\n", r.ID, r.Owner, r.Plan.Kind, r.Plan.From, r.Plan.To)
	}
	if unreachable > 0 {
		return withCode(ExitError, fmt.Errorf("%s unreachable", plural(unreachable, "host")))
	}
	return nil
}

// RollbackOptions are rollback's flags.
type RollbackOptions struct {
	Conn connFlags
	Out  outFlags
	Sel  selFlags
}

func newRollbackCmd(ios *IO, g *globals) *cobra.Command {
	o := &RollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Send every host the last run switched back to the version it ran (before the point of no return)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(ios, g, o.Conn, func(env *ops.Env) error {
				pr, err := env.PlanRollbackOf(cmd.Context(), o.Sel.selection())
				if err != nil {
					return err
				}
				return showConfirmRun(cmd.Context(), ios, env, pr, o.Out, true)
			})
		},
	}
	addRunFlags(cmd, &o.Conn, &o.Out)
	addSelectFlags(cmd, &o.Sel)
	return cmd
}

// withEnv loads the inventory, connects, and runs f with the operations'
// environment.
func withEnv(ios *IO, g *globals, cf connFlags, f func(env *ops.Env) error) error {
	inv, err := loadFleet(g)
	if err != nil {
		return err
	}
	env, err := newEnv(ios, inv, cf)
	if err != nil {
		return err
	}
	defer env.Conn.Pool.Close()
	return f(env)
}

// ResumeOptions are resume's flags.
type ResumeOptions struct {
	Rollback bool
	Conn     connFlags
	Out      outFlags
}

func newResumeCmd(ios *IO, g *globals) *cobra.Command {
	o := &ResumeOptions{}
	cmd := &cobra.Command{
		Use:   "resume [--rollback]",
		Short: "Continue the unfinished run (relctl died, or it paused), or roll it back",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(ios, g, o.Conn, func(env *ops.Env) error {
				ctx := cmd.Context()
				pr, err := env.PlanResume(ctx, o.Rollback)
				if err != nil {
					return err
				}
				if pr.Settle != nil {
					if err := env.Settle(ctx, pr); err != nil {
						return err
					}
				}
				return showConfirmRun(ctx, ios, env, pr, o.Out, pr.Resume == nil)
			})
		},
	}
	cmd.Flags().BoolVar(&o.Rollback, "rollback", false, "roll the unfinished run back instead of finishing it")
	addRunFlags(cmd, &o.Conn, &o.Out)
	return cmd
}

// DowngradeOptions are downgrade's flags.
type DowngradeOptions struct {
	To, Reason string
	Conn       connFlags
	Out        outFlags
}

func newDowngradeCmd(ios *IO, g *globals) *cobra.Command {
	o := &DowngradeOptions{}
	cmd := &cobra.Command{
		Use:   "downgrade --to VERSION --reason TEXT",
		Short: "Emergency downgrade along a declared path: bigger batches, short drains, no canary pause, audited",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(ios, g, o.Conn, func(env *ops.Env) error {
				if wantTUI(ios, o.Out) {
					if err := env.RefuseUnfinished(); err != nil {
						return err
					}
					env.Conn.Pool.Close()
					return runTUI(cmd.Context(), ios, env.Inv, o.Conn, tui.Options{Downgrade: &struct{ To, Reason string }{o.To, o.Reason}}, nil)
				}
				pr, err := env.PlanDowngrade(cmd.Context(), o.To, o.Reason)
				if err != nil {
					return err
				}
				return showConfirmRun(cmd.Context(), ios, env, pr, o.Out, true)
			})
		},
	}
	cmd.Flags().StringVar(&o.To, "to", "", "the version to go back to (required)")
	cmd.Flags().StringVar(&o.Reason, "reason", "", "why, for the audit record (required)")
	_ = cmd.MarkFlagRequired("to")
	addRunFlags(cmd, &o.Conn, &o.Out)
	return cmd
}

// RepairOptions are repair's flags.
type RepairOptions struct {
	Conn connFlags
	Out  outFlags
}

func newRepairCmd(ios *IO, g *globals) *cobra.Command {
	o := &RepairOptions{}
	cmd := &cobra.Command{
		Use:   "repair HOST...",
		Short: "Bring hosts an earlier run left out of service back: start, healthy, enable, on the release each runs",
		Example: `  relctl repair web3            # preflight named web3 as left drained by an earlier run
  relctl repair web3 --yes --plain`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, hosts []string) error {
			return withEnv(ios, g, o.Conn, func(env *ops.Env) error {
				pr, err := env.PlanRepair(cmd.Context(), hosts)
				if err != nil {
					return err
				}
				return showConfirmRun(cmd.Context(), ios, env, pr, o.Out, true)
			})
		},
	}
	addRunFlags(cmd, &o.Conn, &o.Out)
	return cmd
}

func newLockCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Show who holds the fleet's deploy lock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(ios, g, cf, func(env *ops.Env) error {
				l := env.Lock()
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
			})
		},
	}
	var force bool
	brk := &cobra.Command{
		Use:   "break",
		Short: "Break an expired lock (any lock with --force); the break is audited with the holder's run id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(ios, g, cf, func(env *ops.Env) error {
				info, err := env.BreakLock(cmd.Context(), force)
				if err != nil {
					return err
				}
				if info == nil {
					fmt.Fprintln(ios.Out, "the fleet is not locked")
					return nil
				}
				fmt.Fprintf(ios.Out, "broke the lock %s (audited in .relctl/history.jsonl on %s)\n", info, env.Lock().Host)
				return nil
			})
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
			return withEnv(ios, g, cf, func(env *ops.Env) error {
				recs, errs := env.History(cmd.Context())
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
						switch r.Kind {
						case "lock-break":
							what = "lock break of run " + r.PrevRun
						case "lock-takeover":
							what = "lock takeover from run " + r.PrevRun
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), r.Host, r.RunID, r.Owner, what, r.Result)
					}
					tw.Flush()
				}
				if err := errors.Join(errs...); err != nil {
					return withCode(ExitError, err)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON lines")
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "at most this many records (0 = all)")
	cmd.Flags().BoolVar(&cf.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	return cmd
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
