package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/version"
)

// Progress is what a run did, as its journal records it: the IDs of the
// steps that started and of those that finished.
type Progress struct {
	Started  map[string]bool
	Finished map[string]bool
	// Reverted are deploy steps whose host was already handled by its own
	// compensation (the engine reverted it after a failure, or named it
	// LEFT DRAINED): they count for which hop is being undone, but the
	// rollback plan does not list the host again.
	Reverted map[string]bool `json:",omitempty"`
	// Switched are deploy steps whose switch action completed. When it is
	// not nil, a host whose step never switched is not in the rollback
	// plan: it still runs the version the rollback would take it to.
	Switched map[string]bool `json:",omitempty"`
}

// Rollback plans the return of every host that p switched, or began to
// switch, to the version it ran before: in reverse batches — the hosts of
// the last batch that started go back first, together, then the batch
// before, and so on, the canary last — so a batch goes back with the
// parallelism it went forward with, and with the same drain and health
// discipline (no host gets traffic before it is healthy). It is refused
// once a post-migrate step of the hop being undone has started.
func Rollback(inv *fleet.Inventory, p *Plan, prog Progress) (*Plan, error) {
	hop := -1
	for _, s := range p.Steps {
		if s.Kind == StepDeploy && prog.Started[s.ID] {
			hop = max(hop, s.Hop)
		}
	}
	for _, s := range p.Steps {
		if s.Kind == StepPostMigrate && prog.Started[s.ID] && s.Hop >= hop {
			return nil, fmt.Errorf("%w: %s started, so %s can no longer run on the schema; only relctl downgrade along a version's downgrade_to can go back", ErrPastPointOfNoReturn, s.ID, s.From)
		}
	}
	obs := Observed{Hosts: p.Basis.Hosts, Offline: p.Basis.Offline}
	if hop < 0 {
		r := newPlan(inv, obs, KindRollback, p.To, p.From, p.Settings.Balancer, slices.Contains(p.Actions, ActionVerify))
		r.Notes = append(r.Notes, "nothing to roll back: no host was switched")
		return r, nil
	}
	h := p.Hops[hop]
	r := newPlan(inv, obs, KindRollback, h.To, h.From, p.Settings.Balancer, slices.Contains(p.Actions, ActionVerify))
	r.Hops = []Hop{{From: h.To, To: h.From}}
	r.Settings.PauseAfterCanary = false
	r.Settings.WaitBetweenBatches = 0
	r.Settings.OnFailure = fleet.OnFailurePause // a failing rollback stops for the operator
	var hosts, never []string
	var batches [][]string // the forward batches' hosts going back, in forward order
	lastBatch := -1
	for _, s := range p.Steps {
		if s.Kind != StepDeploy || s.Hop != hop || !prog.Started[s.ID] || prog.Reverted[s.ID] {
			continue
		}
		if prog.Switched != nil && !prog.Switched[s.ID] {
			never = append(never, s.Host)
			continue
		}
		hosts = append(hosts, s.Host)
		if s.Batch != lastBatch || len(batches) == 0 {
			batches = append(batches, nil)
			lastBatch = s.Batch
		}
		batches[len(batches)-1] = append(batches[len(batches)-1], s.Host)
	}
	if len(never) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("not in this rollback: %s never switched to %s", strings.Join(never, ", "), h.To))
	}
	if len(hosts) == 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("nothing to roll back: every host of the hop to %s is already back on %s", h.To, h.From))
		return r, nil
	}
	slices.Reverse(batches)
	lockHost := p.Settings.MigrationsHost
	r.add(Step{ID: "preflight", Kind: StepPreflight, Hop: -1})
	r.add(Step{ID: "lock", Kind: StepLock, Hop: -1, Host: lockHost, Mutating: true})
	r.Settings.Batches = nil
	var order []string
	for i, b := range batches {
		slices.Reverse(b)
		r.Settings.Batches = append(r.Settings.Batches, fleet.BatchSize{N: len(b)})
		for _, host := range b {
			r.add(Step{ID: "rollback/" + host, Kind: StepDeploy, Hop: 0, Batch: i + 1, Host: host, From: h.To, To: h.From, Mutating: true})
		}
		order = append(order, strings.Join(b, ", "))
	}
	r.add(Step{ID: "unlock", Kind: StepUnlock, Hop: -1, Host: lockHost, Mutating: true})
	r.Notes = append(r.Notes, fmt.Sprintf("goes back in reverse batches, each in parallel, as they went forward: %s", strings.Join(order, "; then ")))
	tagRoles(inv, r)
	if _, ok := p.Step(migrateID(p, hop)); ok && prog.Started[migrateID(p, hop)] {
		r.Notes = append(r.Notes, fmt.Sprintf("the pre-deploy migration to %s stays: it is expand-only and %s runs on it", h.To, h.From))
	}
	return r, nil
}

