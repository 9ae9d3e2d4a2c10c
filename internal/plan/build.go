package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/version"
)

// Options are what the operator asks for.
type Options struct {
	To string
	// Upfrom, when set, asserts the version the fleet runs.
	Upfrom string
	// Balancer describes the balancer in one line (lb.Balancer.Describe);
	// empty means "kind backend" from the inventory.
	Balancer string
	// CanVerify says the balancer can read back a server's state
	// (lb.Balancer.CanVerify): only then does each host's sequence end with
	// a verify action. The preview never lists a check that cannot run.
	CanVerify bool
	// Select aims the plan at some hosts (--hosts, --labels, --roles);
	// empty: the whole fleet.
	Select fleet.Selection
}

// Build plans an upgrade of inv, observed as obs, to opts.To. A fleet that
// already runs the target gives an empty plan (Empty reports it).
func Build(inv *fleet.Inventory, obs Observed, opts Options) (*Plan, error) {
	if err := version.Valid(opts.To); err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	if opts.Upfrom != "" {
		if err := version.Valid(opts.Upfrom); err != nil {
			return nil, fmt.Errorf("--upfrom: %w", err)
		}
	}
	full := inv
	inv, sel, err := selectHosts(inv, obs, opts.Select)
	if err != nil {
		return nil, err
	}
	from, deploy, skipped, err := fleetVersion(inv, obs, opts.To)
	if err != nil {
		return nil, err
	}
	if opts.Upfrom != "" && from != "" && from != opts.Upfrom {
		return nil, fmt.Errorf("%w: --upfrom %s, but %s", ErrUpfromMismatch, opts.Upfrom, whoRuns(obs, from))
	}
	if from == "" {
		from = opts.Upfrom
	}
	if from == "" {
		from = opts.To
	}
	p := newPlan(inv, obs, KindUpgrade, from, opts.To, opts.Balancer, opts.CanVerify)
	if inv.Analysis.Enabled() {
		a := inv.Analysis
		p.Settings.Analysis = &a
	}
	p.Skipped = skipped
	p.Selection = sel
	defer tagRoles(full, p)
	if len(deploy) == 0 || from == opts.To {
		what := "every host"
		if sel != nil {
			what = "every selected host"
		}
		p.Notes = append(p.Notes, fmt.Sprintf("nothing to do: %s runs %s", what, opts.To))
		return p, nil
	}
	if vf, err1 := version.Parse(from); err1 == nil {
		if vt, err2 := version.Parse(opts.To); err2 == nil && version.Compare(vt, vf) < 0 {
			return nil, fmt.Errorf("%w: %s → %s goes back; use relctl downgrade (or relctl rollback before the point of no return)", ErrIsDowngrade, from, opts.To)
		}
	}
	hops, err := Path(inv.Releases, from, opts.To)
	if err != nil {
		return nil, err
	}
	p.Hops = hops
	if err := checkSelectionPath(sel, hops); err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%d host(s) already run %s and are skipped; migrations still run (they must be idempotent)", len(skipped), opts.To))
	}

	var versions []string
	for _, h := range hops {
		versions = append(versions, h.To)
	}
	lockHost := inv.Migrations.Host
	p.Steps = make([]Step, 0, 4+2*len(deploy)+len(hops)*(len(deploy)+3))
	p.add(Step{ID: "preflight", Kind: StepPreflight, Hop: -1})
	p.add(Step{ID: "lock", Kind: StepLock, Hop: -1, Host: lockHost, Mutating: true, Undo: "released at the end of the run"})
	const stageUndo = "left in place (not serving); pruned by a later cleanup"
	for _, h := range deploy {
		p.add(Step{ID: "stage/" + h.Name, Kind: StepStage, Hop: -1, Host: h.Name, Versions: versions, Mutating: true, Undo: stageUndo})
	}
	p.stageMigrationsHost(full, sel, versions, stageUndo)
	batches := roleBatches(inv, deploy)
	multi := len(hops) > 1
	for hi, hop := range hops {
		suffix := ""
		if multi {
			suffix = "@" + hop.To
		}
		if inv.Template(fleet.CmdMigrate) != nil {
			p.add(Step{ID: "migrate" + suffix, Kind: StepMigrate, Hop: hi, Host: lockHost, From: hop.From, To: hop.To, Mutating: true,
				Undo: fmt.Sprintf("not undone: pre-deploy migrations are expand-only, %s runs on them", hop.From)})
		}
		undo := "switched back to " + hop.From
		for bi, batch := range batches {
			for _, h := range batch {
				p.add(Step{ID: "deploy/" + h.Name + suffix, Kind: StepDeploy, Hop: hi, Batch: bi + 1, Host: h.Name,
					From: hop.From, To: hop.To, Mutating: true, Undo: undo})
			}
			if bi == 0 && len(batches) > 1 && p.Settings.PauseAfterCanary {
				p.add(Step{ID: "gate/canary" + suffix, Kind: StepGate, Hop: hi, From: hop.From, To: hop.To})
			}
		}
		if b := sel.behind(hop.To); inv.Template(fleet.CmdPostMigrate) != nil && len(b) > 0 {
			// The point of no return needs the whole fleet on hop.To.
			sel.Held = append(sel.Held, heldPostMigrate(sel, b))
			p.Notes = append(p.Notes, heldPostMigrate(sel, b))
		} else if inv.Template(fleet.CmdPostMigrate) != nil {
			p.add(Step{ID: "post-migrate" + suffix, Kind: StepPostMigrate, Hop: hi, Host: lockHost, From: hop.From, To: hop.To,
				Mutating: true, PointOfNoReturn: true,
				Undo: fmt.Sprintf("cannot be undone: %s may no longer run on the schema it leaves", hop.From)})
		}
	}
	if p.Settings.Analysis != nil && !p.HasKind(StepGate) {
		p.Notes = append(p.Notes, "canary analysis: this plan has no canary gate (one batch), so nothing is analysed")
	}
	// Become commands that need /bin/sh under sudo, and so a sudoers rule
	// for /bin/sh (fleet/become_direct.go).
	p.Notes = append(p.Notes, inv.BecomeShellNotes(from, opts.To)...)
	cleanUndo := fmt.Sprintf("nothing to undo: keeps %d releases, never %s or %s", inv.KeepReleases, from, opts.To)
	for _, h := range deploy {
		p.add(Step{ID: "cleanup/" + h.Name, Kind: StepCleanup, Hop: -1, Host: h.Name, From: from, To: opts.To, Mutating: true, Undo: cleanUndo})
	}
	p.add(Step{ID: "unlock", Kind: StepUnlock, Hop: -1, Host: lockHost, Mutating: true})
	return p, nil
}

