package tui

import (
	"fmt"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/plan"
)

// planLines is the plan's outline (plan.Plan.Outline) laid out for width
// w: wrapped with hanging indents, the point of no return and the rollback
// notes marked. It never parses rendered text.
func (m *planPane) planLines(w int) []string {
	if m.plan == nil {
		return nil
	}
	o := m.plan.Outline()
	var out []string
	add := func(style *lipgloss.Style, lines ...string) {
		for _, l := range lines {
			if style != nil {
				l = style.Render(l)
			}
			out = append(out, l)
		}
	}
	hang := func(first, text string) []string {
		return hangWrap(first, text, w)
	}
	add(&m.st.title, hang("Plan — ", o.Title)...)
	add(nil, "")
	for _, f := range o.Facts {
		add(nil, hang(fmt.Sprintf("  %-9s ", f.Name+":"), f.Value)...)
	}
	if o.Empty {
		add(nil, "")
		add(&m.st.bold, "Nothing to do.")
		for _, n := range o.Notes {
			add(nil, hang("  - ", n)...)
		}
		return out
	}
	add(nil, "")
	add(&m.st.bold, "Steps:")
	nameW := 20
	if w < 70 {
		nameW = 14
	}
	for i, e := range o.Entries {
		if e.Hop != "" {
			add(nil, "")
			add(&m.st.bold, cell("  ── "+e.Hop+" ──", w))
		}
		if e.Role != "" {
			add(nil, hang("  ┄┄ ", e.Role+" ┄┄")...)
		}
		if e.PointOfNoReturn {
			text := " POINT OF NO RETURN "
			side := max((min(w, 100)-ansi.StringWidth(text))/2, 2)
			add(&m.st.pnr, cell(strings.Repeat("━", side)+text+strings.Repeat("━", side), w))
		}
		head := fmt.Sprintf("  %2d. %-*s ", i+1, nameW, e.Name)
		if ansi.StringWidth(head) > 6+nameW+1 {
			head = fmt.Sprintf("  %2d. %s ", i+1, e.Name)
		}
		var st *lipgloss.Style
		if e.Gate {
			st = &m.st.notice
		}
		add(st, hang(head, e.Text)...)
		if len(e.Hosts) > 0 {
			hosts := strings.Join(e.Hosts, ", ")
			if e.Compact && len(e.Hosts) > 12 {
				hosts = fmt.Sprintf("%s … %s (%d hosts)", strings.Join(e.Hosts[:5], ", "), e.Hosts[len(e.Hosts)-1], len(e.Hosts))
			}
			add(nil, hang(strings.Repeat(" ", 6+nameW+1), hosts)...)
		}
	}
	add(nil, "")
	if len(o.PerRole) == 0 {
		add(&m.st.bold, "Each host:")
		add(nil, hang("  ", o.PerHost)...)
	}
	for _, r := range o.PerRole {
		add(&m.st.bold, "Each "+r.Name+":")
		add(nil, hang("  ", r.Value)...)
	}
	add(nil, "")
	add(&m.st.bold, "What rollback can and cannot undo:")
	for _, u := range o.Undo {
		add(nil, hang("  - ", u)...)
	}
	if len(o.Notes) > 0 {
		add(nil, "")
		add(&m.st.bold, "Notes:")
		for _, n := range o.Notes {
			add(nil, hang("  - ", n)...)
		}
	}
	return out
}

// hangWrap wraps first+text to w, continuing under the text (or four
// columns in when first is too wide for w).
func hangWrap(first, text string, w int) []string {
	indent := ansi.StringWidth(first)
	if indent > w/2 {
		indent = 4
	}
	lines := strings.Split(ansi.Wordwrap(text, max(w-indent, 10), ""), "\n")
	out := make([]string, 0, len(lines))
	for i, l := range lines {
		if i == 0 {
			if ansi.StringWidth(first)+ansi.StringWidth(l) > w {
				out = append(out, strings.TrimRight(first, " "))
				out = append(out, strings.Repeat(" ", indent)+l)
				continue
			}
			out = append(out, first+l)
			continue
		}
		out = append(out, strings.Repeat(" ", indent)+l)
	}
	for i, l := range out {
		if ansi.StringWidth(l) > w {
			out[i] = ansi.Hardwrap(l, w, true) // a word longer than the line
		}
	}
	return strings.Split(strings.Join(out, "\n"), "\n")
}

