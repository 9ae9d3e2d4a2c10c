package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/plan"
)

// dialogBox renders the open dialog for width w, or "".
func (m *model) dialogBox(w int) string {
	if m.dialog == dlgNone {
		return ""
	}
	bw := min(w, 76)
	tw := bw - 4 // border and padding
	title, lines, risky := m.dialogText(tw)
	var b strings.Builder
	b.WriteString(m.st.bold.Render(title))
	for _, l := range lines {
		for _, wl := range strings.Split(ansi.Wordwrap(l, tw, ""), "\n") {
			b.WriteString("\n" + wl)
		}
	}
	style := m.st.dialog
	if risky || m.emergency {
		style = m.st.dialogRisk
	}
	return style.Width(bw).Render(b.String())
}

// dialogText is the dialog's title and lines; risky dialogs get the red
// border.
func (m *model) dialogText(w int) (string, []string, bool) {
	switch m.dialog {
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
		return "Abort the run?", []string{s, "Hosts already switched stay on the new version (r rolls them back instead).", "", "y abort · n keep going"}, true
	case dlgQuit:
		return "A run is in progress. Quit?", []string{
			"Quitting aborts the run: the hosts in flight finish their switch or are reverted, nothing further starts, and relctl exits once the run has ended. It never abandons a host mid-switch.",
			"", "y abort and quit · n stay"}, true
	case dlgUnfinished:
		return m.unfinishedText(w)
	}
	return "", nil, false
}

func (m *model) startText() (string, []string, bool) {
	p := m.plan
	hosts := p.DeployHosts()
	if p.Kind == plan.KindDowngrade {
		return "Start the EMERGENCY DOWNGRADE?", []string{
			fmt.Sprintf("%s → %s on %d host(s), batches %s, no canary pause, no migrations.", p.From, p.To, len(hosts), batchText(p)),
			"Reason (audited): " + p.Reason,
			"", "y start the downgrade · n back to the plan"}, true
	}
	lines := []string{fmt.Sprintf("%s %s → %s on %d host(s), batches %s.", p.Kind, p.From, p.To, len(hosts), batchText(p))}
	if p.Settings.PauseAfterCanary {
		lines = append(lines, "The run stops for your approval after the canary batch.")
	}
	for _, s := range p.Steps {
		if s.PointOfNoReturn {
			lines = append(lines, "Rollback is one key (r) until "+s.ID+" starts: that is the point of no return.")
			break
		}
	}
	lines = append(lines, "", "y start · n back to the plan")
	return fmt.Sprintf("Start this %s?", p.Kind), lines, false
}

func batchText(p *plan.Plan) string {
	var bs []string
	for _, b := range p.Settings.Batches {
		bs = append(bs, b.String())
	}
	return strings.Join(bs, ", ")
}

func (m *model) gateText() (string, []string, bool) {
	g := m.run.gate
	if g == nil {
		return "", nil, false
	}
	if g.failed {
		return "Paused after a failure", []string{g.message, "",
			"p go on · r roll back every switched host · a abort · s stop here (resume later with relctl resume)"}, true
	}
	var canary []string
	for _, h := range m.run.rows {
		if h.state == "in service" {
			canary = append(canary, h.name)
		}
	}
	lines := []string{g.message}
	if len(canary) > 0 {
		lines = append(lines, "In service on the new version: "+joinLimited(canary, 200)+".")
	}
	if m.o.Demo && m.traffic != nil {
		lines = append(lines, fmt.Sprintf("Traffic so far: %d requests, %d failed.", m.traffic.Requests, m.traffic.Failed))
	}
	lines = append(lines, "", "p promote to the rest of the fleet · r roll back… · a abort…")
	return "Canary gate: promote or roll back?", lines, false
}

// rollbackText lists exactly the hosts that go back.
func (m *model) rollbackText(w int) (string, []string, bool) {
	hosts := m.run.rollbackHosts()
	if len(hosts) == 0 {
		return "Roll back?", []string{"No host has been switched yet: the run stops and nothing needs to go back.", "", "y stop the run · n keep going"}, true
	}
	back := make([]string, len(hosts))
	for i, h := range hosts {
		back[len(hosts)-1-i] = h
	}
	to := m.run.orig.From
	if m.run.hop >= 0 && m.run.hop < len(m.run.orig.Hops) {
		to = m.run.orig.Hops[m.run.hop].From
	}
	lines := []string{fmt.Sprintf("These %d host(s) go back to %s, one at a time, in this order (after the hosts in flight):", len(hosts), to)}
	lines = append(lines, wrapList(back, w, 6)...)
	lines = append(lines, "Every other host has not been touched and stays as it is.")
	if m.pausedForDialog {
		lines = append(lines, "The run is paused while you decide: no other host starts.")
	}
	lines = append(lines, "", "y roll back · n keep going")
	return fmt.Sprintf("Roll back %d host(s)?", len(hosts)), lines, true
}

func (m *model) unfinishedText(w int) (string, []string, bool) {
	u := m.o.Unfinished
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
	keys := "c continue it · r roll it back · esc decide later"
	if u.PostMigrated {
		lines = append(lines, "Its post-migrate ran: rollback is refused (use an emergency downgrade, d on the fleet).")
		keys = "c continue it · esc decide later"
	}
	lines = append(lines, "", keys)
	return title, lines, true
}