func migrateID(p *Plan, hop int) string {
	for _, s := range p.Steps {
		if s.Kind == StepMigrate && s.Hop == hop {
			return s.ID
		}
	}
	return ""
}

// LastRun is what the journal says of the latest run, for downgrades.
type LastRun struct {
	From, To     string
	PostMigrated bool
}

// DowngradeOptions are what the operator asks of an emergency downgrade.
type DowngradeOptions struct {
	To       string
	Reason   string
	Last     *LastRun // nil when there is no journal
	Balancer string
	// CanVerify: see Options.CanVerify.
	CanVerify bool
}

// Downgrade plans an emergency downgrade: only to a version the running
// release lists in downgrade_to, or, before any post-migrate, back to the
// last run's upfrom. It goes in the emergency batches, each batch's hosts
// in parallel (as an upgrade's); it uses the emergency drain timeout, has
// no canary pause and runs no migrations.
func Downgrade(inv *fleet.Inventory, obs Observed, o DowngradeOptions) (*Plan, error) {
	if err := version.Valid(o.To); err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	if strings.TrimSpace(o.Reason) == "" {
		return nil, fmt.Errorf("a downgrade needs a reason (--reason): it is written to the audit record")
	}
	cur, deploy, skipped, err := fleetVersion(inv, obs, o.To)
	if err != nil {
		return nil, err
	}
	p := newPlan(inv, obs, KindDowngrade, cur, o.To, o.Balancer, o.CanVerify)
	p.Reason = o.Reason
	p.Skipped = skipped
	if len(deploy) == 0 {
		p.From = o.To
		p.Notes = append(p.Notes, fmt.Sprintf("nothing to do: every host runs %s", o.To))
		return p, nil
	}
	declared := inv.Releases[cur].DowngradeTo
	back := o.Last != nil && o.Last.To == cur && o.Last.From == o.To && !o.Last.PostMigrated
	if !slices.Contains(declared, o.To) && !back {
		why := fmt.Sprintf("%s declares no downgrade_to", cur)
		if len(declared) > 0 {
			why = fmt.Sprintf("%s declares downgrade_to [%s]", cur, strings.Join(declared, ", "))
		}
		if o.Last != nil && o.Last.To == cur && o.Last.From == o.To && o.Last.PostMigrated {
			why += fmt.Sprintf("; the last run's post-migrate to %s ran, so going back to %s is past the point of no return", cur, o.To)
		}
		return nil, fmt.Errorf("%w: %s → %s: %s", ErrDowngradeRefused, cur, o.To, why)
	}
	p.Hops = []Hop{{From: cur, To: o.To}}
	p.Settings.Batches = inv.Emergency.Batches
	p.Settings.PauseAfterCanary = false
	p.Settings.DrainTimeout = Duration(inv.Emergency.DrainTimeout)
	p.Settings.WaitBetweenBatches = 0
	p.Settings.OnFailure = fleet.OnFailurePause
	lockHost := inv.Migrations.Host
	p.add(Step{ID: "preflight", Kind: StepPreflight, Hop: -1})
	p.add(Step{ID: "lock", Kind: StepLock, Hop: -1, Host: lockHost, Mutating: true})
	for _, h := range deploy {
		p.add(Step{ID: "stage/" + h.Name, Kind: StepStage, Hop: -1, Host: h.Name, Versions: []string{o.To}, Mutating: true})
	}
	for bi, batch := range Batches(deploy, inv.Emergency.Batches) {
		for _, h := range batch {
			p.add(Step{ID: "deploy/" + h.Name, Kind: StepDeploy, Hop: 0, Batch: bi + 1, Host: h.Name, From: cur, To: o.To, Mutating: true,
				Undo: fmt.Sprintf("an upgrade back to %s", cur)})
		}
	}
	p.add(Step{ID: "unlock", Kind: StepUnlock, Hop: -1, Host: lockHost, Mutating: true})
	if back {
		p.Notes = append(p.Notes, fmt.Sprintf("allowed because the last run came from %s and its post-migrate has not run", o.To))
	}
	p.Notes = append(p.Notes, "no migrations run in a downgrade; no canary pause")
	tagRoles(inv, p)
	return p, nil
}

