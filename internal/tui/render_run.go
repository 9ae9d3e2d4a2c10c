package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/relctl/relctl/internal/event"
)

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// runRows are the indices of the run's hosts the filter keeps (host name
// or state).
func (m *model) runRows() []int {
	f := strings.ToLower(strings.TrimSpace(m.filter.Value()))
	out := make([]int, 0, len(m.run.rows))
	for i, h := range m.run.rows {
		if f == "" || strings.Contains(strings.ToLower(h.name), f) || strings.Contains(h.label(), f) {
			out = append(out, i)
		}
	}
	return out
}

// selectedRow is the host under the cursor.
func (m *model) selectedRow() *hostRow {
	if m.run == nil || len(m.run.rows) == 0 {
		return nil
	}
	if m.filter.Value() == "" {
		return m.run.rows[min(m.cursor, len(m.run.rows)-1)]
	}
	rows := m.runRows()
	if len(rows) == 0 {
		return nil
	}
	return m.run.rows[rows[min(m.cursor, len(rows)-1)]]
}

// runFixed is the number of lines above the host table's rows.
func (m *model) runFixed() int {
	n := 3 // progress, info, table header
	if m.o.Demo {
		n++
	}
	return n
}

// runSplit divides the body between host rows and the output pane (or
// the dialog).
func (m *model) runSplit(w, bodyH int) (listH, outH int) {
	if m.run == nil {
		return 1, 1
	}
	avail := bodyH - m.runFixed()
	if dlg := m.dialogBox(w); dlg != "" {
		return max(avail-lipgloss.Height(dlg), 1), 0
	}
	n := len(m.run.rows)
	listH = max(min(n, avail/2), min(3, avail-2))
	if n < listH {
		listH = max(n, 1)
	}
	outH = max(avail-listH-1, 1)
	return listH, outH
}

// renderRun: progress, phase, side-by-side time, traffic, host rows and the
// selected host's output (or a dialog).
func (m *model) renderRun(w, h int) string {
	r := m.run
	if r == nil {
		return m.st.dim.Render("starting…")
	}
	listH, outH := m.runSplit(w, h)
	var b strings.Builder
	b.WriteString(m.progressLine(w) + "\n")
	b.WriteString(m.infoLine(w) + "\n")
	if m.o.Demo {
		b.WriteString(m.trafficLine(w) + "\n")
	}
	b.WriteString(m.renderHostTable(w, listH))
	if dlg := m.dialogBox(w); dlg != "" {
		b.WriteString("\n" + dlg)
		return b.String()
	}
	b.WriteString("\n" + m.renderOutput(w, outH+1))
	return b.String()
}

func (m *model) progressLine(w int) string {
	r := m.run
	label := fmt.Sprintf(" %d/%d hosts", r.done, r.todo)
	if r.inRollback {
		label = fmt.Sprintf(" %d/%d hosts back", r.done, r.todo)
	}
	barW := min(max(w/3, 10), 40)
	pct := 0.0
	if r.todo > 0 {
		pct = float64(r.done) / float64(r.todo)
	}
	full := int(pct*float64(barW) + 0.5)
	bar := m.st.barFull.Render(strings.Repeat("█", full)) + m.st.barEmpty.Render(strings.Repeat("░", barW-full))
	phase := r.phase
	switch {
	case r.finished:
		phase = "finished: " + string(r.outcome)
	case m.quitting:
		phase = "aborting, then quitting: " + phase
	case r.paused:
		phase = "PAUSED after the hosts in flight · " + phase
	}
	rest := max(w-barW-len(label)-3, 0)
	return bar + m.st.bold.Render(label) + " · " + cell(phase, rest)
}

func (m *model) infoLine(w int) string {
	r := m.run
	var parts []string
	if !r.startTime.IsZero() {
		end := m.now
		if r.finished {
			end = r.lastTime
		}
		parts = append(parts, "elapsed "+clock(end.Sub(r.startTime)))
	}
	d, ongoing := r.sideBySide(m.now)
	switch {
	case ongoing:
		parts = append(parts, m.st.warn.Render("old+new side by side "+clock(d)))
	case r.wasMixed:
		parts = append(parts, "old+new served side by side for "+clock(d))
	}
	if r.pnr != "" {
		parts = append(parts, m.st.pnr.Render("past the point of no return"))
	}
	if n := len(r.log); n > 0 {
		parts = append(parts, m.st.dim.Render(r.log[n-1]))
	}
	return cell(strings.Join(parts, " · "), w)
}

