package view_test

import (
	"io"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/view"
)

// BenchmarkEventStream measures one event's way from the engine to every
// consumer a run has: the journal (a real file, buffered; synced only at
// step boundaries), the plain printer and the JSON printer, and the TUI's
// channel (drained by a reader). The figure that matters is events/s.
func BenchmarkEventStream(b *testing.B) {
	j, err := journal.Create(b.TempDir(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ch := event.NewChan(4096)
	done := make(chan struct{})
	go func() {
		for range ch.C {
		}
		close(done)
	}()
	bus := event.NewBus("bench", time.Now, j, view.NewPlain(io.Discard), view.NewJSON(io.Discard), ch)
	e := event.Event{Type: event.StepOutput, Step: "deploy/web42", Host: "web42", Stream: "stdout",
		Line: "GET /health 200 in 1.2ms (shop 1.4.0, pid 4242)"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		bus.Emit(e)
	}
	b.StopTimer()
	ch.Close()
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func TestPlainLines(t *testing.T) {
	cases := []struct {
		e    event.Event
		want string
	}{
		{event.Event{Type: event.ActionDone, Host: "web1", Action: "drain", Status: event.StatusOK, Message: "out of rotation, idle after 12ms", Duration: 12 * time.Millisecond}, "web1\tok\tdrain: out of rotation, idle after 12ms (12ms)"},
		{event.Event{Type: event.ActionDone, Host: "web2", Action: "health", Status: event.StatusFailed, Error: "not healthy within 5s"}, "web2\tFAILED\thealth: not healthy within 5s"},
		{event.Event{Type: event.HostChanged, Host: "web2", State: event.HostLeftDrained, Message: "sshd gone"}, "web2\tLEFT DRAINED\tsshd gone"},
		{event.Event{Type: event.StepOutput, Host: "web3", Stream: "stderr", Line: "boom"}, "web3\tstderr\tboom"},
		{event.Event{Type: event.HostChanged, Host: "web3", State: event.HostDraining}, ""},
	}
	for _, c := range cases {
		if got := view.PlainLine(c.e, true); got != c.want {
			t.Errorf("PlainLine(%s) = %q, want %q", c.e.Type, got, c.want)
		}
	}
	if got := view.PlainLine(cases[3].e, false); got != "" {
		t.Errorf("output lines printed with output off: %q", got)
	}
}
