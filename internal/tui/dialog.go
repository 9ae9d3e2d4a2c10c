package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// dialogPart is the open question, if any. What it shows is built from a
// dialogView the model hands it, not from the model itself.
type dialogPart struct {
	dialog dialogKind
}

// dialogView is everything a dialog may say.
type dialogView struct {
	kind       dialogKind
	st         *styles
	keyLine    string // the keys that work now (see model.keyLine)
	emergency  bool
	plan       *plan.Plan
	lock       *rollout.LockInfo
	run        *runState
	unfinished *journal.Run
	gateLB     *gateLBMsg
	traffic    *TrafficStats // nil unless the demo's traffic panel is on
	// pausedForDialog: the run is held while the operator decides.
	pausedForDialog bool
}

// box renders the open dialog for width w, or "".
func (d dialogPart) box(v dialogView, w int) string {
	if d.dialog == dlgNone {
		return ""
	}
	v.kind = d.dialog
	bw := min(w, 76)
	tw := bw - 4 // border and padding
	title, lines, risky := v.dialogText(tw)
	var b strings.Builder
	b.WriteString(v.st.bold.Render(title))
	for _, l := range lines {
		for _, wl := range strings.Split(ansi.Wordwrap(l, tw, ""), "\n") {
			b.WriteString("\n" + wl)
		}
	}
	style := v.st.dialog
	if risky || v.emergency {
		style = v.st.dialogRisk
	}
	return style.Width(bw).Render(b.String())
}

// dialogBox is the open dialog, as the model's state has it, for width w.
func (m *model) dialogBox(w int) string {
	if m.dialog == dlgNone {
		return ""
	}
	v := dialogView{st: &m.st, keyLine: m.keyLine(), emergency: m.emergency, plan: m.plan, lock: m.lock,
		run: m.run, unfinished: m.o.Unfinished, gateLB: m.gateLB, pausedForDialog: m.pausedForDialog}
	if m.o.Demo {
		v.traffic = m.traffic
	}
	return m.dialogPart.box(v, w)
}

// keyLine is the dialog's keys, from the bindings that work now: a key
// the dialog names always does what it says.
func (m *model) keyLine() string {
	var parts []string
	for _, b := range m.keys.ShortHelp() {
		if !b.Enabled() || b.Help().Key == m.keys.Help.Help().Key {
			continue
		}
		parts = append(parts, b.Help().Key+" "+b.Help().Desc)
	}
	return strings.Join(parts, " · ")
}

// dialogText is the dialog's title and lines; risky dialogs get the red
// border.
func (m dialogView) dialogText(w int) (string, []string, bool) {
	switch m.kind {
	case dlgStart:
		return m.startText()
	case dlgGate:
		return m.gateText()
	case dlgRollback:
		return m.rollbackText(w)
	case dlgAbort:
		flight := m.run.inFlight()
		s := "The hosts in flight finish their switch or are reverted; nothing further starts; the lock is released."
		if len(flight) > 0 {
			s = fmt.Sprintf("In flight now: %s. They finish their switch or are reverted; nothing further starts; the lock is released.", joinLimited(flight, 200))
		}
		return "Abort the run?", []string{s, m.staysText(), "", m.keyLine}, true
	case dlgQuit:
		lines := []string{"Quitting aborts the run: the hosts in flight finish their switch or are reverted, nothing further starts, and relctl exits once the run has ended. It never abandons a host mid-switch.",
			m.staysText()}
		if m.run.gate != nil {
			lines[0] = "Quitting answers the gate with abort: nothing further starts, and relctl exits once the run has ended."
		}
		return "A run is in progress. Quit?", append(lines, "", m.keyLine), true
	case dlgUnfinished:
		return m.unfinishedText(w)
	}
	return "", nil, false
}