func newPlan(inv *fleet.Inventory, obs Observed, kind Kind, from, to, balancer string, canVerify bool) *Plan {
	if balancer == "" {
		balancer = inv.Balancer.Kind
		if inv.Balancer.Backend != "" {
			balancer += " backend " + inv.Balancer.Backend
		}
		if inv.Balancer.Kind == fleet.BalancerNone {
			balancer = "none: drain and enable are no-ops (hosts keep getting traffic while they restart)"
		}
	}
	actions := []Action{ActionDrain, ActionWaitIdle, ActionStop, ActionSwitch, ActionStart, ActionHealth}
	if inv.Template(fleet.CmdVersion) != nil {
		actions = append(actions, ActionVersion)
	}
	actions = append(actions, ActionEnable)
	if canVerify {
		actions = append(actions, ActionVerify)
	}
	hosts := append([]HostState(nil), obs.Hosts...)
	return &Plan{
		Schema: SchemaVersion, App: inv.App, Kind: kind, From: from, To: to,
		Environment: inv.Environment, Secrets: inv.SecretNames(),
		Actions: actions,
		Settings: Settings{
			Batches:            inv.Rollout.Batches,
			PauseAfterCanary:   *inv.Rollout.PauseAfterCanary,
			WaitBetweenBatches: Duration(inv.Rollout.WaitBetweenBatches),
			OnFailure:          inv.Rollout.OnFailure,
			MaxFailedHosts:     inv.Rollout.MaxFailedHosts,
			DrainTimeout:       Duration(inv.Balancer.DrainTimeout),
			HealthTimeout:      Duration(inv.Health.Timeout),
			HealthInterval:     Duration(inv.Health.Interval),
			StableFor:          Duration(inv.Health.StableFor),
			KeepReleases:       inv.KeepReleases,
			Balancer:           balancer,
			MigrationsHost:     inv.Migrations.Host,
			Parallel:           inv.SSH.MaxParallel,
		},
		Basis: Basis{Fingerprint: obs.Fingerprint(), Offline: obs.Offline, Hosts: hosts},
	}
}

func (p *Plan) add(s Step) { p.Steps = append(p.Steps, s) }

