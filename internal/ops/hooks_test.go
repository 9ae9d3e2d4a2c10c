package ops

import (
	"context"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/view"
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

// The operator's reason and ticket go into every plan this invocation
// prepares; a resume that continues a run keeps the run's own and refuses
// a different one (exit 2), while its rollback takes the new ones.
func TestNoteReachesPlans(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.env.Reason, f.env.Ticket = "checkout fix", "CHG-1"
	pr, err := f.env.PlanUpgrade(ctx, UpgradeOptions{To: "1.4.0"})
	if err != nil || pr.Plan.Reason != "checkout fix" || pr.Plan.Ticket != "CHG-1" {
		t.Fatalf("upgrade plan: %+v, %v", pr, err)
	}
	if !strings.Contains(plan.RenderText(pr.Plan), "CHG-1") {
		t.Error("the preview does not show the ticket")
	}
	for h := range f.versions {
		f.versions[h] = "1.4.0"
	}
	pr, err = f.env.PlanDowngrade(ctx, "1.3.2", "its own reason")
	if err != nil || pr.Plan.Reason != "its own reason" || pr.Plan.Ticket != "CHG-1" {
		t.Fatalf("downgrade plan: %+v, %v", pr, err)
	}
	for h := range f.versions {
		f.versions[h] = "1.3.2"
	}

	p := f.upgrade()
	p.Ticket = "CHG-0"
	f.journalState(p, plan.StepDeploy, "")
	f.lock = nil
	if _, err := f.env.PlanResume(ctx, false); Code(err) != view.ExitUsage || !strings.Contains(err.Error(), `--ticket: run`) || !strings.Contains(err.Error(), `"CHG-0"`) {
		t.Errorf("resume with another ticket: %v (exit %d)", err, Code(err))
	}
	f.env.Reason, f.env.Ticket = "", "CHG-0"
	if pr, err := f.env.PlanResume(ctx, false); err != nil || pr.Plan.Ticket != "CHG-0" {
		t.Errorf("resume with its own ticket: %+v, %v", pr, err)
	}
	f.env.Reason, f.env.Ticket = "bad canary", "CHG-2"
	pr, err = f.env.PlanResume(ctx, true)
	if err != nil || pr.Plan == nil || pr.Plan.Kind != plan.KindRollback || pr.Plan.Ticket != "CHG-2" || pr.Plan.Reason != "bad canary" {
		t.Errorf("resume --rollback: %+v, %v", pr, err)
	}
}
