package cli

import (
	"context"
	"sync/atomic"
)

// phaseWords are what relctl says when interrupted during a phase of a
// command where the run's words ("finishing or reverting the host in
// flight…") do not apply: first is the first interrupt's effect, again the
// effect of every later one.
type phaseWords struct{ first, again string }

// demoKeepWords: during demo --keep's hold no run is in flight; an
// interrupt stops the demo fleet.
var demoKeepWords = phaseWords{
	first: "stopping the demo fleet (every process it started; its directory stays)…",
	again: "the demo fleet is already stopping; relctl exits once every process it started is gone",
}

// phaseNote holds the words of the phase in progress (nil: a run's).
// Main's interrupt handler reads it; the command sets it as it enters a
// phase.
type phaseNote struct{ w atomic.Pointer[phaseWords] }

type phaseKey struct{}

// withPhaseNote returns ctx carrying n, for setPhase.
func withPhaseNote(ctx context.Context, n *phaseNote) context.Context {
	return context.WithValue(ctx, phaseKey{}, n)
}

// setPhase makes the interrupt handler say w from now on. Without a
// handler (Run called directly, as tests do) it does nothing.
func setPhase(ctx context.Context, w phaseWords) {
	if n, _ := ctx.Value(phaseKey{}).(*phaseNote); n != nil {
		n.w.Store(&w)
	}
}

// words returns the phase's words, nil for a run's (or no note).
func (n *phaseNote) words() *phaseWords {
	if n == nil {
		return nil
	}
	return n.w.Load()
}
