package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/shell"
	"github.com/relctl/relctl/internal/version"
	"github.com/relctl/relctl/internal/view"
)

// ErrImmutable means a version's local artifact differs from the release
// of that version a host runs: a release version is never rebuilt.
var ErrImmutable = errors.New("a release version is immutable")

// Prepared is an operation's answer before anything changes: the plan to
// show and confirm (or why there is nothing to do), and what Start needs
// to run it.
type Prepared struct {
	// Plan is what would run; nil when Nothing is set.
	Plan *plan.Plan
	// Nothing, when not empty, says why there is nothing to start (exit 0).
	Nothing string
	// Question is the confirmation to ask before Start.
	Question string
	// Observed is the observation the plan was checked against.
	Observed plan.Observed

	// Resume is the unfinished run this continues (same run id, its
	// journal appended to).
	Resume *journal.Run
	// Supersedes is the unfinished run this rollback replaces: it is
	// marked superseded once the rollback holds the lock, not before.
	Supersedes *journal.Run
	// TakeOver is Supersedes' lock as read, when its dead process still
	// holds it: the rollback continues under it.
	TakeOver *rollout.LockInfo
	// Settle is an unfinished run with nothing to roll back: Settle
	// closes it and releases its lock.
	Settle *journal.Run
	// Force starts with balancer servers already out of rotation
	// (downgrade, repair, apply --force).
	Force bool
}

// unfinished is this machine's unfinished run, or nil; a journal that
// cannot be read is an error naming it (it may hold the unfinished run).
func (e *Env) unfinished() (*journal.Run, error) {
	r, err := journal.Unfinished(e.JournalDir)
	if err != nil {
		return nil, fail(view.ExitError, err)
	}
	return r, nil
}

// RefuseUnfinished stops a new run while this machine's journal holds an
// unfinished one: the fleet is half-way and the operator must choose.
func (e *Env) RefuseUnfinished() error {
	r, err := e.unfinished()
	if err != nil || r == nil {
		return err
	}
	return fail(view.ExitLocked, fmt.Errorf("run %s by %s (%s %s → %s) did not finish: finish it with relctl resume, or roll it back with relctl resume --rollback",
		r.ID, r.Owner, r.Plan.Kind, r.Plan.From, r.Plan.To))
}

// UpgradeOptions are what the operator asks of an upgrade plan.
type UpgradeOptions struct {
	To     string
	Upfrom string
	// Offline plans from Upfrom without looking at the hosts (relctl plan
	// --upfrom): such a plan is only ever shown or saved, never started.
	Offline bool
	// Force: see Prepared.Force.
	Force bool
	// Preview only shows the plan (relctl plan): an unfinished run does
	// not stop it.
	Preview bool
	// Select aims the plan at some hosts (--hosts, --labels, --roles).
	Select fleet.Selection
}

// PlanUpgrade observes the fleet and plans the upgrade to o.To. A version
// whose local artifact differs from the release a host runs is refused
// (ErrImmutable), never "nothing to do".
func (e *Env) PlanUpgrade(ctx context.Context, o UpgradeOptions) (*Prepared, error) {
	if !o.Offline && !o.Preview {
		if err := e.RefuseUnfinished(); err != nil {
			return nil, err
		}
	}
	var obs plan.Observed
	if o.Offline {
		obs = plan.Assume(e.Inv, o.Upfrom)
	} else {
		var err error
		if obs, err = e.Observe(ctx); err != nil {
			return nil, err
		}
	}
	p, err := plan.Build(e.Inv, obs, plan.Options{To: o.To, Upfrom: o.Upfrom, CanVerify: CanVerify(e.Inv), Select: o.Select})
	if err != nil {
		return nil, fail(PlanErrCode(err), err)
	}
	if err := e.stampInputs(p, o.Upfrom); err != nil {
		return nil, err
	}
	if !o.Select.Empty() {
		sel := o.Select
		p.Inputs.Selection = &sel
	}
	e.annotate(p)
	if !o.Offline {
		if err := e.CheckImmutable(ctx, p, obs); err != nil {
			return nil, err
		}
	}
	pr := &Prepared{Plan: p, Observed: obs, Force: o.Force, Question: fmt.Sprintf("apply this plan to %s?", plural(len(p.DeployHosts()), "host"))}
	if p.Empty() {
		pr.Nothing = fmt.Sprintf("nothing to do: every host runs %s", p.To)
	}
	return pr, nil
}

