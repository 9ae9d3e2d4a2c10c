package plan

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/relctl/relctl/internal/analysis"
)

// outline is the plan as the renderings show it: a title, a few facts, then
// numbered entries (one per step, deploy steps folded into their batch).
type outline struct {
	title   string
	facts   [][2]string
	entries []entry
	perHost string
	perRole [][2]string // with roles: each role's per-host sequence
	undo    []string
	notes   []string
}

type entry struct {
	hop     string // a heading before the entry ("hop 1 of 2: 1.3.2 → 1.4.0")
	role    string // a role's section heading before the entry
	name    string
	text    string
	hosts   []string
	noRet   bool
	gate    bool
	compact bool
}

func (p *Plan) outline() outline {
	o := outline{}
	app := p.App
	if p.Environment != "" {
		app += " [" + p.Environment + "]"
	}
	switch p.Kind {
	case KindUpgrade:
		o.title = fmt.Sprintf("%s: upgrade %s → %s", app, p.From, p.To)
	case KindRollback:
		o.title = fmt.Sprintf("%s: ROLLBACK %s → %s", app, p.From, p.To)
	case KindDowngrade:
		o.title = fmt.Sprintf("%s: EMERGENCY DOWNGRADE %s → %s", app, p.From, p.To)
	case KindRepair:
		o.title = fmt.Sprintf("%s: REPAIR %s", app, strings.Join(p.DeployHosts(), ", "))
	}

	if len(p.Hops) > 1 {
		chain := []string{p.Hops[0].From}
		for _, h := range p.Hops {
			chain = append(chain, h.To)
		}
		o.title += fmt.Sprintf(" in %d hops (%s)", len(p.Hops), strings.Join(chain, " → "))
	}
	basis := fmt.Sprintf("%d hosts observed, fingerprint %s", len(p.Basis.Hosts), p.Basis.Fingerprint)
	if p.Basis.Offline {
		basis = fmt.Sprintf("offline: assumed every host runs %s (fingerprint %s; apply observes the fleet itself)", p.From, p.Basis.Fingerprint)
	}
	o.facts = append(o.facts, [2]string{"basis", basis})
	if p.Reason != "" {
		o.facts = append(o.facts, [2]string{"reason", p.Reason})
	}
	if p.Ticket != "" {
		o.facts = append(o.facts, [2]string{"ticket", p.Ticket})
	}
	s := p.Settings
	o.facts = append(o.facts, [2]string{"balancer", s.Balancer})
	if len(p.Secrets) > 0 {
		o.facts = append(o.facts, [2]string{"secrets", strings.Join(p.Secrets, ", ") + " (resolved when the run starts; values never shown)"})
	}
	bs := make([]string, len(s.Batches))
	for i, b := range s.Batches {
		bs[i] = b.String()
	}
	policy := fmt.Sprintf("batches %s (the last size repeats)", strings.Join(bs, ", "))
	if s.PauseAfterCanary {
		policy += "; pause after the canary"
	} else {
		policy += "; no canary pause"
	}
	if s.WaitBetweenBatches > 0 {
		policy += fmt.Sprintf("; wait %s between batches", s.WaitBetweenBatches)
	}
	policy += fmt.Sprintf("; on failure: %s (failure budget: %s)", s.OnFailure, hostCount(s.MaxFailedHosts))
	o.facts = append(o.facts, [2]string{"rollout", policy})
	if len(p.Skipped) > 0 {
		var sk []string
		for _, x := range p.Skipped {
			sk = append(sk, x.Host)
		}
		o.facts = append(o.facts, [2]string{"skipped", fmt.Sprintf("%s (already on %s)", strings.Join(sk, ", "), p.To)})
	}
	o.facts = append(o.facts, p.selectionFacts()...)
	o.perRole = p.rolePerHost()

	var acts []string
	for _, a := range p.Actions {
		acts = append(acts, actionText(a, s))
	}
	o.perHost = strings.Join(acts, " → ")

	var stage []string
	var stageVersions []string
	lastHop := -2
	lastRole := ""
	flush := func() {
		if len(stage) > 0 {
			o.entries = append(o.entries, entry{name: "stage", text: fmt.Sprintf("upload, verify (sha256) and unpack %s on %s in parallel — nothing serves it yet", strings.Join(stageVersions, ", "), hostCount(len(stage))), hosts: stage, compact: true})
			stage = nil
		}
	}
	for i := 0; i < len(p.Steps); i++ {
		st := p.Steps[i]
		if st.Kind == StepStage {
			stage = append(stage, st.Host)
			stageVersions = st.Versions
			continue
		}
		flush()
		e := entry{name: st.ID}
		if st.Hop >= 0 && st.Hop != lastHop && len(p.Hops) > 1 {
			e.hop = fmt.Sprintf("hop %d of %d: %s → %s", st.Hop+1, len(p.Hops), p.Hops[st.Hop].From, p.Hops[st.Hop].To)
		}
		if st.Hop >= 0 {
			if st.Hop != lastHop {
				lastRole = ""
			}
			lastHop = st.Hop
		}
		switch st.Kind {
		case StepPreflight:
			e.text = p.preflightText()
		case StepLock:
			e.text = fmt.Sprintf("take the deploy lock on %s (a second operator is refused)", st.Host)
		case StepMigrate:
			e.text = fmt.Sprintf("pre-deploy migration, once, on %s from the %s release — before any host switches; if it fails, no host has been touched", st.Host, st.To)
		case StepDeploy:
			// Fold the batch: every consecutive deploy step with the same
			// batch.
			j := i
			for j < len(p.Steps) && p.Steps[j].Kind == StepDeploy && p.Steps[j].Batch == st.Batch && p.Steps[j].Hop == st.Hop {
				e.hosts = append(e.hosts, p.Steps[j].Host)
				j++
			}
			i = j - 1
			if h := p.roleHeading(st); h != "" && h != lastRole {
				e.role, lastRole = h, h
			}
			label := fmt.Sprintf("batch %d", st.Batch)
			if st.Batch == 1 && p.Kind == KindUpgrade && len(p.DeployHostsOfHop(st.Hop)) > len(e.hosts) {
				label += " (canary)"
			}
			verb := "deploy"
			if p.Kind == KindRollback {
				verb = "roll back"
			}
			e.name = label
			e.text = fmt.Sprintf("%s %s → %s on %s", verb, st.From, st.To, hostCount(len(e.hosts)))
			if p.RolesTogether {
				e.text += p.roleCounts(e.hosts)
			}
			if len(e.hosts) > 1 {
				e.text += ", in parallel"
			}
			if p.Kind == KindRollback {
				// Batches go back in the reverse of the upgrade's order.
				e.text += ", reverse order of the upgrade"
			}
			if p.Kind == KindRepair {
				e.name = "repair"
				e.text = fmt.Sprintf("start %s on %s again and put it back into rotation once healthy", st.To, st.Host)
			}
		case StepGate:
			e.gate = true
			e.text = fmt.Sprintf("GATE: wait for the operator to promote the canary or roll back (--yes approves)")
			if a := p.Settings.Analysis; a != nil {
				e.text = "GATE with canary analysis: " + analysis.Describe(*a, true) + " (--yes answers where the operator is asked)"
			}
		case StepPostMigrate:
			e.noRet = true
			e.text = fmt.Sprintf("post-deploy migration, once, on %s, only when every host is verified on %s", st.Host, st.To)
		case StepCleanup:
			j := i
			var hs []string
			for j < len(p.Steps) && p.Steps[j].Kind == StepCleanup {
				hs = append(hs, p.Steps[j].Host)
				j++
			}
			i = j - 1
			e.name = "cleanup"
			e.hosts = hs
			e.compact = true
			e.text = fmt.Sprintf("prune releases beyond %d per host, never %s or %s", s.KeepReleases, st.From, st.To)
		case StepUnlock:
			e.text = fmt.Sprintf("release the lock on %s and write the audit record on every host touched", st.Host)
		}
		o.entries = append(o.entries, e)
	}
	flush()
	o.undo = p.undoText()
	o.notes = p.Notes
	return o
}

