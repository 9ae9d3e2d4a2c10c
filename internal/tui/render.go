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
	if ok, _ := Usable("", w, h); !ok {
		// The window shrank under the running TUI (a terminal too small
		// from the start gets plain output instead): it waits to be
		// made larger, and goes on where it was.
		note := fmt.Sprintf("This window is %d×%d; the TUI needs at least %d×%d. Make it larger to go on.", w, h, MinWidth, MinHeight)
		return strings.Join(fit(strings.Split(ansi.Wordwrap(note, w, ""), "\n"), w, h), "\n")
	}
	iw, ih := m.inner()
	top := m.headerLines(iw)
	bottom := m.footerLines(iw)
	bodyH := max(ih-len(top)-len(bottom), 1)
	var body string
	switch {
	case m.logv != nil && m.dialog == dlgNone:
		body = m.renderLog(iw, bodyH)
	default:
		body = m.renderScreen(iw, bodyH)
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

// logArea is the size of the log view's log lines.
func (m *model) logArea() (int, int) {
	iw, _ := m.inner()
	bodyH, _ := m.layout()
	return iw, max(bodyH-2, 1)
}

// renderLog is the full-screen log of one host.
func (m *model) renderLog(w, h int) string {
	state := ""
	if m.run != nil {
		if i, ok := m.run.idx[m.logv.host]; ok {
			r := m.run.rows[i]
			state = r.label() + " · " + r.version
		}
	}
	return m.logv.render(m.st, m.logLines(), state, w, h)
}

// renderScreen is the body of the current screen.
func (m *model) renderScreen(iw, bodyH int) string {
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
	return body
}

// layout is the body height and the host list height of the current
// screen, as render lays it out.
func (m *model) layout() (bodyH, listH int) {
	iw, ih := m.inner()
	bodyH = max(ih-len(m.headerLines(iw))-len(m.footerLines(iw)), 1)
	switch m.screen {
	case screenFleet:
		listH = bodyH - 1 - lipgloss.Height(m.fleetSummary(iw)) - lipgloss.Height(m.dialogBox(iw))
		if len(m.fleetRows()) > listH {
			listH-- // the table's "1–20 of 60" line
		}
	case screenRun:
		listH, _ = m.runSplit(iw, bodyH)
	case screenDone:
		listH = bodyH - m.doneHeadHeight(iw) - 1
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
		if m.downgradePick {
			left += " · pick a downgrade target"
		}
	case screenPlan:
		left += " · plan preview"
		right = m.lockText()
		if m.lockGen > 0 {
			right = m.lockHeld() // the preview's own read
		}
		if m.lockReading {
			right = "lock: reading…"
		}
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
	var lines []string
	if right == "" || ansi.StringWidth(left)+2+ansi.StringWidth(right) <= w {
		lines = []string{m.st.header.Render(spread(left, right, w))}
	} else {
		// Too narrow for both: the path and the lock each get their own
		// lines, wrapped, never cut.
		for _, l := range strings.Split(ansi.Hardwrap(left, w, true), "\n") {
			lines = append(lines, m.st.header.Render(l))
		}
		for _, l := range strings.Split(ansi.Wordwrap(right, w, ""), "\n") {
			lines = append(lines, m.st.header.Render(ansi.Hardwrap(l, w, true)))
		}
	}
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

func (m *fleetPane) lockText() string {
	if m.loading && m.hosts == nil {
		return "lock: …"
	}
	return m.lockHeld()
}

// lockHeld is the lock as last read.
func (m *fleetPane) lockHeld() string {
	switch {
	case m.lockErr != nil:
		return "lock: unknown (" + m.lockErr.Error() + ")"
	case m.lock == nil:
		return "lock: free"
	}
	return "LOCKED by " + m.lock.Owner + " (run " + m.lock.RunID + ")"
}

// footerLines are the status lines (wrapped, never cut) and the help.
func (m *model) footerLines(w int) []string {
	var status, banner []string
	wrapped := func(st lipgloss.Style, s string) []string {
		_, h := m.inner()
		lines := strings.Split(ansi.Wordwrap(s, w, ""), "\n")
		// A message longer than a third of the screen keeps its start
		// and end; the rest is in the journal or the log view.
		if limit := max(h/3, 2); len(lines) > limit {
			lines = append(lines[:limit-1], "… "+lines[len(lines)-1])
		}
		out := make([]string, len(lines))
		for i, l := range lines {
			out[i] = st.Render(ansi.Hardwrap(l, w, true))
		}
		return out
	}
	if b := m.stopBanner(); b != "" {
		banner = wrapped(m.st.badStrong, b)
	}
	switch {
	case m.notice != "":
		status = wrapped(m.st.notice, m.notice)
	case m.err != "":
		status = wrapped(m.st.badStrong, "error: "+m.err)
	case m.info != "" && m.logv == nil:
		for _, l := range strings.Split(m.info, "\n") {
			status = append(status, wrapped(m.st.notice, l)...)
		}
	case m.filtering:
		status = []string{m.filter.View()}
	case m.filter.Value() != "" && m.logv == nil && (m.screen == screenFleet || m.screen == screenRun || m.screen == screenDone):
		status = []string{m.st.dim.Render(cell(fmt.Sprintf("filter: %q (/ to change, esc in the filter clears it)", m.filter.Value()), w))}
	case banner == nil:
		status = []string{""}
	}
	out := append(banner, status...)
	if m.help.ShowAll {
		out = append(out, strings.Split(m.help.View(m.keys), "\n")...)
	} else {
		out = append(out, m.keys.shortHelp(m.st, w, m.textInput()))
	}
	return out
}

// textInput reports whether a text input has the keys (q and ? type).
func (m *model) textInput() bool {
	return m.filtering || m.screen == screenReason && m.logv == nil || m.logv != nil && m.logv.searching
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