// stampInputs records in p what it was built from, so that a saved plan
// can be rebuilt and compared (LoadPlan).
func (e *Env) stampInputs(p *plan.Plan, upfrom string) error {
	d, err := inventoryDigest(e.Inv)
	if err != nil {
		return fail(view.ExitUsage, err)
	}
	p.Inputs = &plan.Inputs{Inventory: d, To: p.To, Upfrom: upfrom, CanVerify: CanVerify(e.Inv)}
	return nil
}

// InventoryDigest is the sha256 of the inventory file's bytes.
func InventoryDigest(path string) (string, error) {
	sum, err := SHA256File(path)
	if err != nil {
		return "", fmt.Errorf("inventory digest: %w", err)
	}
	return sum, nil
}

// CheckImmutable refuses a plan whose target (or a hop's) is a version a
// host already runs from a different artifact than the local one: the
// sha256 each release records on its host (releases/<v>/.relctl-sha256)
// is compared with the local artifact's. Hosts without the record
// (deployed by other means) and versions without a local artifact are not
// compared.
func (e *Env) CheckImmutable(ctx context.Context, p *plan.Plan, obs plan.Observed) error {
	targets := map[string]bool{p.To: true}
	for _, h := range p.Hops {
		targets[h.To] = true
	}
	sums := map[string]string{}
	for v := range targets {
		path, err := ArtifactPath(e.Inv, v)
		if err != nil {
			continue
		}
		if sum, err := SHA256File(path); err == nil {
			sums[v] = sum
		}
	}
	var errs []error
	for _, h := range obs.Hosts {
		local, ok := sums[h.Version]
		if !ok || !h.Reachable {
			continue
		}
		host, ok := e.host(h.Name)
		if !ok {
			continue
		}
		f := strings.TrimRight(e.Inv.HostPath(host), "/") + "/releases/" + h.Version + "/.relctl-sha256"
		cctx, cancel := context.WithTimeout(ctx, e.Inv.Timeouts.Observe)
		out, err := e.output(cctx, h.Name, fmt.Sprintf("f=%s; if [ -f \"$f\" ]; then cat \"$f\"; fi", shell.Quote(f)))
		cancel()
		if err != nil {
			return fail(view.ExitError, fmt.Errorf("%s: read the release's sha256: %w", h.Name, err))
		}
		remote := strings.TrimSpace(out)
		if remote == "" || remote == local {
			continue
		}
		path, _ := ArtifactPath(e.Inv, h.Version)
		if rel, err := filepath.Rel(filepath.Dir(e.Inv.File), path); err == nil && !strings.HasPrefix(rel, "..") {
			path = rel
		}
		errs = append(errs, fmt.Errorf("%s on %s differs from %s: %w — build %s (sha256 %.12s… on the host, %.12s… here)",
			h.Version, h.Name, path, ErrImmutable, nextPatch(h.Version), remote, local))
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return fail(view.ExitUsage, errors.Join(errs...))
	}
	return nil
}