func (m dialogView) startText() (string, []string, bool) {
	p := m.plan
	hosts := p.DeployHosts()
	if p.Kind == plan.KindDowngrade {
		return "Start the EMERGENCY DOWNGRADE?", []string{
			fmt.Sprintf("%s → %s on %d host(s), batches %s, no canary pause, no migrations.", p.From, p.To, len(hosts), batchText(p)),
			"Reason (audited): " + p.Reason,
			"", m.keyLine}, true
	}
	lines := []string{fmt.Sprintf("%s %s → %s on %d host(s), batches %s.", p.Kind, p.From, p.To, len(hosts), batchText(p))}
	if a := p.Settings.Analysis; a != nil {
		lines = append(lines, gateAnalysisStart(*a))
	} else if p.Settings.PauseAfterCanary {
		lines = append(lines, "The run stops for your approval after the canary batch.")
	}
	for _, s := range p.Steps {
		if s.PointOfNoReturn {
			lines = append(lines, "Rollback is one key (r) until "+s.ID+" starts: that is the point of no return.")
			break
		}
	}
	if m.lock != nil {
		lines = append(lines, m.st.badStrong.Render(fmt.Sprintf("The fleet was LOCKED by %s (run %s) when last observed: the start is refused while that run holds it.", m.lock.Owner, m.lock.RunID)))
	}
	lines = append(lines, "", m.keyLine)
	return fmt.Sprintf("Start this %s?", p.Kind), lines, false
}

func batchText(p *plan.Plan) string {
	var bs []string
	for _, b := range p.Settings.Batches {
		bs = append(bs, b.String())
	}
	return strings.Join(bs, ", ")
}

// staysText says what stays switched when the run stops without a
// rollback, and whether r could send it back instead.
func (m dialogView) staysText() string {
	r := m.run
	var switched []string
	for _, h := range r.rows {
		if h.state == event.HostInService && r.orig != nil && h.version != "" && h.version != r.orig.From {
			switched = append(switched, h.name+" ("+h.version+")")
		}
	}
	if len(switched) == 0 {
		return "No host has been switched: the fleet stays as it was."
	}
	s := fmt.Sprintf("These stay switched: %s.", joinLimited(switched, 300))
	if info := r.rollbackNow(); info.ok && len(info.hosts) > 0 {
		s += fmt.Sprintf(" To send %d of them back to %s instead, answer n and press r.", len(info.hosts), info.to)
	} else if !info.ok {
		s += " Rollback is not possible now (" + info.why + "): only an emergency downgrade goes back."
	}
	return s
}

func (m dialogView) gateText() (string, []string, bool) {
	g := m.run.gate
	if g == nil {
		return "", nil, false
	}
	if g.failed {
		return "Paused after a failure", []string{g.message, "", m.keyLine}, true
	}
	lines := []string{g.message}
	// The canary: the hosts in service on the gate's own target version,
	// with their health checks.
	var canary []string
	for _, h := range m.run.rows {
		if h.state == event.HostInService && (g.to == "" || h.version == g.to) {
			c := h.name
			if h.health != "" {
				c += " (" + h.health + ")"
			}
			canary = append(canary, c)
		}
	}
	if len(canary) > 0 {
		lines = append(lines, fmt.Sprintf("In service on %s: %s.", g.to, joinLimited(canary, 300)))
		lines = append(lines, m.gateBalancerLines(g)...)
	} else {
		lines = append(lines, "No host is in service on "+g.to+" yet.")
	}
	lines = append(lines, m.run.gateAnalysisLines()...)
	if m.traffic != nil {
		lines = append(lines, fmt.Sprintf("Traffic so far: %d requests, %d failed.", m.traffic.Requests, m.traffic.Failed))
	}
	if info := m.run.rollbackNow(); info.ok {
		lines = append(lines, fmt.Sprintf("r sends %s back to %s.", joinLimited(info.hosts, 200), info.to))
	} else {
		lines = append(lines, "Rollback is not possible here: "+info.why+".")
	}
	lines = append(lines, "", m.keyLine)
	return "Canary gate: promote or roll back?", lines, false
}

