package view

import (
	"fmt"
	"sort"
	"strings"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

// Exit codes of a run (and of relctl as a whole). They are documented in
// README.md; scripts depend on them.
const (
	ExitOK         = 0 // done, or nothing to do
	ExitError      = 1 // something failed; the message says what and where
	ExitUsage      = 2 // bad flags or a bad inventory: nothing was touched
	ExitRolledBack = 3 // the run failed and every switched host went back
	ExitLocked     = 4 // another run holds the fleet's lock
	ExitAborted    = 5 // the operator aborted (or refused a gate); every host is in service
	ExitPaused     = 6 // a host is out of rotation (LEFT DRAINED), or the run paused: the operator must act
	ExitPartial    = 7 // partially upgraded: the failure budget left the fleet on two versions
	ExitRefused    = 8 // a before_run hook refused the run: no lock taken, nothing touched
)

// RunEnd is how a run ended, as the verdict reads it.
type RunEnd struct {
	Outcome event.Outcome
	Summary event.Summary
	// Locked: the run was refused because another run holds the lock.
	Locked bool
}

// Verdict maps how a run ended to relctl's exit code and the lines that
// name every host that is not in service on the run's target. It is pure:
// the table test in exit_test.go is the contract README.md documents.
//
// The order matters: a host out of rotation outranks every other outcome
// (exit 6), whatever the run's outcome says, so that no code can hide it.
func Verdict(r RunEnd) (int, []string) {
	s := r.Summary
	var lines []string
	if s.Forced {
		lines = append(lines, "forced: a second interrupt ended the run; the host in flight had one attempt to go back into rotation")
	}
	for _, h := range sortedKeys(s.LeftDrained) {
		lines = append(lines, fmt.Sprintf("NOT IN SERVICE: %s is LEFT DRAINED (out of rotation): %s", h, s.LeftDrained[h]))
	}
	stillOut := 0
	for _, o := range s.OutBefore {
		if _, named := s.LeftDrained[o.Host]; !o.BackUp && !named {
			stillOut++
			lines = append(lines, "NOT IN SERVICE: "+OutBeforeLine(o))
		}
	}
	notOn := func(hs []string) string {
		var parts []string
		for _, h := range hs {
			v := s.Versions[h]
			if v == "" {
				v = "an unknown version"
			}
			parts = append(parts, h+" on "+v)
		}
		return strings.Join(parts, ", ")
	}
	if len(s.Failed) > 0 {
		lines = append(lines, fmt.Sprintf("failed and not on %s: %s", s.To, notOn(s.Failed)))
	}
	if s.Lock != "" {
		lines = append(lines, "lock: "+s.Lock)
	}
	code := ExitOK
	switch {
	case len(s.LeftDrained) > 0 || stillOut > 0:
		code = ExitPaused
	case r.Locked:
		code = ExitLocked
	case r.Outcome == event.OutcomePaused:
		code = ExitPaused
		lines = append(lines, "paused: finish it with relctl resume, or roll it back with relctl resume --rollback")
	case r.Outcome == event.OutcomePartial,
		r.Outcome == event.OutcomeSucceeded && (len(s.Failed) > 0 || len(s.RolledBack) > 0 && s.Kind != plan.KindRollback):
		code = ExitPartial
		behind := notOn(append(append([]string(nil), s.RolledBack...), s.Failed...))
		if behind == "" && len(s.Held) > 0 {
			// A selection: the hosts it left out are behind, on purpose.
			lines = append(lines, s.Held...)
			lines = append(lines, fmt.Sprintf("partially upgraded: %s on %s; the hosts not selected stay on their version; post-migrate did not run", orNone(s.Upgraded), s.To))
			break
		}
		if behind == "" {
			behind = "the other hosts"
		}
		lines = append(lines, fmt.Sprintf("partially upgraded: %s on %s; %s stayed behind within the failure budget (max_failed_hosts); post-migrate did not run",
			orNone(s.Upgraded), s.To, behind))
	case r.Outcome == event.OutcomeSucceeded:
		code = ExitOK
	case r.Outcome == event.OutcomeRolledBack:
		code = ExitRolledBack
		if len(s.Failed) > 0 {
			// A host the rollback could not take back still serves the
			// version it was on: the fleet is not where "rolled back" says.
			code = ExitError
		}
		if len(s.RolledBack) > 0 {
			lines = append(lines, fmt.Sprintf("went back: %s", notOn(s.RolledBack)))
		}
	case r.Outcome == event.OutcomeAborted:
		code = ExitAborted
	default:
		code = ExitError
	}
	return code, lines
}

func orNone(hs []string) string {
	if len(hs) == 0 {
		return "no host"
	}
	return strings.Join(hs, ", ")
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// OutBeforeLine says what became of a host that was out of service before
// a forced run: "web2 was DOWN (check L4CON) before the run; back UP, in
// rotation" or "...; still out of rotation".
func OutBeforeLine(o event.OutBefore) string {
	after := "back UP, in rotation"
	if !o.BackUp {
		after = "still out of rotation"
	}
	return fmt.Sprintf("%s was %s before the run; %s", o.Host, o.Was, after)
}
