package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/tui"
)

var timeNow = time.Now

type applyOptions struct {
	to, upfrom, planFile string
	force                bool
	conn                 connFlags
	out                  outFlags
}

// refuseUnfinished stops a new run while this machine's journal holds an
// unfinished one: the fleet is half-way and the operator must choose.
func refuseUnfinished(inv *fleet.Inventory) error {
	dir, err := journalDir(inv)
	if err != nil {
		return err
	}
	r, err := journal.Unfinished(dir)
	if err != nil {
		return err
	}
	if r == nil {
		return nil
	}
	return withCode(ExitLocked, fmt.Errorf("run %s by %s (%s %s → %s) did not finish: finish it with relctl resume, or roll it back with relctl resume --rollback",
		r.ID, r.Owner, r.Plan.Kind, r.Plan.From, r.Plan.To))
}

// runApply is apply's whole path: observe, plan (or read and check a saved
// plan), show, confirm, run.
func runApply(ctx context.Context, ios *IO, inv *fleet.Inventory, o *applyOptions) error {
	if (o.to == "") == (o.planFile == "") {
		return withCode(ExitUsage, errors.New("give --to VERSION or --plan FILE"))
	}
	if err := refuseUnfinished(inv); err != nil {
		return err
	}
	conn := connect(ios, inv, o.conn)
	defer conn.Pool.Close()
	obs, err := observeForPlan(ctx, inv, conn)
	if err != nil {
		return err
	}
	var p *plan.Plan
	if o.planFile != "" {
		data, err := os.ReadFile(o.planFile)
		if err != nil {
			return withCode(ExitUsage, err)
		}
		if p, err = plan.UnmarshalJSON(data); err != nil {
			return withCode(ExitUsage, err)
		}
		if fp := obs.Fingerprint(); !p.Basis.Offline && fp != p.Basis.Fingerprint {
			return withCode(ExitError, fmt.Errorf("plan is stale: it was built from fleet state %s, the fleet is now %s; run relctl plan again", p.Basis.Fingerprint, fp))
		}
		if p.Basis.Offline {
			// An offline plan assumed a version: build it again from what
			// the fleet really runs; it must still hold.
			q, err := plan.Build(inv, obs, plan.Options{To: p.To, Upfrom: p.From, CanVerify: canVerify(inv)})
			if err != nil {
				return withCode(planErrCode(err), fmt.Errorf("plan is stale: %w", err))
			}
			p = q
		}
	} else {
		p, err = plan.Build(inv, obs, plan.Options{To: o.to, Upfrom: o.upfrom, CanVerify: canVerify(inv)})
		if err != nil {
			return withCode(planErrCode(err), err)
		}
	}
	if p.Empty() {
		fmt.Fprintf(ios.Out, "nothing to do: every host runs %s\n", p.To)
		return nil
	}
	if wantTUI(ios, o.out) {
		conn.Pool.Close()
		return runTUI(ctx, ios, inv, o.conn, tui.Options{Plan: p}, nil)
	}
	if !o.out.json {
		fmt.Fprint(ios.Err, plan.RenderText(p))
	}
	if err := confirm(ios, o.out, fmt.Sprintf("apply this plan to %s?", plural(len(p.DeployHosts()), "host"))); err != nil {
		return err
	}
	return execute(ctx, execution{ios: ios, inv: inv, conn: conn, plan: p, of: o.out, force: o.force})
}

func addRunFlags(cmd *cobra.Command, cf *connFlags, of *outFlags) {
	f := cmd.Flags()
	f.BoolVarP(&of.yes, "yes", "y", false, "approve the plan and the canary gate without asking (required without a terminal)")
	f.BoolVar(&of.plain, "plain", false, "plain progress lines on stderr (the default when not in a terminal)")
	f.BoolVar(&of.json, "json", false, "JSON event lines on stdout")
	f.DurationVar(&of.lockWait, "lock-wait", 0, "if another run holds the lock, wait this long for it (e.g. 10m) instead of refusing")
	f.BoolVar(&cf.acceptNew, "accept-new-host-keys", false, "accept hosts whose key is not in known_hosts yet, and add it there (a CHANGED key is always refused)")
}

func newApplyCmd(ios *IO, g *globals) *cobra.Command {
	o := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply --to VERSION",
		Short: "Upgrade the fleet: observe, plan, then roll out host by host",
		Example: `  relctl apply --to 1.4.0
  relctl apply --to 1.4.0 --yes --plain       # in CI: approve the canary gate, plain lines
  relctl apply --plan plan.json --yes         # apply a saved plan; refused if the fleet changed since`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := loadFleet(g)
			if err != nil {
				return err
			}
			return runApply(cmd.Context(), ios, inv, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "target version")
	f.StringVar(&o.upfrom, "upfrom", "", "assert the version the fleet runs; refuse if it runs another")
	f.StringVar(&o.planFile, "plan", "", "apply a plan saved by relctl plan --format json")
	f.BoolVar(&o.force, "force", false, "start even if a balancer server is already in DRAIN or MAINT")
	addRunFlags(cmd, &o.conn, &o.out)
	return cmd
}
