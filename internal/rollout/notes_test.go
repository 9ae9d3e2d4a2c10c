package rollout

import (
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
)

// What the balancer did on its own (a reload noticed, servers drained again)
// reaches the operator as a warning, from the drain's result and from the
// driver's notes, and the run still ends with every host upgraded.
func TestBalancerNotesReachTheOperator(t *testing.T) {
	h := newHarness(t, "")
	h.fake.drainNote = map[string]string{"web2": "haproxy 127.0.0.1:9999 reloaded (pid 10 → 11): drained web2 again"}
	h.fake.notes = []string{"haproxy 127.0.0.1:9999 reloaded (pid 11 → 12) and forgot that web3 was drained: drained it again"}
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	var got []string
	for _, w := range h.eventsOf(event.Warning) {
		got = append(got, w.Host+": "+w.Message)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"web2: drain: haproxy 127.0.0.1:9999 reloaded (pid 10 → 11): drained web2 again",
		"balancer: haproxy 127.0.0.1:9999 reloaded (pid 11 → 12) and forgot that web3 was drained: drained it again",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no warning %q in:\n%s", want, all)
		}
	}
	if n := strings.Count(all, "pid 11 → 12"); n != 1 {
		t.Errorf("the driver's note was told %d times, want once:\n%s", n, all)
	}
	for _, host := range []string{"web1", "web2", "web3"} {
		if v := h.fake.current[host]; v != "1.1.0" {
			t.Errorf("%s runs %s, want 1.1.0", host, v)
		}
	}
}
