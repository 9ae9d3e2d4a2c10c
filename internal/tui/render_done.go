package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/event"
)

// renderDone is the run's summary: left-drained hosts first and loud.
func (m *model) renderDone(w, h int) string {
	r := m.run
	if r == nil {
		return ""
	}
	s := r.summary
	if s == nil {
		s = &event.Summary{Error: r.errText}
	}
	var b strings.Builder
	outcome := strings.ToUpper(string(r.outcome))
	switch r.outcome {
	case event.OutcomeSucceeded:
		b.WriteString(m.st.ok.Bold(true).Render("✓ " + outcome))
	case event.OutcomeRolledBack, event.OutcomePaused:
		b.WriteString(m.st.warn.Bold(true).Render("↺ " + outcome))
	default:
		b.WriteString(m.st.badStrong.Render("✗ " + outcome))
	}
	if s.From != "" {
		b.WriteString(fmt.Sprintf("  %s %s → %s", s.Kind, s.From, s.To))
	}
	b.WriteString("\n")
	if s.Error != "" {
		for _, l := range wrapIndent("error: "+s.Error, w) {
			b.WriteString(m.st.bad.Render(l) + "\n")
		}
	}
	if n := len(s.LeftDrained); n > 0 {
		b.WriteString(m.st.banner.Render(cell(fmt.Sprintf(" LEFT DRAINED: %d host(s) out of the balancer — check them first ", n), w)) + "\n")
		for _, host := range sortedKeys(s.LeftDrained) {
			why := strings.TrimPrefix(s.LeftDrained[host], host+": ")
			for _, l := range wrapIndent("  "+host+": "+why, w) {
				b.WriteString(m.st.badStrong.Render(l) + "\n")
			}
		}
	}
	list := func(label string, names []string) {
		if len(names) == 0 {
			return
		}
		head := fmt.Sprintf("%-13s", fmt.Sprintf("%s (%d):", label, len(names)))
		b.WriteString(head + " " + joinLimited(names, max(w-len(head)-1, 10)) + "\n")
	}
	list("failed", s.Failed)
	list("upgraded", s.Upgraded)
	list("rolled back", s.RolledBack)
	list("skipped", s.Skipped)
	if s.Kind != "" {
		if s.PostMigrated {
			b.WriteString("post-migrate: ran (rollback is no longer possible; an emergency downgrade is)\n")
		} else {
			b.WriteString("post-migrate: not run\n")
		}
	}
	took := s.Elapsed
	if took == 0 && !r.startTime.IsZero() {
		took = r.lastTime.Sub(r.startTime)
	}
	b.WriteString("took " + took.Round(time.Second).String())
	if d, _ := r.sideBySide(r.lastTime); r.wasMixed {
		b.WriteString(" · old and new served side by side for " + clock(d))
	}
	b.WriteString("\n")
	if s.Journal != "" {
		b.WriteString("journal: " + s.Journal + "\n")
	}
	if r.runID != "" {
		b.WriteString(m.st.dim.Render("relctl history shows this run as " + r.runID))
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
