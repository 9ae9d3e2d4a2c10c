package tui

import (
	"fmt"
	"time"

	"github.com/relctl/relctl/internal/plan"
)

// span is one entry of a run's timeline: a step, or a batch of deploy
// steps, with when it started and ended.
type span struct {
	key        string
	name       string
	start, end time.Time
	steps      int // steps in the span that started
}

// spanOf is the timeline entry a step belongs to: a batch folds its hosts'
// deploy steps, stage and cleanup fold every host.
func spanOf(s plan.Step, rollback bool, hops int) (key, name string) {
	hop := ""
	if hops > 1 && s.Hop >= 0 {
		hop = fmt.Sprintf("hop %d · ", s.Hop+1)
	}
	switch s.Kind {
	case plan.StepDeploy:
		if rollback {
			return "rollback", fmt.Sprintf("rollback %s → %s", s.From, s.To)
		}
		return fmt.Sprintf("deploy:%d:%d", s.Hop, s.Batch), fmt.Sprintf("%sbatch %d (%s → %s)", hop, s.Batch, s.From, s.To)
	case plan.StepStage:
		return "stage", "stage"
	case plan.StepCleanup:
		return "cleanup", "cleanup"
	case plan.StepMigrate, plan.StepPostMigrate:
		return s.ID, hop + s.String()
	case plan.StepGate:
		return "gate:" + s.ID, "gate: " + s.ID + " (waiting for the operator)"
	}
	if rollback {
		return "rollback:" + s.ID, "rollback " + s.ID
	}
	return s.ID, s.ID
}

func (r *runState) spanStart(key, name string, t time.Time) {
	if i, ok := r.spanIdx[key]; ok {
		sp := &r.timeline[i]
		sp.steps++
		sp.end = time.Time{}
		return
	}
	r.spanIdx[key] = len(r.timeline)
	r.timeline = append(r.timeline, span{key: key, name: name, start: t, steps: 1})
}

func (r *runState) spanEnd(key string, t time.Time) {
	i, ok := r.spanIdx[key]
	if !ok {
		return
	}
	sp := &r.timeline[i]
	sp.steps--
	if sp.steps <= 0 {
		sp.end = t
	}
}

// endSpans closes what the end of the run left open.
func (r *runState) endSpans(t time.Time) {
	for i := range r.timeline {
		if r.timeline[i].end.IsZero() {
			r.timeline[i].end = t
			r.timeline[i].name += " (cut short)"
		}
	}
}
