package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// noTraffic is a Backend without the TrafficSource capability.
type noTraffic struct{ Backend }

// TestTrafficSource: the traffic line is fed only by a backend that has a
// TrafficSource, and says "none yet" until it has numbers.
func TestTrafficSource(t *testing.T) {
	if cmd := trafficCmd(noTraffic{newFakeBackend(1)}); cmd != nil {
		t.Fatal("a backend without traffic got a traffic command")
	}
	b := newFakeBackend(2)
	if msg := trafficCmd(b)(); msg.(trafficMsg).stats != nil {
		t.Fatalf("no traffic yet, got %+v", msg.(trafficMsg).stats)
	}
	b.traffic = &TrafficStats{Requests: 42, Failed: 2, P50: time.Millisecond, P99: 5 * time.Millisecond}
	msg := trafficCmd(b)()
	m := testModel(t, b, Options{Demo: true}, 100, 30)
	if got := ansi.Strip(m.trafficLine(100)); !strings.Contains(got, "none yet") {
		t.Fatalf("before any numbers: %q", got)
	}
	send(t, m, msg)
	got := ansi.Strip(m.trafficLine(100))
	if !strings.Contains(got, "42 requests") || !strings.Contains(got, "2 failed") || !strings.Contains(got, "p99 5ms") {
		t.Fatalf("traffic line %q", got)
	}
}
