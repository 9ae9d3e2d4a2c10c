package tui

import (
	"fmt"
	"sort"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
)

const targetPanelWidth = 24

// fleetRows are the indices of the hosts the filter keeps.
func (m *fleetPane) fleetRows() []int {
	f := strings.ToLower(strings.TrimSpace(m.filter.Value()))
	out := make([]int, 0, len(m.hosts))
	for i, h := range m.hosts {
		if f == "" || strings.Contains(strings.ToLower(h.Name), f) || strings.Contains(strings.ToLower(h.Version), f) {
			out = append(out, i)
		}
	}
	return out
}

// renderFleet: a summary line, the host table and the target list.
func (m *model) renderFleet(w, h int) string {
	dlg := m.dialogBox(w)
	dh := 0
	if dlg != "" {
		dh = lipgloss.Height(dlg)
	}
	tw := targetPanelWidth
	switch {
	case w < 50:
		tw = 0
	case w < 80:
		tw = 20
	}
	summary := m.fleetSummary(w)
	listH := max(h-1-lipgloss.Height(summary)-dh, 1)
	hostW := w - tw
	if tw > 0 {
		hostW--
	}
	left := m.fleetTable(hostW, listH)
	var body string
	if tw > 0 {
		right := strings.Join(block(m.targetPanel(tw, m.planning), tw, listH+1), "\n")
		sep := strings.TrimSuffix(strings.Repeat("│\n", listH+1), "\n")
		body = lipgloss.JoinHorizontal(lipgloss.Top, strings.Join(block(left, hostW, listH+1), "\n"), m.st.dim.Render(sep), right)
	} else {
		body = left
	}
	out := summary + "\n" + body
	if dlg != "" {
		out = strings.Join(block(out, w, h-dh), "\n") + "\n" + dlg
	}
	return out
}

func (m *fleetPane) fleetSummary(w int) string {
	if m.loading && m.hosts == nil {
		return m.st.dim.Render("observing the fleet…")
	}
	counts := map[string]int{}
	down, unreachable := 0, 0
	for _, h := range m.hosts {
		if !h.Reachable {
			unreachable++
			continue
		}
		counts[h.Version]++
	}
	var vs []string
	for v := range counts {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	var parts []string
	parts = append(parts, fmt.Sprintf("%d hosts", len(m.hosts)))
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%d on %s", counts[v], v))
	}
	for _, ss := range m.servers {
		for _, s := range ss {
			if s.Status != lb.StatusUp {
				down++
				break
			}
		}
	}
	s := strings.Join(parts, " · ")
	if m.fleetStale {
		s = m.st.warn.Render("STALE: from before the run, refreshing") + " · " + s
	}
	if len(m.servers) > 0 {
		if down == 0 {
			s += " · " + m.st.ok.Render("balancer: all UP")
		} else {
			s += " · " + m.st.warn.Render(fmt.Sprintf("balancer: %d not UP", down))
		}
	}
	if unreachable > 0 {
		s += " · " + m.st.badStrong.Render(fmt.Sprintf("%d unreachable", unreachable))
	}
	if m.loading {
		s += m.st.dim.Render(" · refreshing…")
	}
	if m.fleetErr != "" {
		// Wrapped under the summary, never cut.
		for _, l := range strings.Split(ansi.Wordwrap("error: "+m.fleetErr, w, ""), "\n") {
			s += "\n" + m.st.bad.Render(ansi.Hardwrap(l, w, true))
		}
	}
	return s
}

// fleetTable is the header and the visible rows of the host table.
func (m *fleetPane) fleetTable(w, listH int) string {
	rows := m.fleetRows()
	nameW := 6
	for _, i := range rows {
		nameW = max(nameW, len(m.hosts[i].Name))
	}
	nameW = min(nameW, 20)
	const verW, healthW = 10, 10
	lbW := max(w-nameW-verW-healthW-3, 8)
	var b strings.Builder
	b.WriteString(m.st.colHead.Render(cell("HOST", nameW)+" "+cell("VERSION", verW)+" "+cell("HEALTH", healthW)+" "+cell("BALANCER", lbW)) + "\n")
	if len(rows) > listH {
		listH = max(listH-1, 1) // room for "1–20 of 60"
	}
	off := scrollOffset(m.offset, 0, len(rows), listH, false)
	for n, i := range rows[off:min(off+listH, len(rows))] {
		if n > 0 {
			b.WriteString("\n")
		}
		h := m.hosts[i]
		ver, health := h.Version, m.healthCell(h)
		if !h.Reachable {
			ver = "?"
		}
		b.WriteString(cell(h.Name, nameW) + " " + cell(ver, verW) + " " + health + " " + m.balancerCell(h.Name, lbW))
	}
	if len(rows) == 0 && !m.loading {
		b.WriteString(m.st.dim.Render("no host matches"))
	}
	if len(rows) > listH {
		b.WriteString("\n" + m.st.dim.Render(fmt.Sprintf("%d–%d of %d (pgup/pgdn)", off+1, min(off+listH, len(rows)), len(rows))))
	}
	return b.String()
}

