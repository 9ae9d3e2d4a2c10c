package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/version"
)

// RolePlan is one role of a plan (inventory roles): its hosts, the action
// list each of them runs, its batches and its health timings. A plan has
// roles only when the inventory's hosts do (fleet.Inventory.HasRoles);
// otherwise every host runs Plan.Actions with Plan.Settings, as always.
type RolePlan struct {
	Name string `json:"name"`
	// Balancer says the role's hosts are behind the fleet's balancer;
	// without it their actions have no drain, wait-idle, enable or verify.
	Balancer       bool              `json:"balancer"`
	Hosts          []string          `json:"hosts"`
	Actions        []Action          `json:"actions"`
	Batches        []fleet.BatchSize `json:"batches"`
	HealthTimeout  Duration          `json:"health_timeout"`
	HealthInterval Duration          `json:"health_interval"`
	StableFor      Duration          `json:"stable_for"`
}

// Selection is the part of the fleet a plan was aimed at (--hosts,
// --labels, --roles) and what that leaves out.
type Selection struct {
	fleet.Selection
	// LeftOut are the hosts not selected, as observed (Version empty when
	// a host could not be observed).
	LeftOut []Skip `json:"left_out"`
	// Held says why a step the whole fleet needs is not in the plan
	// (post-migrate while selected-out hosts still run the old version).
	// A run of such a plan ends partially upgraded.
	Held []string `json:"held,omitempty"`
}

// ErrSelectionPath means a selection cannot go along a multi-hop path: the
// hop after a required stop needs the whole fleet on that stop.
var ErrSelectionPath = errors.New("the selection cannot go through a required stop alone")

// balancerActions are the actions a host outside the balancer does not run.
var balancerActions = []Action{ActionDrain, ActionWaitIdle, ActionEnable, ActionVerify}

// roleActions is the action list of a role's hosts, from the plan's.
func roleActions(base []Action, inv *fleet.Inventory, role string, hosts []fleet.Host) []Action {
	var out []Action
	balanced := inv.RoleBalanced(role)
	for _, a := range base {
		if !balanced && slices.Contains(balancerActions, a) {
			continue
		}
		out = append(out, a)
	}
	// A role with its own version command checks it even when the fleet
	// has none.
	if len(hosts) > 0 && !slices.Contains(out, ActionVersion) && inv.HostTemplate(hosts[0], fleet.CmdVersion) != nil {
		if i := slices.Index(out, ActionHealth); i >= 0 {
			out = slices.Insert(out, i+1, ActionVersion)
		}
	}
	return out
}

// tagRoles gives every deploy step its host's role and fills p.Roles, in
// deploy order, when the inventory's hosts have roles.
func tagRoles(inv *fleet.Inventory, p *Plan) {
	if !inv.HasRoles() {
		return
	}
	byName := map[string]fleet.Host{}
	for _, h := range inv.Hosts {
		byName[h.Name] = h
	}
	hostsOf := map[string][]fleet.Host{}
	for i, s := range p.Steps {
		if s.Kind != StepDeploy {
			continue
		}
		h := byName[s.Host]
		r := inv.RoleOf(h)
		p.Steps[i].Role = r
		if !slices.ContainsFunc(hostsOf[r], func(x fleet.Host) bool { return x.Name == h.Name }) {
			hostsOf[r] = append(hostsOf[r], h)
		}
	}
	p.Roles = nil
	for _, r := range inv.RoleNames() {
		hs := hostsOf[r]
		if len(hs) == 0 {
			continue
		}
		health := inv.RoleHealth(r)
		rp := RolePlan{Name: r, Balancer: inv.RoleBalanced(r),
			Actions: roleActions(p.Actions, inv, r, hs), Batches: inv.RoleBatches(r),
			HealthTimeout: Duration(health.Timeout), HealthInterval: Duration(health.Interval), StableFor: Duration(health.StableFor)}
		if p.Kind != KindUpgrade {
			rp.Batches = p.Settings.Batches
		}
		for _, h := range hs {
			rp.Hosts = append(rp.Hosts, h.Name)
		}
		p.Roles = append(p.Roles, rp)
	}
	p.RolesTogether = inv.RolesTogether() && len(p.Roles) > 1
}

