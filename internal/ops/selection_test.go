package ops

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/view"
)

// A selection goes through the one planning operation the CLI and the TUI
// share: the plan names what it leaves out and holds post-migrate back; a
// saved selected plan rebuilds to itself; bad names are usage errors.
func TestPlanUpgradeSelection(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sel := fleet.Selection{Hosts: []string{"web1", "web3"}}
	pr, err := f.env.PlanUpgrade(ctx, UpgradeOptions{To: "1.4.0", Select: sel})
	if err != nil {
		t.Fatal(err)
	}
	p := pr.Plan
	if got := p.DeployHosts(); !slices.Equal(got, []string{"web1", "web3"}) {
		t.Errorf("deploys %v", got)
	}
	if p.HasKind(plan.StepPostMigrate) || len(p.HeldBack()) != 1 ||
		p.HeldBack()[0] != "post-migrate skipped: web2, web4, web5 are not selected and still run 1.3.2 — run again without --hosts to finish" {
		t.Errorf("post-migrate not held: %v", p.HeldBack())
	}
	if p.Inputs.Selection == nil || !slices.Equal(p.Inputs.Selection.Hosts, sel.Hosts) {
		t.Errorf("inputs carry no selection: %+v", p.Inputs)
	}
	// Saved and applied: rebuilt from its inputs, selection included.
	data, err := plan.MarshalJSONIndent(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := f.env.LoadPlan(ctx, data, "plan.json")
	if err != nil {
		t.Fatal(err)
	}
	if d := plan.Diff(p, q.Plan); d != "" {
		t.Errorf("saved selected plan: %s", d)
	}
	for _, c := range []struct {
		sel  fleet.Selection
		want string
	}{
		{fleet.Selection{Hosts: []string{"web9"}}, `--hosts: "web9" is not a host of`},
		{fleet.Selection{Roles: []string{"db"}}, `--roles: "db" is not a role of`},
		{fleet.Selection{Labels: []string{"blue"}}, `--labels: no host of`},
	} {
		_, err := f.env.PlanUpgrade(ctx, UpgradeOptions{To: "1.4.0", Select: c.sel, Preview: true})
		if err == nil || !strings.Contains(err.Error(), c.want) || Code(err) != view.ExitUsage {
			t.Errorf("%s: err %v (code %d), want %q and exit 2", c.sel, err, Code(err), c.want)
		}
	}
	// Past a required stop alone: refused, exit 2.
	_, err = f.env.PlanUpgrade(ctx, UpgradeOptions{To: "2.0.0", Select: sel, Preview: true})
	if !errors.Is(err, plan.ErrSelectionPath) || Code(err) != view.ExitUsage {
		t.Errorf("multi-hop selection: %v (code %d)", err, Code(err))
	}
}

// rollback --hosts sends back only the selected hosts of the last run.
func TestPlanRollbackOfSelection(t *testing.T) {
	f := newFixture(t)
	p := f.upgrade()
	// The run ended before its post-migrate (aborted), every host switched.
	p.Steps = slices.DeleteFunc(p.Steps, func(s plan.Step) bool { return s.Kind == plan.StepPostMigrate })
	f.journalState(p, plan.StepCleanup, event.OutcomeAborted)
	pr, err := f.env.PlanRollbackOf(context.Background(), fleet.Selection{Hosts: []string{"web2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := pr.Plan.DeployHosts(); !slices.Equal(got, []string{"web2"}) {
		t.Errorf("rolls back %v", got)
	}
	if pr.Plan.Selection == nil || len(pr.Plan.Selection.LeftOut) != 4 {
		t.Errorf("left out: %+v", pr.Plan.Selection)
	}
	_, err = f.env.PlanRollbackOf(context.Background(), fleet.Selection{Hosts: []string{"nope"}})
	if Code(err) != view.ExitUsage || !strings.Contains(err.Error(), `"nope" is not a host`) {
		t.Errorf("unknown host: %v (code %d)", err, Code(err))
	}
}

func TestStatusOfSelection(t *testing.T) {
	f := newFixture(t)
	// No balancer to ask (the fixture has no SSH connection).
	inv := f.env.Inv.WithHosts(f.env.Inv.Hosts)
	inv.Balancer = fleet.Balancer{Kind: fleet.BalancerNone}
	f.env.Inv = inv
	st, inv, err := f.env.StatusOf(context.Background(), fleet.Selection{Labels: []string{"canary"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Hosts) != 1 || st.Hosts[0].Name != "web1" || len(inv.Hosts) != 1 || inv.Hosts[0].Name != "web1" {
		t.Errorf("status of canary: %+v / %+v", st.Hosts, inv.Hosts)
	}
	if _, _, err := f.env.StatusOf(context.Background(), fleet.Selection{Roles: []string{"db"}}); Code(err) != view.ExitUsage {
		t.Errorf("unknown role: %v", err)
	}
}