// DeployHostsOfHop returns the hosts deployed in hop h.
func (p *Plan) DeployHostsOfHop(h int) []string {
	var out []string
	for _, s := range p.Steps {
		if s.Kind == StepDeploy && s.Hop == h {
			out = append(out, s.Host)
		}
	}
	return out
}

func actionText(a Action, s Settings) string {
	switch a {
	case ActionDrain:
		return "drain"
	case ActionWaitIdle:
		return fmt.Sprintf("wait idle (≤%s)", s.DrainTimeout)
	case ActionSwitch:
		return "switch current"
	case ActionHealth:
		return fmt.Sprintf("healthy for %s (≤%s)", s.StableFor, s.HealthTimeout)
	case ActionVersion:
		return "version = target"
	case ActionVerify:
		return "verify UP"
	}
	return string(a)
}

func (p *Plan) preflightText() string {
	var vs []string
	for _, h := range p.Hops {
		vs = append(vs, h.To)
	}
	if len(vs) == 0 {
		vs = []string{p.To}
	}
	if p.Kind == KindRollback {
		return fmt.Sprintf("every host reachable with a verified host key; release %s still present on every host going back; lock free; balancer reachable", p.To)
	}
	return fmt.Sprintf("every host reachable with a verified host key and running %s; artifacts for %s present locally; lock free; balancer reachable with every server UP", p.From, strings.Join(vs, ", "))
}

