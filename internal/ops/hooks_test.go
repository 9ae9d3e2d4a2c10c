package ops

import (
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

// When the end hooks run, by how a run ended.
func TestEndHookPoints(t *testing.T) {
	cases := []struct {
		name              string
		outcome           event.Outcome
		s                 event.Summary
		failure, rollback bool
	}{
		{"succeeded", event.OutcomeSucceeded, event.Summary{Kind: plan.KindUpgrade, Upgraded: []string{"web1"}}, false, false},
		{"failed", event.OutcomeFailed, event.Summary{Kind: plan.KindUpgrade, Error: "x"}, true, false},
		{"failure rolled back", event.OutcomeRolledBack, event.Summary{Kind: plan.KindUpgrade, RolledBack: []string{"web1"}, Error: "rolled back after: web1: health"}, true, true},
		{"operator rolled back", event.OutcomeRolledBack, event.Summary{Kind: plan.KindUpgrade, RolledBack: []string{"web1"}}, false, true},
		{"rollback run", event.OutcomeSucceeded, event.Summary{Kind: plan.KindRollback, RolledBack: []string{"web1"}}, false, true},
		{"rollback run incomplete", event.OutcomeFailed, event.Summary{Kind: plan.KindRollback, RolledBack: []string{"web1"}, Failed: []string{"web2"}}, true, true},
		{"left drained", event.OutcomeAborted, event.Summary{Kind: plan.KindUpgrade, LeftDrained: map[string]string{"web1": "x"}}, true, false},
		{"partial", event.OutcomePartial, event.Summary{Kind: plan.KindUpgrade, Failed: []string{"web2"}}, true, false},
		{"aborted in service", event.OutcomeAborted, event.Summary{Kind: plan.KindUpgrade}, false, false},
		{"paused after a failure", event.OutcomePaused, event.Summary{Kind: plan.KindUpgrade, Failed: []string{"web2"}}, true, false},
		{"paused rollback", event.OutcomePaused, event.Summary{Kind: plan.KindRollback, RolledBack: []string{"web1"}}, false, false},
		{"downgrade", event.OutcomeSucceeded, event.Summary{Kind: plan.KindDowngrade, Upgraded: []string{"web1"}}, false, false},
	}
	for _, c := range cases {
		if got := FailureHook(c.outcome, c.s); got != c.failure {
			t.Errorf("%s: on_failure %v, want %v", c.name, got, c.failure)
		}
		if got := RollbackHook(c.outcome, c.s); got != c.rollback {
			t.Errorf("%s: on_rollback %v, want %v", c.name, got, c.rollback)
		}
	}
}

func TestCheckNote(t *testing.T) {
	for _, c := range []struct {
		reason, ticket, want string
	}{
		{"checkout 500s; $(rm -rf /) 'quoted' \"too\" — ünïcode", "CHG-1234", ""},
		{"two\nlines", "", "--reason: must be one line"},
		{"", "CHG\t1", "--ticket: must be one line"},
		{"", "bad\xff", "--ticket: not valid UTF-8"},
		{string(make([]byte, MaxReason+1)), "", "--reason: 501 bytes, at most 500"},
		{"x\u2028y", "", "--reason: must be one line"},
	} {
		err := CheckNote(c.reason, c.ticket)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckNote(%q, %q) = %v", c.reason, c.ticket, err)
		case c.want != "" && (err == nil || Code(err) != 2 || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckNote(%q, %q) = %v (exit %d), want %q, exit 2", c.reason, c.ticket, err, Code(err), c.want)
		}
	}
}
