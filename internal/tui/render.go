package tui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// View implements tea.Model.
func (m *model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "relctl"
	if m.o.App != "" {
		v.WindowTitle = "relctl · " + m.o.App
	}
	return v
}

// render is the whole screen as a string of exactly the window's height.
func (m *model) render() string {
	w, h := m.size()
	iw, ih := m.inner()
	top := m.headerLines(iw)
	bottom := m.footerLines(iw)
	bodyH := max(ih-len(top)-len(bottom), 1)
	var body string
	switch m.screen {
	case screenFleet:
		body = m.renderFleet(iw, bodyH)
	case screenPlan:
		body = m.renderPlan(iw, bodyH)
	case screenReason:
		body = m.renderReason(iw, bodyH)
	case screenRun:
		body = m.renderRun(iw, bodyH)
	case screenDone:
		body = m.renderDone(iw, bodyH)
	}
	lines := make([]string, 0, ih)
	lines = append(lines, top...)
	lines = append(lines, block(body, iw, bodyH)...)
	lines = append(lines, bottom...)
	content := strings.Join(fit(lines, iw, ih), "\n")
	if m.emergency {
		return m.st.frame.Width(w).Height(h).Render(content)
	}
	return content
}

// layout is the body height and the host list height of the current
// screen, as render lays it out.
func (m *model) layout() (bodyH, listH int) {
	iw, ih := m.inner()
	bodyH = max(ih-len(m.headerLines(iw))-len(m.footerLines(iw)), 1)
	switch m.screen {
	case screenFleet:
		listH = bodyH - 2 - lipgloss.Height(m.dialogBox(iw))
	case screenRun:
		listH, _ = m.runSplit(iw, bodyH)
	}
	return bodyH, max(listH, 1)
}

func (m *model) outputHeight() int {
	iw, _ := m.inner()
	bodyH, _ := m.layout()
	_, outH := m.runSplit(iw, bodyH)
	return outH
}

func (m *model) headerLines(w int) []string {
	left := "relctl"
	if m.o.App != "" {
		left += " · " + m.o.App
	}
	right := ""
	switch m.screen {
	case screenFleet:
		if m.o.FleetFile != "" {
			left += " · " + m.o.FleetFile
		}
		right = m.lockText()
	case screenPlan:
		left += " · plan preview"
	case screenReason:
		left += " · emergency downgrade"
	case screenRun, screenDone:
		if m.run != nil && m.run.orig != nil {
			p := m.run.orig
			left += fmt.Sprintf(" · %s %s → %s", p.Kind, p.From, p.To)
			if m.run.runID != "" {
				right = "run " + m.run.runID
			}
		}
	}
	lines := []string{m.st.header.Render(spread(left, right, w))}
	if m.emergency {
		b := "EMERGENCY DOWNGRADE"
		if m.downTo != "" {
			b += " → " + m.downTo
		} else if m.plan != nil && m.plan.Kind == "downgrade" {
			b += " → " + m.plan.To
		}
		if r := m.reasonText(); r != "" {
			b += " · reason: " + r
		}
		lines = append(lines, m.st.banner.Render(padRight(" "+ansi.Truncate(b, w-2, "…")+" ", w)))
	}
	return lines
}

func (m *model) reasonText() string {
	if m.plan != nil && m.plan.Reason != "" {
		return m.plan.Reason
	}
	if m.run != nil && m.run.orig != nil && m.run.orig.Reason != "" {
		return m.run.orig.Reason
	}
	return strings.TrimSpace(m.reason.Value())
}

func (m *model) lockText() string {
	switch {
	case m.loading && m.hosts == nil:
		return "lock: …"
	case m.lock == nil:
		return "lock: free"
	}
	return "LOCKED by " + m.lock.Owner + " (run " + m.lock.RunID + ")"
}

// footerLines are the status line and the help.
func (m *model) footerLines(w int) []string {
	status := ""
	switch {
	case m.notice != "":
		status = m.st.notice.Render(ansi.Truncate(m.notice, w, "…"))
	case m.err != "":
		status = m.st.badStrong.Render(ansi.Truncate("error: "+m.err, w, "…"))
	case m.filtering:
		status = m.filter.View()
	case m.filter.Value() != "" && (m.screen == screenFleet || m.screen == screenRun):
		status = m.st.dim.Render(fmt.Sprintf("filter: %q (/ to change, esc in the filter clears it)", m.filter.Value()))
	}
	out := []string{status}
	out = append(out, strings.Split(m.help.View(m.keys), "\n")...)
	return out
}

// block cuts or pads s to exactly h lines, each cut to w columns.
func block(s string, w, h int) []string {
	return fit(strings.Split(s, "\n"), w, h)
}

func fit(lines []string, w, h int) []string {
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > w {
			lines[i] = ansi.Truncate(l, w, "…")
		}
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return lines
}

// spread puts left and right on one line of width w.
func spread(left, right string, w int) string {
	lw, rw := ansi.StringWidth(left), ansi.StringWidth(right)
	if right == "" || lw+rw+2 > w {
		if right != "" && lw+3 < w {
			return left + "  " + ansi.Truncate(right, w-lw-2, "…")
		}
		return left
	}
	return left + strings.Repeat(" ", w-lw-rw) + right
}

func padRight(s string, w int) string {
	if n := w - ansi.StringWidth(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s
}

// cell cuts or pads plain s to exactly w columns.
func cell(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return padRight(s, w)
}

// clock formats an elapsed time as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// joinLimited joins names into at most w columns, ending "… and N more".
func joinLimited(names []string, w int) string {
	var b strings.Builder
	for i, n := range names {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		rest := fmt.Sprintf(" … and %d more", len(names)-i)
		if b.Len()+len(sep)+len(n)+len(rest) > w && i < len(names)-1 || b.Len()+len(sep)+len(n) > w {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(sep + n)
	}
	return b.String()
}

// wrapList wraps names, comma-separated, into lines of width w; more than
// maxLines lines end with "… and N more".
func wrapList(names []string, w, maxLines int) []string {
	var lines []string
	cur := ""
	for i, n := range names {
		piece := n
		if i < len(names)-1 {
			piece += ","
		}
		if cur != "" && ansi.StringWidth(cur)+1+ansi.StringWidth(piece) > w {
			if len(lines) == maxLines-1 {
				lines = append(lines, joinLimited(names[i-countIn(cur):], w))
				return lines
			}
			lines = append(lines, cur)
			cur = ""
		}
		if cur != "" {
			cur += " "
		}
		cur += piece
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func countIn(line string) int { return strings.Count(line, ",") }