// Repair plans the return to service of hosts an earlier run left drained
// (and possibly stopped), each on the release it runs (versions, from the
// observation): start → healthy → version (when the inventory has one) →
// enable → verify (when the balancer can), one host at a time, under the
// lock. It never switches a release.
func Repair(inv *fleet.Inventory, obs Observed, hosts []string, canVerify bool) (*Plan, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("name the host(s) to repair")
	}
	var steps []Step
	v := ""
	for i, name := range hosts {
		st, ok := obs.State(name)
		if !slices.ContainsFunc(inv.Hosts, func(h fleet.Host) bool { return h.Name == name }) {
			return nil, fmt.Errorf("%s is not a host of %s", name, inv.File)
		}
		switch {
		case !ok || !st.Reachable:
			return nil, fmt.Errorf("%w: %s: %s", ErrUnreachable, name, st.Error)
		case st.Version == "":
			return nil, fmt.Errorf("%s: no release to bring back (current is missing or invalid): %s", name, st.Error)
		}
		if v == "" {
			v = st.Version
		}
		steps = append(steps, Step{ID: "repair/" + name, Kind: StepDeploy, Hop: 0, Batch: i + 1, Host: name, From: st.Version, To: st.Version, Mutating: true,
			Undo: "stopped again and left out of rotation"})
	}
	p := newPlan(inv, obs, KindRepair, v, v, "", canVerify)
	p.Hops = []Hop{{From: v, To: v}}
	p.Settings.Batches = []fleet.BatchSize{{N: 1}}
	p.Settings.PauseAfterCanary = false
	p.Settings.OnFailure = fleet.OnFailurePause
	acts := []Action{ActionStart, ActionHealth}
	if inv.Template(fleet.CmdVersion) != nil {
		acts = append(acts, ActionVersion)
	}
	acts = append(acts, ActionEnable)
	if canVerify {
		acts = append(acts, ActionVerify)
	}
	p.Actions = acts
	lockHost := inv.Migrations.Host
	p.add(Step{ID: "lock", Kind: StepLock, Hop: -1, Host: lockHost, Mutating: true})
	p.Steps = append(p.Steps, steps...)
	p.add(Step{ID: "unlock", Kind: StepUnlock, Hop: -1, Host: lockHost, Mutating: true})
	p.Notes = append(p.Notes, fmt.Sprintf("brings %s back into service on the release each runs; switches nothing", strings.Join(hosts, ", ")))
	tagRoles(inv, p)
	return p, nil
}

// DropSettled returns a copy of rollback plan p without the hosts that obs
// shows already on their rollback target (a host that never switched, or
// that its own compensation sent back): a rollback touches only hosts it
// takes back. It returns the hosts it dropped.
func DropSettled(p *Plan, obs Observed) (*Plan, []string) {
	q := *p
	q.Steps = nil
	var dropped []string
	for _, s := range p.Steps {
		if s.Kind == StepDeploy {
			if st, ok := obs.State(s.Host); ok && st.Reachable && st.Version == s.To {
				dropped = append(dropped, s.Host)
				continue
			}
		}
		q.Steps = append(q.Steps, s)
	}
	if len(dropped) > 0 {
		q.Notes = append(slices.Clone(p.Notes), fmt.Sprintf("already on %s, not touched: %s", p.To, strings.Join(dropped, ", ")))
	}
	return &q, dropped
}
