package tui

import (
	"context"

	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// Gate adapts the TUI to rollout.Gate. The engine emits GateRequested (or,
// for a failure with on_failure: pause, a Control "paused for the operator"
// event) and then blocks in Approve or Failed until Answer is called; the
// TUI calls Handle.Answer when the operator picks in the dialog, and the
// CLI's Handle forwards that to Answer.
type Gate struct {
	answers chan rollout.Decision
}

var _ rollout.Gate = (*Gate)(nil)

// NewGate returns a gate with no answer pending.
func NewGate() *Gate { return &Gate{answers: make(chan rollout.Decision, 1)} }

// Approve implements rollout.Gate: it waits for Answer (or ctx, which
// aborts).
func (g *Gate) Approve(ctx context.Context, _ plan.Step) (rollout.Decision, error) {
	return g.wait(ctx)
}

// Failed implements rollout.Gate: it waits for Answer (or ctx, which stops
// the run, leaving it paused and resumable).
func (g *Gate) Failed(ctx context.Context, _ string) (rollout.Decision, error) {
	d, err := g.wait(ctx)
	if err != nil {
		return rollout.Stop, err
	}
	return d, nil
}

func (g *Gate) wait(ctx context.Context) (rollout.Decision, error) {
	select {
	case d := <-g.answers:
		return d, nil
	case <-ctx.Done():
		return rollout.Abort, ctx.Err()
	}
}

// Answer answers the pending gate. It never blocks: an answer given just
// before the engine starts waiting is kept for it, and a later answer
// replaces an earlier one nobody took.
func (g *Gate) Answer(d rollout.Decision) {
	for {
		select {
		case g.answers <- d:
			return
		default:
		}
		select {
		case <-g.answers:
		default:
		}
	}
}