// LoadPlan reads a plan saved by relctl plan --format json, rebuilds it
// from the inputs it carries (the inventory, the observed basis, the
// options) and refuses any difference from the file, naming the first
// differing step: a hand-edited or truncated plan never runs. The plan
// must then still hold on the fleet as observed now (plan.CheckBasis);
// an offline plan (--upfrom) is built again from what the fleet runs.
func (e *Env) LoadPlan(ctx context.Context, data []byte, source string) (*Prepared, error) {
	if err := e.RefuseUnfinished(); err != nil {
		return nil, err
	}
	p, err := plan.UnmarshalJSON(data)
	if err != nil {
		return nil, fail(view.ExitUsage, fmt.Errorf("%s: %w", source, err))
	}
	if p.Kind != plan.KindUpgrade {
		return nil, fail(view.ExitUsage, fmt.Errorf("%s: a saved %s plan cannot be applied: relctl apply --plan takes upgrade plans", source, p.Kind))
	}
	if p.Inputs == nil {
		return nil, fail(view.ExitUsage, fmt.Errorf("%s: the plan carries no inputs (inventory digest, options): save it again with this relctl's relctl plan --format json", source))
	}
	d, err := inventoryDigest(e.Inv)
	if err != nil {
		return nil, fail(view.ExitUsage, err)
	}
	if d != p.Inputs.Inventory {
		return nil, fail(view.ExitUsage, fmt.Errorf("%s: %w: the inventory %s changed since the plan was made (sha256 %.12s then, %.12s now): run relctl plan again", source, plan.ErrStalePlan, e.Inv.File, p.Inputs.Inventory, d))
	}
	basis := plan.Observed{Offline: p.Basis.Offline, Hosts: p.Basis.Hosts}
	if err := version.Valid(p.Inputs.To); err != nil {
		return nil, fail(view.ExitUsage, fmt.Errorf("%s: inputs.to: %w", source, err))
	}
	q, err := plan.Build(e.Inv, basis, plan.Options{To: p.Inputs.To, Upfrom: p.Inputs.Upfrom, CanVerify: p.Inputs.CanVerify, Select: p.Inputs.Selection.OrAll()})
	if err != nil {
		return nil, fail(view.ExitUsage, fmt.Errorf("%s: the plan cannot be rebuilt from its inputs: %w", source, err))
	}
	q.Inputs = p.Inputs
	if diff := plan.Diff(p, q); diff != "" {
		return nil, fail(view.ExitUsage, fmt.Errorf("%s differs from the plan its inputs give, so it was edited or cut: %s; run relctl plan again", source, diff))
	}
	if q.Inputs.CanVerify != CanVerify(e.Inv) {
		return nil, fail(view.ExitUsage, fmt.Errorf("%s: the balancer's verify ability changed since the plan was made: run relctl plan again", source))
	}
	obs, err := e.Observe(ctx)
	if err != nil {
		return nil, err
	}
	if p.Basis.Offline {
		// An offline plan assumed a version: build it again from what the
		// fleet really runs; it must still hold.
		if q, err = plan.Build(e.Inv, obs, plan.Options{To: p.To, Upfrom: p.From, CanVerify: CanVerify(e.Inv), Select: p.Inputs.Selection.OrAll()}); err != nil {
			return nil, fail(PlanErrCode(err), fmt.Errorf("%w: %w", plan.ErrStalePlan, err))
		}
		if err := e.stampInputs(q, p.From); err != nil {
			return nil, err
		}
		q.Inputs.Selection = p.Inputs.Selection
	} else if err := plan.CheckBasis(q, obs); err != nil {
		return nil, fail(view.ExitError, fmt.Errorf("%s: %w", source, err))
	}
	if err := e.CheckImmutable(ctx, q, obs); err != nil {
		return nil, err
	}
	e.annotate(q)
	pr := &Prepared{Plan: q, Observed: obs, Question: fmt.Sprintf("apply this plan to %s?", plural(len(q.DeployHosts()), "host"))}
	if q.Empty() {
		pr.Nothing = fmt.Sprintf("nothing to do: every host runs %s", q.To)
	}
	return pr, nil
}

// PlanRollback plans sending back every host the last (finished) run
// switched, before its point of no return.
func (e *Env) PlanRollback(ctx context.Context) (*Prepared, error) {
	return e.PlanRollbackOf(ctx, fleet.Selection{})
}

