package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// selectedRow is the host under the cursor of the run's host list.
func (m *runPane) selectedRow() *hostRow {
	if m.run == nil {
		return nil
	}
	return m.list.selected(m.run, m.runOrder())
}

// runFixed is the number of lines above the host table's rows.
func (m *model) runFixed() int {
	n := 4 // progress, counts, info, table header
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

// outMaxScroll is how far back the output pane can scroll: to its first
// line, never past it.
func (m *model) outMaxScroll() int {
	sel := m.selectedRow()
	if sel == nil {
		return 0
	}
	return max(len(sel.lines)-m.outputHeight(), 0)
}

// renderRun: progress, counts, phase, traffic, host rows and the selected
// host's output (or a dialog).
func (m *model) renderRun(w, h int) string {
	r := m.run
	if r == nil {
		return m.st.dim.Render("starting…")
	}
	listH, outH := m.runSplit(w, h)
	var b strings.Builder
	b.WriteString(m.progressLine(w) + "\n")
	if dlg := m.dialogBox(w); dlg != "" && m.runFixed()+1+lipgloss.Height(dlg) > h {
		// A short terminal: the question, whole, before the host list.
		b.WriteString(dlg)
		return b.String()
	}
	b.WriteString(m.countsLine(w) + "\n")
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

// progressText is "3/60 hosts · hop 1/2": hosts done in the hop under
// way, and the hop, never hosts × hops.
func (r *runState) progressText() (string, float64) {
	if r.plan == nil {
		return "", 0
	}
	if r.inRollback {
		return fmt.Sprintf("%d/%d hosts back", r.done, r.todo), frac(r.done, r.todo)
	}
	if r.progRev == r.rev && r.progText != "" {
		return r.progText, frac(r.done, r.todo)
	}
	r.progText = r.hopProgress()
	r.progRev = r.rev
	return r.progText, frac(r.done, r.todo)
}

// hopProgress is "3/60 hosts · hop 1/2" (without the hop for one hop).
func (r *runState) hopProgress() string {
	hops := max(len(r.plan.Hops), 1)
	hop := min(max(r.hop, 0), hops-1)
	inHop, doneHop := 0, 0
	for _, s := range r.plan.Steps {
		if s.Kind == plan.StepDeploy && s.Hop == hop {
			inHop++
			if r.started[s.ID] {
				if i, ok := r.idx[s.Host]; ok && !r.rows[i].inStep {
					doneHop++
				}
			}
		}
	}
	if hops == 1 {
		return fmt.Sprintf("%d/%d hosts", doneHop, inHop)
	}
	return fmt.Sprintf("%d/%d hosts · hop %d/%d", doneHop, inHop, hop+1, hops)
}

func frac(a, b int) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (m *model) progressLine(w int) string {
	r := m.run
	text, pct := r.progressText()
	pct = min(max(pct, 0), 1)
	label := " " + text
	barW := min(max(w/4, 10), 40)
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
	rest := max(w-barW-len([]rune(label))-3, 0)
	return bar + m.st.bold.Render(label) + " · " + cell(phase, rest)
}

// countsLine is the hosts by state: in flight · in service · failed ·
// waiting (and rolled back, left drained when any).
func (m *runPane) countsLine(w int) string {
	flight, service, failed, waiting, back, drained := stateCounts(m.run)
	parts := []string{
		m.st.active.Render(fmt.Sprintf("in flight %d", flight)),
		m.st.ok.Render(fmt.Sprintf("in service %d", service)),
	}
	f := fmt.Sprintf("failed %d", failed)
	if failed > 0 {
		parts = append(parts, m.st.badStrong.Render(f))
	} else {
		parts = append(parts, f)
	}
	parts = append(parts, m.st.dim.Render(fmt.Sprintf("waiting %d", waiting)))
	if back > 0 {
		parts = append(parts, m.st.warn.Render(fmt.Sprintf("rolled back %d", back)))
	}
	if drained > 0 {
		parts = append(parts, m.st.badStrong.Render(fmt.Sprintf("LEFT DRAINED %d", drained)))
	}
	return cell(strings.Join(parts, " · "), w)
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
	if r.pnr != "" && !r.finished {
		if r.pastNoReturn() {
			parts = append(parts, m.st.pnr.Render("past the point of no return"))
		} else if info := r.rollbackNow(); info.ok {
			parts = append(parts, m.st.warn.Render(r.pnr+" ran: rollback goes back to "+info.to+" only"))
		}
	}
	if r.lockLost != "" {
		parts = append(parts, m.st.badStrong.Render("LOCK LOST"))
	}
	d, ongoing := r.sideBySide(m.now)
	switch {
	case ongoing:
		parts = append(parts, m.st.warn.Render("old+new side by side "+clock(d)))
	case r.wasMixed:
		parts = append(parts, "old+new served side by side for "+clock(d))
	}
	if r.note != "" {
		parts = append(parts, m.st.dim.Render(r.note))
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

// hostCols are the widths of the host table's columns.
type hostCols struct{ name, state, ver, time, note int }

func (m *runPane) hostColumns(w int) hostCols {
	nameW := 6
	for _, h := range m.run.rows[:min(len(m.run.rows), 2000)] {
		nameW = max(nameW, len(h.name))
	}
	c := hostCols{name: min(nameW, 20), state: 18, ver: 10, time: 7}
	c.note = max(w-2-c.name-c.state-c.ver-c.time-4, 0)
	return c
}

// renderHostTable renders the header and only the visible rows.
func (m *runPane) renderHostTable(w, listH int) string {
	r := m.run
	order := m.runOrder()
	n := len(order)
	c := m.hostColumns(w)
	cur := m.list.cursor(r, order)
	off := scrollOffset(m.list.offset, cur, n, listH, true)
	m.list.offset = off
	var b strings.Builder
	head := "  " + cell("HOST", c.name) + " " + cell("STATE", c.state) + " " + cell("VERSION", c.ver) + " " + cell("TIME", c.time)
	if c.note > 0 {
		note := "NOTE"
		if n > listH {
			note = fmt.Sprintf("NOTE (rows %d–%d of %d)", off+1, min(off+listH, n), n)
		}
		head += " " + cell(note, c.note)
	}
	b.WriteString(m.st.colHead.Render(cell(head, w)))
	for i := off; i < min(off+listH, n); i++ {
		b.WriteString("\n")
		b.WriteString(m.hostLine(r.rows[order[i]], i == cur, c))
	}
	if n == 0 {
		b.WriteString("\n" + m.st.dim.Render("no host matches the filter"))
	}
	return b.String()
}

func (m *runPane) hostLine(h *hostRow, selected bool, c hostCols) string {
	mark := "  "
	if selected {
		mark = "▸ "
	}
	if h.active() && !m.run.finished {
		mark = spinnerFrames[m.clk.frame%len(spinnerFrames)] + " "
		if selected {
			mark = "▸" + spinnerFrames[m.clk.frame%len(spinnerFrames)]
		}
	}
	el := ""
	if !h.started.IsZero() {
		end := h.ended
		if end.IsZero() {
			end = m.clk.now
			if m.run.finished {
				end = m.run.lastTime
			}
		}
		el = clock(end.Sub(h.started))
	}
	msg := ""
	if h.msg != "" && c.note > 0 {
		msg = " " + cell(h.msg, c.note)
	}
	if selected {
		plain := mark + cell(h.name, c.name) + " " + cell(h.label(), c.state) + " " + cell(h.version, c.ver) + " " + cell(el, c.time) + msg
		return m.st.selected.Render(plain)
	}
	st := m.stateStyle(h).Render(cell(h.label(), c.state))
	if msg != "" {
		msg = m.stateStyle(h).Render(msg)
	}
	return m.st.active.Render(mark) + cell(h.name, c.name) + " " + st + " " + cell(h.version, c.ver) + " " + m.st.dim.Render(cell(el, c.time)) + msg
}

func (m *runPane) stateStyle(h *hostRow) lipgloss.Style {
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
// unless scrolled back (never past its first line).
func (m *runPane) renderOutput(w, h int) string {
	sel := m.selectedRow()
	name := "-"
	var lines []string
	if sel != nil {
		name, lines = sel.name, sel.texts()
	}
	title := "── output: " + name + " (enter: full log) "
	h--
	scroll := min(m.outScroll, max(len(lines)-h, 0))
	if scroll > 0 {
		title += fmt.Sprintf("(back %d lines, pgdn) ", scroll)
	}
	var b strings.Builder
	b.WriteString(m.st.dim.Render(title + strings.Repeat("─", max(w-len([]rune(title)), 0))))
	end := max(len(lines)-scroll, 0)
	start := max(end-h, 0)
	if len(lines) == 0 {
		b.WriteString("\n" + m.st.dim.Render("  (no output yet)"))
	}
	for _, l := range lines[start:end] {
		b.WriteString("\n" + cell("  "+l, w))
	}
	return b.String()
}
