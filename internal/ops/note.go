package ops

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/view"
)

// Limits of --reason and --ticket: one line of text each.
const (
	MaxReason = 500
	MaxTicket = 200
)

// CheckNote checks the operator's --reason and --ticket: printable text on
// one line, of bounded length. They are data everywhere they go (the plan,
// the lock, the journal, the audit, the hooks' environment and input),
// never shell text; the limits keep them readable in a lock file, a table
// and a chat message.
func CheckNote(reason, ticket string) error {
	for _, f := range []struct {
		flag, v string
		max     int
	}{{"--reason", reason, MaxReason}, {"--ticket", ticket, MaxTicket}} {
		switch {
		case !utf8.ValidString(f.v):
			return fail(view.ExitUsage, fmt.Errorf("%s: not valid UTF-8 text", f.flag))
		case len(f.v) > f.max:
			return fail(view.ExitUsage, fmt.Errorf("%s: %d bytes, at most %d", f.flag, len(f.v), f.max))
		}
		for _, r := range f.v {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
				return fail(view.ExitUsage, fmt.Errorf("%s: must be one line of text, without control characters (found %U)", f.flag, r))
			}
		}
	}
	return nil
}

// annotate records the operator's reason and ticket in a plan this
// invocation prepares: the preview shows them, and the run carries them
// into the lock, the journal's run_started, the audit and the hooks.
func (e *Env) annotate(p *plan.Plan) {
	if p == nil {
		return
	}
	if e.Reason != "" {
		p.Reason = e.Reason
	}
	if e.Ticket != "" {
		p.Ticket = e.Ticket
	}
}

// keepNote refuses a --reason or --ticket that differs from what the
// unfinished run being continued already records: a run has one of each.
func (e *Env) keepNote(run *journal.Run) error {
	var errs []error
	if e.Reason != "" && e.Reason != run.Plan.Reason {
		errs = append(errs, fmt.Errorf("--reason: run %s continues with the reason it started with (%q); --reason applies to resume --rollback", run.ID, run.Plan.Reason))
	}
	if e.Ticket != "" && e.Ticket != run.Plan.Ticket {
		errs = append(errs, fmt.Errorf("--ticket: run %s continues with the ticket it started with (%q); --ticket applies to resume --rollback", run.ID, run.Plan.Ticket))
	}
	return fail(view.ExitUsage, errors.Join(errs...))
}
