package view

import (
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
)

// A host that was out of service before a forced run: back UP, the run's
// own outcome stands and the summary says it; still out (the run never
// reached it, an abort), it is named NOT IN SERVICE and the exit code is
// 6, whatever the outcome; left drained, it is named once.
func TestVerdictOutBefore(t *testing.T) {
	up := event.Summary{From: "1.0.0", To: "1.1.0", Upgraded: []string{"web1", "web2"},
		OutBefore: []event.OutBefore{{Host: "web2", Was: "DOWN (check L4CON)", BackUp: true}}}
	if code, lines := Verdict(RunEnd{Outcome: event.OutcomeSucceeded, Summary: up}); code != ExitOK || len(lines) != 0 {
		t.Errorf("back UP: exit %d, lines %q; want 0 and none", code, lines)
	}
	var b strings.Builder
	Summary(&b, event.OutcomeSucceeded, up)
	if !strings.Contains(b.String(), "out before:\tweb2 was DOWN (check L4CON) before the run; back UP, in rotation") {
		t.Errorf("summary does not say web2 was DOWN and came back:\n%s", b.String())
	}

	out := event.Summary{From: "1.0.0", To: "1.1.0", Upgraded: []string{"web1"},
		OutBefore: []event.OutBefore{{Host: "web2", Was: "DOWN (check L4CON)"}}}
	for _, o := range []event.Outcome{event.OutcomeAborted, event.OutcomeRolledBack, event.OutcomeSucceeded} {
		code, lines := Verdict(RunEnd{Outcome: o, Summary: out})
		if code != ExitPaused || !strings.Contains(strings.Join(lines, "\n"), "NOT IN SERVICE: web2 was DOWN (check L4CON) before the run; still out of rotation") {
			t.Errorf("%s with web2 still out: exit %d, lines %q; want 6 naming web2", o, code, lines)
		}
	}
	b.Reset()
	Summary(&b, event.OutcomeAborted, out)
	if !strings.Contains(b.String(), "web2 was DOWN (check L4CON) before the run; still out of rotation") {
		t.Errorf("summary does not say web2 is still out:\n%s", b.String())
	}

	drained := out
	drained.LeftDrained = map[string]string{"web2": "not healthy"}
	code, lines := Verdict(RunEnd{Outcome: event.OutcomeFailed, Summary: drained})
	if text := strings.Join(lines, "\n"); code != ExitPaused || strings.Count(text, "web2") != 1 {
		t.Errorf("left drained and out before: exit %d, lines %q; want 6 naming web2 once", code, lines)
	}
}