// RoleOf returns the role of host in p, or nil when p has no roles.
func (p *Plan) RoleOf(host string) *RolePlan {
	for i := range p.Roles {
		if slices.Contains(p.Roles[i].Hosts, host) {
			return &p.Roles[i]
		}
	}
	return nil
}

// ActionsFor is the action list host runs: its role's, or the plan's.
func (p *Plan) ActionsFor(host string) []Action {
	if r := p.RoleOf(host); r != nil {
		return r.Actions
	}
	return p.Actions
}

// HealthFor is host's health timings: its role's, or the plan's.
func (p *Plan) HealthFor(host string) (timeout, interval, stableFor Duration) {
	if r := p.RoleOf(host); r != nil {
		return r.HealthTimeout, r.HealthInterval, r.StableFor
	}
	return p.Settings.HealthTimeout, p.Settings.HealthInterval, p.Settings.StableFor
}

// roleBatches splits the hosts to deploy into batches by role: each role
// in deploy order with its own batch sizes, or, with role_order: together,
// batch i of every role at once.
func roleBatches(inv *fleet.Inventory, deploy []fleet.Host) [][]fleet.Host {
	if !inv.HasRoles() {
		return Batches(deploy, inv.Rollout.Batches)
	}
	var per [][][]fleet.Host
	for _, r := range inv.RoleNames() {
		var hs []fleet.Host
		for _, h := range deploy {
			if inv.RoleOf(h) == r {
				hs = append(hs, h)
			}
		}
		if len(hs) > 0 {
			per = append(per, Batches(hs, inv.RoleBatches(r)))
		}
	}
	var out [][]fleet.Host
	if !inv.RolesTogether() {
		for _, bs := range per {
			out = append(out, bs...)
		}
		return out
	}
	for i := 0; ; i++ {
		var b []fleet.Host
		for _, bs := range per {
			if i < len(bs) {
				b = append(b, bs[i]...)
			}
		}
		if len(b) == 0 {
			return out
		}
		out = append(out, b)
	}
}

// selectHosts applies o.Select: the inventory of the selected hosts, and
// the plan's Selection with the hosts it leaves out (nil: the whole fleet).
func selectHosts(inv *fleet.Inventory, obs Observed, sel fleet.Selection) (*fleet.Inventory, *Selection, error) {
	if sel.Empty() {
		return inv, nil, nil
	}
	hosts, err := inv.Select(sel)
	if err != nil {
		return nil, nil, err
	}
	ps := &Selection{Selection: sel}
	for _, h := range inv.Hosts {
		if slices.ContainsFunc(hosts, func(x fleet.Host) bool { return x.Name == h.Name }) {
			continue
		}
		st, _ := obs.State(h.Name)
		v := st.Version
		if !st.Reachable {
			v = ""
		}
		ps.LeftOut = append(ps.LeftOut, Skip{Host: h.Name, Version: v, Reason: "not selected (" + sel.String() + ")"})
	}
	return inv.WithHosts(hosts), ps, nil
}

// behind lists the selected-out hosts that do not run v or a later
// version (or could not be observed): the whole fleet is not on v.
func (s *Selection) behind(v string) []Skip {
	if s == nil {
		return nil
	}
	pv, err := version.Parse(v)
	if err != nil {
		return s.LeftOut
	}
	var out []Skip
	for _, h := range s.LeftOut {
		hv, err := version.Parse(h.Version)
		if h.Version == "" || err != nil || version.Compare(hv, pv) < 0 {
			out = append(out, h)
		}
	}
	return out
}

// describe names hosts and what they run: "web2, web4 are not selected and
// still run 1.0.0".
func describeBehind(hs []Skip) string {
	byV := map[string][]string{}
	var order []string
	for _, h := range hs {
		v := h.Version
		if v == "" {
			v = "?"
		}
		if _, ok := byV[v]; !ok {
			order = append(order, v)
		}
		byV[v] = append(byV[v], h.Host)
	}
	var parts []string
	for _, v := range order {
		names := byV[v]
		verb := "is"
		if len(names) > 1 {
			verb = "are"
		}
		if v == "?" {
			parts = append(parts, fmt.Sprintf("%s %s not selected and could not be observed", strings.Join(names, ", "), verb))
			continue
		}
		run := "runs"
		if len(names) > 1 {
			run = "run"
		}
		parts = append(parts, fmt.Sprintf("%s %s not selected and still %s %s", strings.Join(names, ", "), verb, run, v))
	}
	return strings.Join(parts, "; ")
}