// rollbackText lists exactly the hosts that go back, as plan.Rollback
// plans them.
func (m dialogView) rollbackText(w int) (string, []string, bool) {
	info := m.run.rollbackNow()
	if !info.ok {
		return "Rollback refused", []string{info.why, "", m.keyLine}, true
	}
	hosts := info.hosts
	if len(hosts) == 0 {
		return "Roll back?", []string{"No host has been switched yet: the run stops and nothing needs to go back.", "", m.keyLine}, true
	}
	lines := []string{fmt.Sprintf("These %d host(s) go back to %s, in the run's batches reversed, each batch in parallel, in this order (after the hosts in flight):", len(hosts), info.to)}
	lines = append(lines, wrapList(hosts, w, 6)...)
	lines = append(lines, "Every other host stays as it is.")
	if m.pausedForDialog {
		lines = append(lines, "The run is paused while you decide: no other host starts.")
	}
	lines = append(lines, "", m.keyLine)
	return fmt.Sprintf("Roll back %d host(s)?", len(hosts)), lines, true
}

func (m dialogView) unfinishedText(w int) (string, []string, bool) {
	u := m.unfinished
	what := ""
	if u.Plan != nil {
		what = fmt.Sprintf(" (%s %s → %s)", u.Plan.Kind, u.Plan.From, u.Plan.To)
	}
	title := fmt.Sprintf("Run %s by %s did not finish%s", u.ID, u.Owner, what)
	var touched []string
	for _, st := range []string{"in service", "draining", "stopping", "switching", "starting", "checking", "enabling", "reverting", "failed", "rolled back", "left drained"} {
		for _, name := range sortedKeys(u.Hosts) {
			if string(u.Hosts[name]) == st {
				touched = append(touched, name+": "+st)
			}
		}
	}
	lines := []string{}
	if len(touched) > 0 {
		lines = append(lines, "Hosts: "+joinLimited(touched, w*3))
	} else {
		lines = append(lines, "No host had been switched.")
	}
	for _, name := range sortedKeys(u.LeftDrained) {
		lines = append(lines, m.st.badStrong.Render("LEFT DRAINED "+name+": "+u.LeftDrained[name]))
	}
	switch to, hosts, why := unfinishedRollback(u); {
	case why != "":
		lines = append(lines, "Rollback is refused: "+why+" (an emergency downgrade can go back: d on the fleet).")
	case len(hosts) > 0:
		lines = append(lines, fmt.Sprintf("r sends %s back to %s.", joinLimited(hosts, 200), to))
	}
	lines = append(lines, "", m.keyLine)
	return title, lines, true
}

// unfinishedRollback is what rolling back the unfinished run would do, as
// the CLI plans it (plan.Rollback of its last plan and progress): the
// version and hosts, or why it is refused. A run already rolling back is
// continued by c, not r.
func unfinishedRollback(u *journal.Run) (to string, hosts []string, why string) {
	switch {
	case u == nil || u.Plan == nil:
		return "", nil, "the journal has no plan for it"
	case u.Plan.Kind == plan.KindRollback:
		return "", nil, "it is a rollback already: c continues it"
	}
	to, hosts, err := plan.RollbackNow(u.Plan, u.Progress)
	if err != nil {
		return "", nil, err.Error()
	}
	return to, hosts, ""
}

// gateBalancerLines are the balancer's figures for the canary hosts: its
// state, its last health check and its sessions, as they were when the
// gate opened.
func (m dialogView) gateBalancerLines(g *gateInfo) []string {
	lbv := m.gateLB
	if lbv == nil || lbv.step != g.step {
		return nil
	}
	if lbv.err != nil {
		return []string{"Balancer: " + lbv.err.Error()}
	}
	var parts []string
	for _, h := range m.run.rows {
		if h.state != event.HostInService || g.to != "" && h.version != g.to {
			continue
		}
		for _, s := range lbv.servers[h.name] {
			p := fmt.Sprintf("%s %s", h.name, s.Status)
			if s.CheckStatus != "" {
				p += ", check " + s.CheckStatus
			}
			p += fmt.Sprintf(", %d session(s)", s.Sessions)
			if s.Queued > 0 {
				p += fmt.Sprintf(", %d queued", s.Queued)
			}
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return []string{"Balancer: " + joinLimited(parts, 300) + "."}
}