func (m *fleetPane) healthCell(h observe.Host) string {
	const w = 10
	switch {
	case !h.Reachable:
		return m.st.badStrong.Render(cell("unreachable", w))
	case h.HealthOK:
		return m.st.ok.Render(cell("ok", w))
	case h.Health == "":
		return m.st.dim.Render(cell("-", w))
	}
	return m.st.bad.Render(cell(h.Health, w))
}

// balancerCell is "UP · 3 sess" (several endpoints that disagree: "UP/DRAIN").
func (m *fleetPane) balancerCell(server string, w int) string {
	ss := m.servers[server]
	if len(ss) == 0 {
		if len(m.servers) == 0 {
			return m.st.dim.Render(cell("-", w))
		}
		return m.st.warn.Render(cell("not in balancer", w))
	}
	var statuses []string
	sessions := 0
	allUp := true
	for _, s := range ss {
		st := string(s.Status)
		if len(statuses) == 0 || statuses[len(statuses)-1] != st {
			statuses = append(statuses, st)
		}
		sessions += s.Sessions
		allUp = allUp && s.Status == lb.StatusUp
	}
	text := cell(fmt.Sprintf("%s · %d sess", strings.Join(statuses, "/"), sessions), w)
	if allUp {
		return m.st.ok.Render(text)
	}
	return m.st.warn.Render(text)
}

// targetPanel lists the versions to go to.
func (m *fleetPane) targetPanel(w int, planning bool) string {
	var b strings.Builder
	if m.downgradePick {
		b.WriteString(m.st.badStrong.Render("DOWNGRADE TO"))
	} else {
		b.WriteString(m.st.colHead.Render("GO TO"))
	}
	ts := m.pickable()
	switch {
	case m.downgradePick && !m.down.probed:
		b.WriteString("\n" + m.st.dim.Render(" asking the planner…"))
	case m.downgradePick && len(ts) == 0:
		from := m.down.running
		if from == "" {
			from = "the running version"
		}
		for _, l := range strings.Split(ansi.Wordwrap(" no declared downgrade path from "+from+" (downgrade_to in the releases table)", w, ""), "\n") {
			b.WriteString("\n" + m.st.warn.Render(l))
		}
	case len(ts) == 0:
		b.WriteString("\n" + m.st.dim.Render(" no version available"))
	}
	running := map[string]int{}
	for _, h := range m.hosts {
		running[h.Version]++
	}
	for i, t := range ts {
		line := "  " + t
		if n := running[t]; n > 0 {
			line += fmt.Sprintf(" (runs on %d)", n)
		}
		line = cell(line, w)
		if i == m.targetCur {
			line = m.st.selected.Render(cell("▸ "+strings.TrimPrefix(line, "  "), w))
		}
		b.WriteString("\n" + line)
	}
	if m.downgradePick && m.down.running != "" {
		b.WriteString("\n" + m.st.dim.Render(cell("  "+m.down.running+" running now", w)))
	}
	if m.downgradePick && len(m.down.refused) > 0 {
		text := fmt.Sprintf(" not offered: %s (no declared downgrade path)", strings.Join(sortedKeys(m.down.refused), ", "))
		for _, l := range strings.Split(ansi.Wordwrap(text, w-1, ""), "\n") {
			b.WriteString("\n" + m.st.dim.Render(" "+strings.TrimSpace(l)))
		}
	}
	if planning {
		b.WriteString("\n\n" + m.st.dim.Render(" planning…"))
	}
	return b.String()
}
