package tui

import (
	"fmt"
	"testing"

	"github.com/relctl/relctl/internal/event"
)

// BenchmarkRenderRun1000Hosts renders one frame of the run view of a
// 1,000-host rollout in its third batch, with output on the selected host
// and the traffic panel on. Goal: < 4 ms per frame.
func BenchmarkRenderRun1000Hosts(b *testing.B) {
	be := newFakeBackend(1000)
	p := upgradePlan(b, 1000)
	m := testModel(b, be, Options{Demo: true, Plan: p}, 160, 48)
	m.handle, m.events = be.handle, be.events
	m.run = newRunState(p)
	m.screen = screenRun
	s := newScript().prelude(p)
	hosts := p.DeployHosts()
	for _, h := range hosts[:40] {
		s.deploy(h, "1.4.0")
	}
	for _, h := range hosts[40:60] {
		s.deployStart(h)
	}
	for i := range 300 {
		s.add(event.Event{Type: event.StepOutput, Host: hosts[0], Stream: "stdout", Line: fmt.Sprintf("line %d of the canary's output", i)})
	}
	for _, e := range s.evs {
		m.run.apply(e)
	}
	m.now = s.now
	m.traffic = &TrafficStats{Requests: 100000, Failed: 10}
	m.cursor = 45
	m.clampList()
	b.ReportAllocs()
	for b.Loop() {
		m.frame++
		_ = m.View()
	}
}