func (p *Plan) undoText() []string {
	switch p.Kind {
	case KindRepair:
		return []string{"a repair that fails stops the host again and leaves it out of rotation, named"}
	case KindRollback:
		return []string{"a rollback is itself undone by running the upgrade again"}
	case KindDowngrade:
		return []string{fmt.Sprintf("a downgrade is undone by an upgrade back to %s", p.From)}
	}
	var out []string
	var noRet []Step
	for _, st := range p.Steps {
		if st.PointOfNoReturn {
			noRet = append(noRet, st)
		}
	}
	switch {
	case len(noRet) == 0 && len(p.Hops) > 0 && p.Selection != nil && len(p.Selection.Held) > 0:
		out = append(out, "at any time in this run (its post-migrate is held back until the whole fleet runs the target): relctl rollback sends every switched host back to the version its hop started from")
	case len(noRet) == 0 && len(p.Hops) > 0:
		out = append(out, fmt.Sprintf("at any time (there is no post_migrate command): relctl rollback sends every switched host back to the version its hop started from"))
	case len(noRet) > 0:
		out = append(out, fmt.Sprintf("until %s starts: one key (r in the TUI, or relctl rollback) sends every switched host back to %s, in reverse order", noRet[0].ID, p.Hops[noRet[0].Hop].From))
		for i := 1; i < len(noRet); i++ {
			out = append(out, fmt.Sprintf("between %s and %s: rollback goes back to %s only", noRet[i-1].ID, noRet[i].ID, p.Hops[noRet[i].Hop].From))
		}
	}
	if p.HasKind(StepMigrate) {
		out = append(out, "pre-deploy migrations are not undone: they are expand-only and the old version runs on them")
	}
	if len(noRet) > 0 {
		out = append(out, fmt.Sprintf("after %s: rollback is refused; only relctl downgrade along a version's declared downgrade_to", noRet[len(noRet)-1].ID))
	}
	return out
}

func hostCount(n int) string {
	if n == 1 {
		return "1 host"
	}
	return fmt.Sprintf("%d hosts", n)
}

// HasKind reports whether the plan has a step of kind k.
func (p *Plan) HasKind(k StepKind) bool {
	for _, s := range p.Steps {
		if s.Kind == k {
			return true
		}
	}
	return false
}