// wrapIndent wraps line to w, continuing under its text.
func wrapIndent(line string, w int) []string {
	if ansi.StringWidth(line) <= w || w < 20 {
		return []string{line}
	}
	indent := len(line) - len(strings.TrimLeft(line, " "))
	if i := strings.Index(line, ": "); i > 0 && i < 14 && strings.HasPrefix(line, "  ") {
		indent = i + 2 // "  basis:    ..." facts
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
	}
	if indent > w/2 {
		indent = 4
	}
	pad := strings.Repeat(" ", indent)
	wrapped := strings.Split(ansi.Wordwrap(line, w, ""), "\n")
	if len(wrapped) <= 1 {
		return wrapped
	}
	rest := strings.Join(wrapped[1:], " ")
	out := []string{wrapped[0]}
	for _, l := range strings.Split(ansi.Wordwrap(rest, w-indent, ""), "\n") {
		out = append(out, pad+strings.TrimLeft(l, " "))
	}
	return out
}

// planHeight is how many plan lines the preview shows.
func (m *model) planHeight() int {
	iw, _ := m.inner()
	bodyH, _ := m.layout()
	dh := 0
	if dlg := m.dialogBox(iw); dlg != "" {
		dh = lipgloss.Height(dlg)
	}
	return max(bodyH-1-dh, 1)
}

// planMaxTop is the last first line that still fills the preview: the
// scroll stops at the end.
func (m *model) planMaxTop() int {
	if m.plan == nil {
		return 0
	}
	iw, _ := m.inner()
	return max(len(m.planLines(iw))-m.planHeight(), 0)
}

// renderPlan is the scrollable plan and, when asked, the start dialog.
func (m *model) renderPlan(w, h int) string {
	dlg := m.dialogBox(w)
	lines := m.planLines(w)
	ph := m.planHeight()
	top := min(max(m.planTop, 0), max(len(lines)-ph, 0))
	pos := "all shown"
	if len(lines) > ph {
		pos = fmt.Sprintf("lines %d–%d of %d · ↑/↓ pgup/pgdn", top+1, min(top+ph, len(lines)), len(lines))
		if top+ph >= len(lines) {
			pos = fmt.Sprintf("lines %d–%d of %d (end) · ↑/pgup", top+1, len(lines), len(lines))
		}
	}
	head := m.planHeadline()
	vis := lines[top:min(top+ph, len(lines))]
	out := spread(head, m.st.dim.Render(pos), w) + "\n" + strings.Join(block(strings.Join(vis, "\n"), w, ph), "\n")
	if dlg != "" {
		out += "\n" + dlg
	}
	return out
}

func (m *planPane) planHeadline() string {
	p := m.plan
	if p == nil {
		return ""
	}
	hosts := len(p.DeployHosts())
	if p.Empty() {
		return m.st.warn.Render("nothing to do")
	}
	s := fmt.Sprintf("%s %s → %s on %d host(s)", p.Kind, p.From, p.To, hosts)
	if p.Kind == plan.KindDowngrade {
		return m.st.badStrong.Render(s)
	}
	return m.st.bold.Render(s)
}

// renderReason asks why the emergency downgrade is needed.
func (m *model) renderReason(w, h int) string {
	var b strings.Builder
	b.WriteString("\n")
	b.WriteString(m.st.badStrong.Render("EMERGENCY DOWNGRADE"))
	if m.downTo != "" {
		b.WriteString(m.st.badStrong.Render(" to " + m.downTo))
	}
	b.WriteString("\n\n")
	b.WriteString(ansi.Wordwrap("Bigger batches, short drains, no canary pause — still no traffic to a host that is not healthy. Every action is audited.", w, ""))
	b.WriteString("\n\nWhy? The reason is written to the audit record on every host and to the journal.\n\n")
	b.WriteString(m.reason.View())
	if m.planning {
		b.WriteString("\n\n" + m.st.dim.Render("planning the downgrade…"))
	}
	return b.String()
}
