package tui

import (
	"fmt"
	"regexp"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/plan"
)

// entryRe finds the hanging indent of a numbered plan entry ("   5. batch 1 (canary)     ").
var entryRe = regexp.MustCompile(`^(\s*\d+\.\s+\S.*?\s{2,})\S`)

// planLines is plan.RenderText wrapped to w with hanging indents, the
// point of no return and the rollback notes marked.
func (m *model) planLines(w int) []string {
	if m.plan == nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(plan.RenderText(m.plan), "\n"), "\n") {
		style := lipgloss.Style{}
		styled := false
		switch {
		case strings.Contains(line, "POINT OF NO RETURN"):
			style, styled = m.st.pnr, true
			text := " " + strings.Trim(line, " ━") + " "
			side := max((min(w, 100)-ansi.StringWidth(text))/2, 2)
			line = strings.Repeat("━", side) + text + strings.Repeat("━", side)
		case strings.HasPrefix(line, "Plan — "):
			style, styled = m.st.title, true
		case strings.HasPrefix(line, "What rollback"), strings.HasPrefix(line, "Steps:"), strings.HasPrefix(line, "Each host:"):
			style, styled = m.st.bold, true
		}
		for _, l := range wrapIndent(line, w) {
			if styled {
				l = style.Render(l)
			}
			out = append(out, l)
		}
	}
	return out
}

// wrapIndent wraps line to w, continuing under its text.
func wrapIndent(line string, w int) []string {
	if ansi.StringWidth(line) <= w || w < 20 {
		return []string{line}
	}
	indent := len(line) - len(strings.TrimLeft(line, " "))
	if mm := entryRe.FindStringSubmatchIndex(line); mm != nil {
		indent = ansi.StringWidth(line[:mm[3]])
	} else if i := strings.Index(line, ": "); i > 0 && i < 14 && strings.HasPrefix(line, "  ") {
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

// renderPlan is the scrollable plan and, when asked, the start dialog.
func (m *model) renderPlan(w, h int) string {
	dlg := m.dialogBox(w)
	dh := 0
	if dlg != "" {
		dh = lipgloss.Height(dlg)
	}
	vp := m.planView
	vp.SetWidth(w)
	vp.SetHeight(max(h-1-dh, 1))
	pos := "all shown"
	if vp.TotalLineCount() > vp.Height() {
		pos = fmt.Sprintf("%d%% · ↑/↓ pgup/pgdn scroll", int(vp.ScrollPercent()*100))
	}
	head := m.planHeadline()
	out := spread(head, m.st.dim.Render(pos), w) + "\n" + vp.View()
	if dlg != "" {
		out += "\n" + dlg
	}
	return out
}

func (m *model) planHeadline() string {
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
