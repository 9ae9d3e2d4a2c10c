// Package tui is relctl's full-screen terminal UI: the fleet, the plan
// preview, the live run with its canary gate and one-key rollback, the
// emergency downgrade session and the run summary. It is one of the three
// views of the rollout event stream (with the plain and JSON printers).
//
// It owns views, keys and dialogs. It never does I/O inside Update: every
// call to the Backend or to a run's Handle is made from a tea.Cmd.
package tui

import (
	"context"
	"fmt"
	"io"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// Backend is everything the TUI may ask of the outside world. Every call is
// made from a tea.Cmd, never inside Update.
type Backend interface {
	Observe(ctx context.Context) ([]observe.Host, error)
	// Lock returns the holder of the fleet's lock; nil means unlocked.
	Lock(ctx context.Context) (*rollout.LockInfo, error)
	Balancer(ctx context.Context) ([]lb.ServerState, error)
	// Targets are the versions one may go to (releases table + artifacts
	// present), newest first.
	Targets() []string
	PlanUpgrade(to string) (*plan.Plan, error)
	PlanDowngrade(to, reason string) (*plan.Plan, error)
	// PlanRollback plans the rollback of the last run; it fails when that
	// is refused (past the point of no return).
	PlanRollback() (*plan.Plan, error)
	// Start runs p in the background. Events arrive on the returned channel
	// (closed after RunFinished); the Handle controls the run.
	Start(p *plan.Plan) (Handle, <-chan event.Event, error)
	// Resume continues (or, with rollback, rolls back) the unfinished run.
	Resume(rollback bool) (Handle, <-chan event.Event, error)
}

// TrafficSource is a capability a Backend may have: live traffic through
// the balancer, which the run screen shows when Options.Demo is set. The
// demo's backend has it; a real fleet's does not.
type TrafficSource interface {
	// Traffic returns the traffic so far; false when there is none.
	Traffic() (TrafficStats, bool)
}

// TrafficStats is a snapshot of the traffic through the balancer.
type TrafficStats struct {
	Requests int64 // finished requests
	Failed   int64 // answered non-2xx, or not answered at all
	P50, P99 time.Duration
}

// Handle controls a running plan.
type Handle interface {
	Pause()
	Resume()
	Abort(why string)
	RequestRollback()
	// Answer answers the pending gate (see Gate).
	Answer(d rollout.Decision)
}

// Options say how the TUI opens.
type Options struct {
	App       string
	FleetFile string
	// Unfinished, when set, makes the first screen say so and offer to
	// resume or roll back that run.
	Unfinished *journal.Run
	// Downgrade opens straight into the emergency downgrade session
	// (`relctl downgrade --to V`); the reason is asked for when empty.
	Downgrade *struct{ To, Reason string }
	// Plan opens straight on the preview of this plan (`relctl apply`).
	Plan *plan.Plan
	// Demo shows the live traffic panel, fed by the Backend's
	// TrafficSource when it has one.
	Demo bool
}

// Run runs the TUI on in/out until the operator quits. It returns the
// outcome and summary of the last run it started ("" and nil when none ran),
// for the exit code. A run in progress is never abandoned: quitting (or ctx
// ending) aborts it and waits for its RunFinished event.
func Run(ctx context.Context, b Backend, o Options, in io.Reader, out io.Writer, opts ...tea.ProgramOption) (event.Outcome, *event.Summary, error) {
	m := newModel(ctx, b, o)
	popts := append([]tea.ProgramOption{tea.WithInput(in), tea.WithOutput(out), tea.WithoutSignalHandler()}, opts...)
	p := tea.NewProgram(m, popts...)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			p.Send(interruptMsg{})
		case <-done:
		}
	}()
	final, err := p.Run()
	fm, ok := final.(*model)
	if !ok || fm == nil {
		if err == nil {
			err = fmt.Errorf("tui: unexpected final model %T", final)
		}
		return "", nil, err
	}
	return fm.outcome, fm.summary, err
}

// MinWidth and MinHeight are the smallest terminal the TUI draws in.
const (
	MinWidth  = 60
	MinHeight = 16
)

// Usable reports whether the full-screen TUI can run in a terminal of type
// term and size w×h (0 when unknown); when it cannot, note says why and
// what relctl does instead, for the CLI to print before it falls back to
// plain output.
func Usable(term string, w, h int) (bool, string) {
	switch {
	case term == "dumb":
		return false, "TERM=dumb: this terminal cannot draw the full-screen TUI, so relctl prints plain output instead (set TERM to your terminal's type for the TUI)."
	case w > 0 && h > 0 && (w < MinWidth || h < MinHeight):
		return false, fmt.Sprintf("This terminal is %d×%d; the TUI needs at least %d×%d, so relctl prints plain output instead. Make the window larger for the TUI.", w, h, MinWidth, MinHeight)
	}
	return true, ""
}

// NoInventory is what relctl says when there is no inventory to open:
// how to start.
func NoInventory(file string) string {
	if file == "" {
		file = "fleet.yaml"
	}
	return fmt.Sprintf(`No inventory: %s does not exist.

To try relctl on a demo fleet on this machine (hosts on 127.0.0.1 behind a
load balancer, with live traffic; q stops everything it started):
    relctl demo

To describe your own fleet, write a commented starter inventory to edit:
    relctl init %s
check it with relctl validate, then run relctl again (or point at another
file with --fleet or RELCTL_FLEET).
`, file, file)
}