func (m *model) trafficLine(w int) string {
	t := m.traffic
	if t == nil {
		return m.st.dim.Render("traffic: none yet")
	}
	failed := t.Failed
	fs := fmt.Sprintf("%d failed", failed)
	if failed > 0 {
		fs = m.st.badStrong.Render(fs)
	} else {
		fs = m.st.ok.Render(fs)
	}
	return cell(fmt.Sprintf("traffic: %d requests · %s · p50 %s · p99 %s", t.Requests, fs,
		t.P50.Round(10*time.Microsecond), t.P99.Round(10*time.Microsecond)), w)
}

// renderHostTable renders only the visible rows.
func (m *model) renderHostTable(w, listH int) string {
	r := m.run
	var idx []int
	n := len(r.rows)
	if m.filter.Value() != "" {
		idx = m.runRows()
		n = len(idx)
	}
	nameW := 6
	for _, h := range r.rows[:min(len(r.rows), 2000)] {
		nameW = max(nameW, len(h.name))
	}
	nameW = min(nameW, 20)
	const stateW, verW, timeW = 18, 10, 7
	msgW := max(w-2-nameW-stateW-verW-timeW-4, 0)
	var b strings.Builder
	head := "  " + cell("HOST", nameW) + " " + cell("STATE", stateW) + " " + cell("VERSION", verW) + " " + cell("TIME", timeW)
	if n > listH {
		head += " " + fmt.Sprintf("%d–%d of %d", m.offsetFor(n, listH)+1, min(m.offsetFor(n, listH)+listH, n), n)
	}
	b.WriteString(m.st.colHead.Render(cell(head, w)))
	off := m.offsetFor(n, listH)
	cur := min(m.cursor, max(n-1, 0))
	for i := off; i < min(off+listH, n); i++ {
		ri := i
		if idx != nil {
			ri = idx[i]
		}
		h := r.rows[ri]
		b.WriteString("\n")
		b.WriteString(m.hostLine(h, i == cur, nameW, stateW, verW, timeW, msgW))
	}
	if n == 0 {
		b.WriteString("\n" + m.st.dim.Render("no host matches the filter"))
	}
	return b.String()
}

func (m *model) offsetFor(n, listH int) int {
	return scrollOffset(m.offset, min(m.cursor, max(n-1, 0)), n, listH, true)
}

func (m *model) hostLine(h *hostRow, selected bool, nameW, stateW, verW, timeW, msgW int) string {
	mark := "  "
	if selected {
		mark = "▸ "
	}
	if h.active() && !m.run.finished {
		mark = spinnerFrames[m.frame%len(spinnerFrames)] + " "
	}
	el := ""
	if !h.started.IsZero() {
		end := h.ended
		if end.IsZero() {
			end = m.now
		}
		el = clock(end.Sub(h.started))
	}
	msg := ""
	if h.msg != "" && msgW > 0 {
		msg = " " + cell(h.msg, msgW)
	}
	if selected {
		plain := mark + cell(h.name, nameW) + " " + cell(h.label(), stateW) + " " + cell(h.version, verW) + " " + cell(el, timeW) + msg
		return m.st.selected.Render(plain)
	}
	st := m.stateStyle(h).Render(cell(h.label(), stateW))
	if msg != "" {
		msg = m.stateStyle(h).Render(msg)
	}
	return m.st.active.Render(mark) + cell(h.name, nameW) + " " + st + " " + cell(h.version, verW) + " " + m.st.dim.Render(cell(el, timeW)) + msg
}

func (m *model) stateStyle(h *hostRow) lipgloss.Style {
	switch h.state {
	case event.HostInService:
		return m.st.ok
	case event.HostFailed, event.HostLeftDrained:
		return m.st.badStrong
	case event.HostRolledBack, event.HostReverting:
		return m.st.warn
	case "", event.HostQueued, event.HostSkipped, event.HostStaged:
		return m.st.dim
	}
	return m.st.active
}

// renderOutput is the selected host's streamed output, following the end
// unless scrolled back.
func (m *model) renderOutput(w, h int) string {
	sel := m.selectedRow()
	name := "-"
	var lines []string
	if sel != nil {
		name, lines = sel.name, sel.lines
	}
	title := "── output: " + name + " "
	if m.outScroll > 0 {
		title += fmt.Sprintf("(scrolled back %d lines, pgdn) ", m.outScroll)
	}
	var b strings.Builder
	b.WriteString(m.st.dim.Render(title + strings.Repeat("─", max(w-len([]rune(title)), 0))))
	h--
	end := max(len(lines)-m.outScroll, 0)
	start := max(end-h, 0)
	if len(lines) == 0 {
		b.WriteString("\n" + m.st.dim.Render("  (no output yet)"))
	}
	for _, l := range lines[start:end] {
		b.WriteString("\n" + cell("  "+l, w))
	}
	return b.String()
}