// fleetVersion finds the one version the fleet upgrades from, the hosts to
// deploy (canaries first) and the hosts skipped because they run target.
func fleetVersion(inv *fleet.Inventory, obs Observed, target string) (string, []fleet.Host, []Skip, error) {
	byVersion := map[string][]string{}
	states := make(map[string]HostState, len(obs.Hosts))
	for _, st := range obs.Hosts {
		states[st.Name] = st
	}
	var deploy []fleet.Host
	var skipped []Skip
	var problems []string
	for _, h := range inv.Hosts {
		st, ok := states[h.Name]
		switch {
		case !ok:
			problems = append(problems, h.Name+": not observed")
			continue
		case !st.Reachable:
			msg := h.Name + ": unreachable"
			if st.Error != "" {
				msg += ": " + st.Error
			}
			problems = append(problems, msg)
			continue
		case st.Version == "" && st.Error != "":
			problems = append(problems, h.Name+": "+st.Error)
			continue
		case st.Version == "":
			problems = append(problems, h.Name+": running version unknown (no current release)")
			continue
		case st.Version == target:
			skipped = append(skipped, Skip{Host: h.Name, Version: st.Version, Reason: "already runs " + target})
			continue
		}
		byVersion[st.Version] = append(byVersion[st.Version], h.Name)
		deploy = append(deploy, h)
	}
	if len(problems) > 0 {
		return "", nil, nil, fmt.Errorf("%w: %s", ErrUnreachable, strings.Join(problems, "; "))
	}
	if len(byVersion) > 1 {
		var parts []string
		for v, hs := range byVersion {
			parts = append(parts, fmt.Sprintf("%s on %s", strings.Join(hs, ", "), v))
		}
		sort.Strings(parts)
		return "", nil, nil, fmt.Errorf("%w: %s; relctl upgrades from one version: bring the odd hosts in line first (relctl downgrade or a plan for them)", ErrMixedFleet, strings.Join(parts, "; "))
	}
	from := ""
	for v := range byVersion {
		from = v
	}
	// Canaries first, then the rest, each in inventory order.
	sort.SliceStable(deploy, func(i, j int) bool { return deploy[i].HasLabel("canary") && !deploy[j].HasLabel("canary") })
	return from, deploy, skipped, nil
}

func whoRuns(obs Observed, v string) string {
	var hs []string
	for _, s := range obs.Hosts {
		if s.Version == v {
			hs = append(hs, s.Name)
		}
	}
	if len(hs) > 3 {
		hs = append(hs[:3], fmt.Sprintf("and %d more", len(hs)-3))
	}
	return fmt.Sprintf("%s run %s", strings.Join(hs, ", "), v)
}

// Batches splits hosts into batches of the given sizes; the last size
// repeats. Percentages are of len(hosts).
func Batches(hosts []fleet.Host, sizes []fleet.BatchSize) [][]fleet.Host {
	var out [][]fleet.Host
	total := len(hosts)
	for i := 0; len(hosts) > 0; i++ {
		n := sizes[min(i, len(sizes)-1)].Of(total)
		n = min(n, len(hosts))
		out = append(out, hosts[:n:n])
		hosts = hosts[n:]
	}
	return out
}

// Path finds the fewest hops from one version to another through the
// releases table: a release with upgrade_from accepts only versions its
// constraint allows; a version not in the table accepts any older one.
// Among equally short paths it takes the highest stops.
func Path(releases map[string]fleet.Release, from, to string) ([]Hop, error) {
	if accepts(releases, to, from) {
		return []Hop{{From: from, To: to}}, nil
	}
	vf, err := version.Parse(from)
	if err != nil {
		return nil, err
	}
	vt, err := version.Parse(to)
	if err != nil {
		return nil, err
	}
	// Candidate stops: table versions strictly between from and to, highest first.
	var stops []string
	for v := range releases {
		pv, err := version.Parse(v)
		if err != nil {
			continue
		}
		if version.Compare(pv, vf) > 0 && version.Compare(pv, vt) < 0 {
			stops = append(stops, v)
		}
	}
	sort.Slice(stops, func(i, j int) bool { return version.Less(stops[j], stops[i]) })
	// Breadth-first search from `from`.
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if accepts(releases, to, cur) {
			return unwind(prev, cur, to), nil
		}
		pc, _ := version.Parse(cur)
		for _, s := range stops {
			ps, _ := version.Parse(s)
			if _, seen := prev[s]; seen || version.Compare(ps, pc) <= 0 || !accepts(releases, s, cur) {
				continue
			}
			prev[s] = cur
			queue = append(queue, s)
		}
	}
	need := releases[to].UpgradeFrom
	return nil, fmt.Errorf("%w from %s to %s: %s needs upgrade_from %q, and no release in the releases table between them both accepts %s (directly or through other stops) and is accepted by %s; add the required stop to the releases table",
		ErrNoPath, from, to, to, need, from, to)
}

func unwind(prev map[string]string, last, to string) []Hop {
	chain := []string{to}
	for v := last; v != ""; v = prev[v] {
		chain = append(chain, v)
	}
	hops := make([]Hop, 0, len(chain)-1)
	for i := len(chain) - 1; i > 0; i-- {
		hops = append(hops, Hop{From: chain[i], To: chain[i-1]})
	}
	return hops
}

// accepts reports whether release to may be upgraded to from version from.
func accepts(releases map[string]fleet.Release, to, from string) bool {
	r, ok := releases[to]
	if !ok || r.UpgradeFrom == "" {
		return true
	}
	c, err := version.ParseConstraint(r.UpgradeFrom)
	if err != nil {
		return false
	}
	v, err := version.Parse(from)
	if err != nil {
		return false
	}
	return c.Allows(v)
}
