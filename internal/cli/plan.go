package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/plan"
)

type planOptions struct {
	to, upfrom, format, output string
	conn                       connFlags
	sel                        selFlags
	out                        outputFlags
}

func newPlanCmd(ios *IO, g *globals) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan --to VERSION [--upfrom VERSION]",
		Short: "Print the exact plan that apply would run, changing nothing",
		Example: `  relctl plan -f fleet.example.yaml --upfrom 1.3.2 --to 2.0.0
  relctl plan --to 1.4.0 --format markdown > change-ticket.md
  relctl plan --to 1.4.0 --format json -o plan.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPlan(cmd, ios, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "target version (required)")
	f.StringVar(&o.upfrom, "upfrom", "", "the version the fleet runs; with it the plan is built offline, without looking at the hosts (without it, relctl observes the fleet over SSH)")
	f.StringVar(&o.format, "format", "text", "text, markdown or json")
	f.StringVarP(&o.output, "output", "o", "", "write the plan to this file instead of stdout")
	f.BoolVar(&o.conn.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	addSelectFlags(cmd, &o.sel)
	addOutputFlags(cmd, &o.out, "the text plan (--format text, the default)", "the plan as JSON (--format json; docs/json.md)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func runPlan(cmd *cobra.Command, ios *IO, g *globals, o *planOptions) error {
	// --json is --format json, --plain --format text.
	format := o.format
	for _, x := range []struct {
		set          bool
		flag, format string
	}{{o.out.json, "json", "json"}, {o.out.plain, "plain", "text"}} {
		if !x.set {
			continue
		}
		if cmd.Flags().Changed("format") && format != x.format {
			return withCode(ExitUsage, fmt.Errorf("--format %s contradicts --%s", format, x.flag))
		}
		format = x.format
	}
	render, err := renderer(format)
	if err != nil {
		return err
	}
	inv, err := loadFleet(g)
	if err != nil {
		return err
	}
	env, err := newEnv(ios, inv, o.conn)
	if err != nil {
		return err
	}
	defer env.Conn.Pool.Close()
	pr, err := env.PlanUpgrade(cmd.Context(), ops.UpgradeOptions{To: o.to, Upfrom: o.upfrom, Offline: o.upfrom != "", Preview: true, Select: o.sel.selection()})
	if err != nil {
		return err
	}
	p := pr.Plan
	cannot := warnMissingArtifacts(ios, inv, p)
	out, err := render(p)
	if err != nil {
		return err
	}
	if o.output != "" {
		if err := os.WriteFile(o.output, out, 0o644); err != nil {
			return fmt.Errorf("write plan: %w", err)
		}
		fmt.Fprintf(ios.Err, "plan written to %s\n", o.output)
		return cannot
	}
	if _, err = ios.Out.Write(out); err != nil {
		return err
	}
	return cannot
}

func renderer(format string) (func(*plan.Plan) ([]byte, error), error) {
	switch format {
	case "text", "":
		return func(p *plan.Plan) ([]byte, error) { return []byte(plan.RenderText(p)), nil }, nil
	case "markdown", "md":
		return func(p *plan.Plan) ([]byte, error) { return []byte(plan.RenderMarkdown(p)), nil }, nil
	case "json":
		return plan.MarshalJSONIndent, nil
	}
	return nil, withCode(ExitUsage, fmt.Errorf("--format %q: use text, markdown or json", format))
}

// warnMissingArtifacts tells the operator now what preflight would refuse
// later. A version of the plan that is no release at all (not in the
// releases table, and no artifact) makes the plan one that cannot run: the
// returned error (exit 2) says so, after the plan is printed. A declared
// release whose artifact is not on this machine yet is only a warning: the
// plan may be applied where the artifact is.
func warnMissingArtifacts(ios *IO, inv *fleet.Inventory, p *plan.Plan) error {
	var unknown []string
	for _, h := range p.Hops {
		path, err := artifactPath(inv, h.To)
		if err != nil {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			if _, declared := inv.Releases[h.To]; !declared {
				unknown = append(unknown, fmt.Sprintf("%s (not in the releases table of %s, and no artifact at %s)", h.To, inv.File, path))
				continue
			}
			fmt.Fprintf(ios.Err, "warning: artifact for %s not found at %s: apply will refuse to start\n", h.To, path)
		}
	}
	if len(unknown) > 0 {
		return withCode(ExitUsage, fmt.Errorf("this plan cannot run: no release %s", strings.Join(unknown, ", no release ")))
	}
	return nil
}

// artifactPath resolves the artifact of version v relative to the inventory.
func artifactPath(inv *fleet.Inventory, v string) (string, error) { return ops.ArtifactPath(inv, v) }
