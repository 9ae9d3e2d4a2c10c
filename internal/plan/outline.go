package plan

import (
	"github.com/relctl/relctl/internal/fleet"
)

// Outline is the plan as its renderings show it, in parts a view can lay
// out itself (the TUI's plan pane): a title, facts, numbered entries (one
// per step, a batch's deploy steps folded into one entry), the per-host
// sequence, what rollback can undo, and notes. RenderText and
// RenderMarkdown are built from the same outline.
type Outline struct {
	Title   string
	Facts   []Fact
	Entries []OutlineEntry
	// PerHost is the per-host action sequence ("drain → wait idle …").
	PerHost string
	// PerRole, for a plan with roles, is each role's per-host sequence
	// ({"web host", "drain → …"}), which replaces PerHost.
	PerRole []Fact
	// Undo says what rollback can and cannot undo, at each point.
	Undo  []string
	Notes []string
	// Empty: the plan has nothing to do (Entries is then empty).
	Empty bool
}

// Fact is one "basis: …" line of the outline.
type Fact struct{ Name, Value string }

// OutlineEntry is one numbered entry.
type OutlineEntry struct {
	// Hop is a heading that starts a hop ("hop 1 of 2: 1.3.2 → 1.4.0"),
	// "" when the entry does not start one.
	Hop string
	// Role is a heading that starts a role's section ("role worker: 2
	// hosts, not behind the balancer …"), "" when the entry starts none.
	Role string
	Name string // "batch 1 (canary)", "post-migrate", …
	Text string
	// Hosts are the hosts of the entry (a batch, stage, cleanup).
	Hosts []string
	// Compact: the host list may be abbreviated (stage, cleanup).
	Compact bool
	// PointOfNoReturn: the entry's step is a point of no return.
	PointOfNoReturn bool
	// Gate: the entry waits for the operator.
	Gate bool
}

// Outline returns p's outline. It is pure.
func (p *Plan) Outline() Outline {
	o := p.outline()
	out := Outline{Title: o.title, PerHost: o.perHost, Undo: o.undo, Notes: o.notes, Empty: p.Empty()}
	for _, f := range o.facts {
		out.Facts = append(out.Facts, Fact{Name: f[0], Value: f[1]})
	}
	for _, r := range o.perRole {
		out.PerRole = append(out.PerRole, Fact{Name: r[0], Value: r[1]})
	}
	if out.Empty {
		return out
	}
	for _, e := range o.entries {
		out.Entries = append(out.Entries, OutlineEntry{Hop: e.hop, Role: e.role, Name: e.name, Text: e.text, Hosts: e.hosts,
			Compact: e.compact, PointOfNoReturn: e.noRet, Gate: e.gate})
	}
	return out
}

// RollbackNow answers, for a run of p that has made progress prog, what a
// rollback requested now would do, with Rollback's own decision: the
// version the hosts go back to and the hosts that go back (in order), or
// Rollback's refusal. A view that has no inventory uses it to say exactly
// what the engine will do.
func RollbackNow(p *Plan, prog Progress) (to string, hosts []string, err error) {
	f := false
	inv := &fleet.Inventory{App: p.App}
	inv.Rollout.PauseAfterCanary = &f
	rb, err := Rollback(inv, p, prog)
	if err != nil {
		return "", nil, err
	}
	return rb.To, rb.DeployHosts(), nil
}
