package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

// doneHead is the run's summary, wrapped to w: left-drained hosts first
// and loud, errors and the journal path wrapped, never cut.
func (m *runPane) doneHead(w int) []string {
	r := m.run
	s := r.summary
	if s == nil {
		s = &event.Summary{Error: r.errText}
	}
	var out []string
	add := func(lines ...string) { out = append(out, lines...) }
	wrapStyled := func(render func(...string) string, text string) {
		for _, l := range wrapIndent(text, w) {
			add(render(ansi.Hardwrap(l, w, true)))
		}
	}
	outcome := strings.ToUpper(string(r.outcome))
	var head string
	switch r.outcome {
	case event.OutcomeSucceeded:
		head = m.st.ok.Bold(true).Render("✓ " + outcome)
	case event.OutcomeRolledBack, event.OutcomePaused:
		head = m.st.warn.Bold(true).Render("↺ " + outcome)
	default:
		head = m.st.badStrong.Render("✗ " + outcome)
	}
	if s.From != "" {
		head += fmt.Sprintf("  %s %s → %s", s.Kind, s.From, s.To)
	}
	add(head)
	if s.Error != "" {
		wrapStyled(m.st.bad.Render, "error: "+s.Error)
	}
	if n := len(s.LeftDrained); n > 0 {
		add(m.st.banner.Render(cell(fmt.Sprintf(" LEFT DRAINED: %d host(s) out of the balancer — check them first ", n), w)))
		for _, host := range sortedKeys(s.LeftDrained) {
			why := strings.TrimPrefix(s.LeftDrained[host], host+": ")
			wrapStyled(m.st.badStrong.Render, "  "+host+": "+why)
		}
	}
	list := func(label string, names []string) {
		if len(names) == 0 {
			return
		}
		head := fmt.Sprintf("%-13s ", fmt.Sprintf("%s (%d):", label, len(names)))
		add(head + joinLimited(names, max(w-len(head), 10)))
	}
	list("failed", s.Failed)
	list(doneVerb(s.Kind), s.Upgraded)
	list("rolled back", s.RolledBack)
	list("skipped", s.Skipped)
	if s.Kind == plan.KindUpgrade {
		if s.PostMigrated {
			add("post-migrate: ran (rollback is no longer possible; an emergency downgrade is)")
		} else {
			add("post-migrate: not run")
		}
	}
	for _, l := range r.doneAnalysisLines() {
		wrapStyled(func(x ...string) string { return strings.Join(x, " ") }, l)
	}
	took := s.Elapsed
	if took == 0 && !r.startTime.IsZero() {
		took = r.lastTime.Sub(r.startTime)
	}
	line := "took " + took.Round(time.Second).String()
	if d, _ := r.sideBySide(r.lastTime); r.wasMixed {
		line += " · old and new served side by side for " + clock(d)
	}
	add(line)
	if s.Lock != "" {
		wrapStyled(m.st.warn.Render, "lock: "+s.Lock)
	}
	if s.Journal != "" {
		for _, l := range strings.Split(ansi.Hardwrap("journal: "+s.Journal, w, true), "\n") {
			add(l)
		}
	}
	if r.runID != "" {
		add(m.st.dim.Render(cell("relctl history shows this run as "+r.runID, w)))
	}
	return out
}

// doneVerb is what the summary calls the hosts a run of kind k moved.
func doneVerb(k plan.Kind) string {
	switch k {
	case plan.KindDowngrade:
		return "downgraded"
	case plan.KindRollback:
		return "rolled back"
	case plan.KindRepair:
		return "repaired"
	}
	return "upgraded"
}

// doneHeadHeight is the summary's height, for the layout.
func (m *runPane) doneHeadHeight(w int) int {
	if m.run == nil {
		return 0
	}
	return len(m.doneHead(w))
}

// renderDone is the summary, then the host list (with its filter and
// logs) or the run's timeline.
func (m *model) renderDone(w, h int) string {
	r := m.run
	if r == nil {
		return ""
	}
	head := m.doneHead(w)
	rest := h - len(head) - 1
	var b strings.Builder
	b.WriteString(strings.Join(head, "\n"))
	if rest < 2 {
		return b.String()
	}
	b.WriteString("\n")
	if m.showTimeline {
		b.WriteString(m.renderTimeline(w, rest+1))
		return b.String()
	}
	b.WriteString(m.renderHostTable(w, rest))
	return b.String()
}

// renderTimeline is the run's steps and batches with their durations.
func (m *runPane) renderTimeline(w, h int) string {
	r := m.run
	var b strings.Builder
	b.WriteString(m.st.colHead.Render(cell(fmt.Sprintf("%-8s %-8s %s", "START", "TOOK", "STEP OR BATCH"), w)))
	tl := r.timeline
	if len(tl) > h-1 {
		// Keep the end: that is where a run that went wrong went wrong.
		b.WriteString("\n" + m.st.dim.Render(cell(fmt.Sprintf("… %d earlier entries", len(tl)-(h-2)), w)))
		tl = tl[len(tl)-(h-2):]
	}
	for _, sp := range tl {
		at := "+" + clock(sp.start.Sub(r.startTime))
		took := "…"
		if !sp.end.IsZero() {
			took = clock(sp.end.Sub(sp.start))
		}
		b.WriteString("\n" + cell(fmt.Sprintf("%-8s %-8s %s", at, took, sp.name), w))
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