// checkSelectionPath refuses a multi-hop path while selected-out hosts are
// behind a required stop: the hop after a stop starts only from a fleet
// wholly on it (its migrations, and the stop's post-migrate, need that).
func checkSelectionPath(sel *Selection, hops []Hop) error {
	for i := 0; i+1 < len(hops); i++ {
		if b := sel.behind(hops[i].To); len(b) > 0 {
			chain := []string{hops[0].From}
			for _, h := range hops {
				chain = append(chain, h.To)
			}
			return fmt.Errorf("%w: %s: the path %s needs the whole fleet on %s before the hop to %s starts, and %s: upgrade the selection with --to %s first, or run without %s",
				ErrSelectionPath, sel.Selection, strings.Join(chain, " → "), hops[i].To, hops[i+1].To, describeBehind(b), hops[i].To, sel.Flags())
		}
	}
	return nil
}

// HeldPostMigrate is the message of a post-migrate a selection holds back.
func heldPostMigrate(sel *Selection, b []Skip) string {
	return fmt.Sprintf("post-migrate skipped: %s — run again without %s to finish", describeBehind(b), sel.Flags())
}

// KeepSelected returns a copy of rollback plan p that sends back only the
// selected hosts, with what it leaves out recorded (Selection).
func KeepSelected(inv *fleet.Inventory, p *Plan, sel fleet.Selection) (*Plan, error) {
	if sel.Empty() {
		return p, nil
	}
	hosts, err := inv.Select(sel)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, h := range hosts {
		keep[h.Name] = true
	}
	q := *p
	q.Steps = nil
	q.Selection = &Selection{Selection: sel}
	var left []string
	for _, s := range p.Steps {
		if s.Kind == StepDeploy && !keep[s.Host] {
			q.Selection.LeftOut = append(q.Selection.LeftOut, Skip{Host: s.Host, Version: s.From, Reason: "not selected (" + sel.String() + ")"})
			left = append(left, s.Host)
			continue
		}
		q.Steps = append(q.Steps, s)
	}
	if len(left) > 0 {
		q.Notes = append(slices.Clone(p.Notes), fmt.Sprintf("not selected, left on %s: %s", p.From, strings.Join(left, ", ")))
	}
	if q.Empty() {
		q.Steps = nil
	}
	return &q, nil
}

// stageMigrationsHost stages the release on the migrations host when the
// selection leaves it out: migrations run there from the new release's
// directory. It is staged only (nothing serves it), never switched.
func (p *Plan) stageMigrationsHost(full *fleet.Inventory, sel *Selection, versions []string, undo string) {
	if sel == nil || (full.Template(fleet.CmdMigrate) == nil && full.Template(fleet.CmdPostMigrate) == nil) {
		return
	}
	m := full.Migrations.Host
	for _, h := range sel.LeftOut {
		if h.Host == m {
			p.add(Step{ID: "stage/" + m, Kind: StepStage, Hop: -1, Host: m, Versions: versions, Mutating: true, Undo: undo})
			p.Notes = append(p.Notes, fmt.Sprintf("%s is not selected but runs the migrations (migrations.host): the release is staged there, not switched", m))
			return
		}
	}
}

// Balanced reports whether host is behind the fleet's balancer in p: false
// for a host of a role with balancer: none.
func (p *Plan) Balanced(host string) bool {
	if r := p.RoleOf(host); r != nil {
		return r.Balancer
	}
	return true
}

// HeldBack returns why the plan holds back steps the whole fleet needs
// (a selection's post-migrate), or nil.
func (p *Plan) HeldBack() []string {
	if p.Selection == nil {
		return nil
	}
	return p.Selection.Held
}
