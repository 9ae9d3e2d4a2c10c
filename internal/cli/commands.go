package cli

import (
	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/tui"
)

// StatusOptions are status's flags.
type StatusOptions struct {
	Conn connFlags
	Sel  selFlags
	Out  outputFlags
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
				return showStatus(ios, inv, st, o.Out)
			})
		},
	}
	addSelectFlags(cmd, &o.Sel)
	addOutputFlags(cmd, &o.Out, "tab-separated fields under a header line, as on a pipe, even on a terminal", "one JSON document (docs/json.md)")
	cmd.Flags().BoolVar(&o.Conn.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	return cmd
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
	addNoteFlags(cmd, &o.Conn, true)
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
	addNoteFlags(cmd, &o.Conn, true) // a continued run keeps its own: they apply to --rollback
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
			o.Conn.reason = o.Reason
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
	_ = cmd.MarkFlagRequired("reason")
	addRunFlags(cmd, &o.Conn, &o.Out)
	addNoteFlags(cmd, &o.Conn, false)
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
	addNoteFlags(cmd, &o.Conn, true)
	return cmd
}

func newLockCmd(ios *IO, g *globals) *cobra.Command {
	var cf connFlags
	var of outputFlags
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
				return showLock(ios, l.Host, info, false, of)
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
				return showLock(ios, env.Lock().Host, info, true, of)
			})
		},
	}
	brk.Flags().BoolVar(&force, "force", false, "break a lock whose lease is still live")
	cmd.AddCommand(brk)
	cmd.PersistentFlags().BoolVar(&of.plain, "plain", false, "accepted for uniformity: lock always prints one plain line")
	cmd.PersistentFlags().BoolVar(&of.json, "json", false, "one JSON document (docs/json.md)")
	cmd.PersistentFlags().BoolVar(&cf.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	return cmd
}

func newHistoryCmd(ios *IO, g *globals) *cobra.Command {
	o := &historyOptions{}
	cmd := &cobra.Command{
		Use:   "history",
		Short: "What relctl did on the fleet, newest first, from every host's audit record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			f, err := parseHistoryFilter(inv, o, timeNow())
			if err != nil {
				return err
			}
			env, err := newEnv(ios, inv, o.Conn)
			if err != nil {
				return err
			}
			defer env.Conn.Pool.Close()
			var only []string
			if f.host != "" {
				only = []string{f.host}
			}
			recs, errs := env.HistoryOf(cmd.Context(), only)
			return runHistory(ios, recs, errs, f, o)
		},
	}
	addOutputFlags(cmd, &o.Out, "tab-separated fields under a header line, as on a pipe, even on a terminal", `JSON lines, one record each, "v": 1 (docs/json.md)`)
	cmd.Flags().IntVarP(&o.Limit, "limit", "n", 50, "at most this many records, after the filters (0 = all)")
	cmd.Flags().StringVar(&o.Host, "host", "", "only the records of this host (one of the inventory's)")
	cmd.Flags().StringVar(&o.Run, "run", "", "only this run's records (its id, or the beginning of it)")
	cmd.Flags().StringVar(&o.Since, "since", "", "only records since then: a duration back from now (90m, 24h, 7d) or an RFC 3339 time")
	cmd.Flags().BoolVar(&o.Conn.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
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