// RenderText is the plan as an operator reads it in a terminal.
func RenderText(p *Plan) string {
	o := p.outline()
	var b strings.Builder
	fmt.Fprintf(&b, "Plan — %s\n\n", o.title)
	for _, f := range o.facts {
		fmt.Fprintf(&b, "  %-9s %s\n", f[0]+":", f[1])
	}
	if p.Empty() {
		b.WriteString("\nNothing to do.\n")
		for _, n := range o.notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
		return b.String()
	}
	b.WriteString("\nSteps:\n")
	for i, e := range o.entries {
		if e.hop != "" {
			fmt.Fprintf(&b, "\n  ── %s ──\n", e.hop)
		}
		if e.role != "" {
			fmt.Fprintf(&b, "  ┄┄ %s ┄┄\n", e.role)
		}
		if e.noRet {
			b.WriteString("  ━━━━━━━━━━━━━━━━━━━━━━━━━━ POINT OF NO RETURN ━━━━━━━━━━━━━━━━━━━━━━━━━━\n")
		}
		fmt.Fprintf(&b, "  %2d. %-20s %s\n", i+1, e.name, e.text)
		if len(e.hosts) > 0 {
			fmt.Fprintf(&b, "      %-20s %s\n", "", wrapHosts(e.hosts, e.compact, 90))
		}
	}
	if len(o.perRole) == 0 {
		fmt.Fprintf(&b, "\nEach host: %s\n", o.perHost)
	} else {
		b.WriteString("\n")
		for _, r := range o.perRole {
			fmt.Fprintf(&b, "Each %s: %s\n", r[0], r[1])
		}
	}
	b.WriteString("\nWhat rollback can and cannot undo:\n")
	for _, u := range o.undo {
		fmt.Fprintf(&b, "  - %s\n", u)
	}
	if len(o.notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range o.notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	return b.String()
}

func wrapHosts(hosts []string, compact bool, width int) string {
	if compact && len(hosts) > 12 {
		return fmt.Sprintf("%s … %s (%d hosts)", strings.Join(hosts[:5], ", "), hosts[len(hosts)-1], len(hosts))
	}
	var b strings.Builder
	line := 0
	for i, h := range hosts {
		if i > 0 {
			b.WriteString(", ")
			line += 2
		}
		if line+len(h) > width {
			b.WriteString("\n                           ")
			line = 0
		}
		b.WriteString(h)
		line += len(h)
	}
	return b.String()
}

// RenderMarkdown is the plan for a change ticket.
func RenderMarkdown(p *Plan) string {
	o := p.outline()
	var b strings.Builder
	fmt.Fprintf(&b, "## Release plan — %s\n\n", o.title)
	for _, f := range o.facts {
		fmt.Fprintf(&b, "- **%s:** %s\n", f[0], f[1])
	}
	if p.Empty() {
		b.WriteString("\nNothing to do.\n")
		for _, n := range o.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		return b.String()
	}
	b.WriteString("\n| # | step | what | hosts |\n|---|---|---|---|\n")
	for i, e := range o.entries {
		if e.hop != "" {
			fmt.Fprintf(&b, "| | **%s** | | |\n", e.hop)
		}
		if e.role != "" {
			fmt.Fprintf(&b, "| | *%s* | | |\n", e.role)
		}
		name := "`" + e.name + "`"
		text := e.text
		if e.noRet {
			text = "⚠️ **POINT OF NO RETURN** — " + text
		}
		if e.gate {
			text = "⏸ " + text
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", i+1, name, text, wrapHosts(e.hosts, true, 1<<30))
	}
	if len(o.perRole) == 0 {
		fmt.Fprintf(&b, "\n**Each host:** %s\n\n**What rollback can and cannot undo:**\n\n", o.perHost)
	} else {
		b.WriteString("\n")
		for _, r := range o.perRole {
			fmt.Fprintf(&b, "**Each %s:** %s\n\n", r[0], r[1])
		}
		b.WriteString("**What rollback can and cannot undo:**\n\n")
	}
	for _, u := range o.undo {
		fmt.Fprintf(&b, "- %s\n", u)
	}
	if len(o.notes) > 0 {
		b.WriteString("\n**Notes:**\n\n")
		for _, n := range o.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\n- [ ] plan reviewed\n- [ ] canary approved\n- [ ] post-migrate approved\n")
	return b.String()
}

// MarshalJSONIndent is the plan in its versioned JSON form.
func MarshalJSONIndent(p *Plan) ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// UnmarshalJSON reads a plan written by MarshalJSONIndent and checks it.
func UnmarshalJSON(data []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &p, nil
}