// PlanRollbackOf is PlanRollback for the selected hosts only (--hosts,
// --labels, --roles); the plan names the switched hosts it leaves out.
func (e *Env) PlanRollbackOf(ctx context.Context, sel fleet.Selection) (*Prepared, error) {
	if _, err := e.Inv.Select(sel); err != nil {
		return nil, fail(view.ExitUsage, err)
	}
	last, lerr := journal.Latest(e.JournalDir)
	if last == nil {
		if lerr != nil {
			return nil, fail(view.ExitError, lerr)
		}
		return nil, fail(view.ExitUsage, fmt.Errorf("no run to roll back in %s", e.JournalDir))
	}
	if last.Resumable() {
		return nil, fail(view.ExitUsage, fmt.Errorf("run %s did not finish: use relctl resume --rollback", last.ID))
	}
	if last.Plan.Kind != plan.KindUpgrade {
		return nil, fail(view.ExitUsage, fmt.Errorf("the last run (%s) was a %s %s → %s, not an upgrade: nothing to roll back", last.ID, last.Plan.Kind, last.Plan.From, last.Plan.To))
	}
	p, err := plan.Rollback(e.Inv, last.Plan, last.Progress)
	if err != nil {
		return nil, fail(view.ExitUsage, err)
	}
	if p, err = plan.KeepSelected(e.Inv, p, sel); err != nil {
		return nil, fail(view.ExitUsage, err)
	}
	if p.Empty() && !sel.Empty() {
		return &Prepared{Nothing: fmt.Sprintf("nothing to roll back: the last run switched no host of %s", sel)}, nil
	}
	if p.Empty() {
		return &Prepared{Nothing: "nothing to roll back: the last run switched no host"}, nil
	}
	obs, err := e.Observe(ctx)
	if err != nil {
		return nil, err
	}
	p.Basis = plan.Basis{Fingerprint: obs.Fingerprint(), Hosts: obs.Hosts}
	if err := plan.CheckBasis(p, obs); err != nil {
		return nil, fail(view.ExitError, fmt.Errorf("the fleet does not agree with the journal of run %s: %w", last.ID, err))
	}
	p, _ = plan.DropSettled(p, obs)
	if p.Empty() {
		return &Prepared{Nothing: fmt.Sprintf("nothing to roll back: every host the last run switched is already on %s", p.To), Observed: obs}, nil
	}
	e.annotate(p)
	return &Prepared{Plan: p, Observed: obs, Question: fmt.Sprintf("roll %s back to %s?", plural(len(p.DeployHosts()), "host"), p.To)}, nil
}

// PlanDowngrade observes the fleet and plans an emergency downgrade.
func (e *Env) PlanDowngrade(ctx context.Context, to, reason string) (*Prepared, error) {
	if err := e.RefuseUnfinished(); err != nil {
		return nil, err
	}
	var last *plan.LastRun
	r, err := journal.Latest(e.JournalDir)
	if r == nil && err != nil {
		return nil, fail(view.ExitError, err)
	}
	if r != nil && r.Original != nil {
		last = &plan.LastRun{From: r.Original.From, To: r.Original.To, PostMigrated: r.PostMigrated}
	}
	obs, err := e.Observe(ctx)
	if err != nil {
		return nil, err
	}
	p, err := plan.Downgrade(e.Inv, obs, plan.DowngradeOptions{To: to, Reason: reason, Last: last, CanVerify: CanVerify(e.Inv)})
	if err != nil {
		return nil, fail(PlanErrCode(err), err)
	}
	e.annotate(p)
	p.Reason = reason // the downgrade's own (required) reason
	pr := &Prepared{Plan: p, Observed: obs, Force: true, Question: fmt.Sprintf("EMERGENCY DOWNGRADE of %s to %s?", plural(len(p.DeployHosts()), "host"), to)}
	if p.Empty() {
		pr.Nothing = fmt.Sprintf("nothing to do: every host runs %s", to)
	}
	return pr, nil
}

// PlanRepair observes the fleet and plans bringing hosts back into service.
func (e *Env) PlanRepair(ctx context.Context, hosts []string) (*Prepared, error) {
	if err := e.RefuseUnfinished(); err != nil {
		return nil, err
	}
	obs, err := e.Observe(ctx)
	if err != nil {
		return nil, err
	}
	p, err := plan.Repair(e.Inv, obs, hosts, CanVerify(e.Inv))
	if err != nil {
		return nil, fail(view.ExitUsage, err)
	}
	e.annotate(p)
	// The servers are out of rotation: that is what is repaired.
	return &Prepared{Plan: p, Observed: obs, Force: true, Question: fmt.Sprintf("bring %s back into service?", strings.Join(hosts, ", "))}, nil
}

// ReadPlanFile reads a saved plan file for LoadPlan.
func ReadPlanFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fail(view.ExitUsage, err)
	}
	return b, nil
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}

// nextPatch is the version to build instead of an immutable one: v with
// its last number one higher ("1.1.0" → "1.1.1").
func nextPatch(v string) string {
	core, _, _ := strings.Cut(v, "-")
	i := strings.LastIndexByte(core, '.')
	n, err := strconv.Atoi(core[i+1:])
	if err != nil {
		return "a new version"
	}
	return core[:i+1] + strconv.Itoa(n+1)
}

func (e *Env) host(name string) (fleet.Host, bool) {
	for _, h := range e.Inv.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return fleet.Host{}, false
}
