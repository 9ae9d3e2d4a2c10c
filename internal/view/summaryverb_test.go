package view

import (
	"bytes"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

// The summary names the hosts a run moved with the run's own verb: a
// downgrade's hosts were downgraded, not upgraded.
func TestSummaryVerbIsTheRunsKind(t *testing.T) {
	for kind, want := range map[plan.Kind]string{"upgrade": "upgraded:\tweb1", "downgrade": "downgraded:\tweb1", "repair": "repaired:\tweb1"} {
		var b bytes.Buffer
		Summary(&b, event.OutcomeSucceeded, event.Summary{Kind: kind, Upgraded: []string{"web1"}})
		if out := b.String(); !strings.Contains(out, "\n"+want+"\n") {
			t.Errorf("%s summary lacks %q:\n%s", kind, want, out)
		}
	}
}
