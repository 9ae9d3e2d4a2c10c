package view

import (
	"bytes"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
)

func TestSessionsLine(t *testing.T) {
	for _, c := range []struct {
		in   map[string]int
		want string
	}{
		{nil, ""},
		{map[string]int{"web1": 2, "web2": 2}, "2 per host (max 2)"},
		{map[string]int{"web1": 2, "web2": 4, "web3": 1}, "2.3 per host (max 4: web2)"},
		{map[string]int{"web1": 1, "web2": 3}, "2.0 per host (max 3: web2)"},
	} {
		if got := SessionsLine(c.in); got != c.want {
			t.Errorf("SessionsLine(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The plain summary says how many SSH sessions the run opened per host.
func TestSummaryPrintsSessions(t *testing.T) {
	var b bytes.Buffer
	Summary(&b, event.OutcomeSucceeded, event.Summary{Kind: "upgrade", From: "1.0.0", To: "1.1.0", SSHSessions: map[string]int{"web1": 2, "web2": 2}})
	if !strings.Contains(b.String(), "ssh sessions:\t2 per host (max 2)\n") {
		t.Errorf("summary:\n%s", b.String())
	}
	b.Reset()
	Summary(&b, event.OutcomeSucceeded, event.Summary{Kind: "upgrade", From: "1.0.0", To: "1.1.0"})
	if strings.Contains(b.String(), "ssh sessions") {
		t.Errorf("sessions printed without counts:\n%s", b.String())
	}
}
