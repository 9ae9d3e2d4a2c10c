package cli

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/tui"
)

var timeNow = time.Now

// ApplyOptions are apply's flags.
type ApplyOptions struct {
	To, Upfrom, PlanFile string
	Force                bool
	Conn                 connFlags
	Out                  outFlags
	Sel                  selFlags
}

// runApply: one operation (PlanUpgrade or LoadPlan), then the view.
func runApply(ctx context.Context, ios *IO, inv *fleet.Inventory, o *ApplyOptions) error {
	if (o.To == "") == (o.PlanFile == "") {
		return withCode(ExitUsage, errors.New("give --to VERSION or --plan FILE"))
	}
	if o.PlanFile != "" && !o.Sel.selection().Empty() {
		return withCode(ExitUsage, errors.New("--plan FILE carries its own selection: give --hosts, --labels or --roles to relctl plan instead"))
	}
	env, err := newEnv(ios, inv, o.Conn)
	if err != nil {
		return err
	}
	defer env.Conn.Pool.Close()
	var pr *ops.Prepared
	if o.PlanFile != "" {
		data, err := ops.ReadPlanFile(o.PlanFile)
		if err != nil {
			return err
		}
		pr, err = env.LoadPlan(ctx, data, o.PlanFile)
		if err != nil {
			return err
		}
		pr.Force = o.Force
	} else if pr, err = env.PlanUpgrade(ctx, ops.UpgradeOptions{To: o.To, Upfrom: o.Upfrom, Force: o.Force, Select: o.Sel.selection()}); err != nil {
		return err
	}
	if pr.Nothing == "" && wantTUI(ios, o.Out) {
		env.Conn.Pool.Close()
		return runTUI(ctx, ios, inv, o.Conn, tui.Options{Plan: pr.Plan}, nil, pr)
	}
	return showConfirmRun(ctx, ios, env, pr, o.Out, true)
}

func addRunFlags(cmd *cobra.Command, cf *connFlags, of *outFlags) {
	f := cmd.Flags()
	f.BoolVarP(&of.yes, "yes", "y", false, "approve the plan and the canary gate without asking (required without a terminal)")
	f.BoolVar(&of.plain, "plain", false, "plain progress lines on stderr (the default when not in a terminal)")
	f.BoolVar(&of.json, "json", false, "JSON event lines on stdout (docs/json.md); nothing else goes to stdout")
	f.DurationVar(&of.lockWait, "lock-wait", 0, "if another run holds the lock, wait this long for it (e.g. 10m) instead of refusing")
	f.BoolVar(&cf.acceptNew, "accept-new-host-keys", false, "accept hosts whose key is not in known_hosts yet, and add it there (a CHANGED key is always refused)")
}

func newApplyCmd(ios *IO, g *globals) *cobra.Command {
	o := &ApplyOptions{}
	cmd := &cobra.Command{
		Use:   "apply --to VERSION",
		Short: "Upgrade the fleet: observe, plan, then roll out host by host",
		Example: `  relctl apply --to 1.4.0
  relctl apply --to 1.4.0 --yes --plain       # in CI: approve the canary gate, plain lines
  relctl apply --plan plan.json --yes         # apply a saved plan; refused if edited or if the fleet changed since
  relctl apply --to 1.4.0 --ticket CHG-1234 --reason "checkout fix"   # recorded in the lock, journal, audit and hooks`,
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
	f.StringVar(&o.To, "to", "", "target version")
	f.StringVar(&o.Upfrom, "upfrom", "", "assert the version the fleet runs; refuse if it runs another")
	f.StringVar(&o.PlanFile, "plan", "", "apply a plan saved by relctl plan --format json")
	f.BoolVar(&o.Force, "force", false, "start even if a balancer server is already out of service (DRAIN, MAINT, or DOWN on HAProxy); it goes back into rotation only once healthy")
	addRunFlags(cmd, &o.Conn, &o.Out)
	addSelectFlags(cmd, &o.Sel)
	addNoteFlags(cmd, &o.Conn, true)
	return cmd
}
