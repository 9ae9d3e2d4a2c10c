package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// execution is one run of a plan from the CLI.
type execution struct {
	ios    *IO
	inv    *fleet.Inventory
	conn   *rollout.SSH
	plan   *plan.Plan
	of     outFlags
	force  bool
	resume *journal.Run // continue this run instead of starting one
	// forced is closed by a second interrupt (see Main).
	forced <-chan struct{}
}

// prepared is an engine ready to run, with its journal.
type prepared struct {
	eng     *rollout.Engine
	journal *journal.Writer
	bus     *event.Bus
}

// prepare builds the engine for x: balancer, artifacts (hashed), journal
// (new, or the resumed run's), the event bus with the journal first.
func prepare(x execution, gate rollout.Gate, sinks ...event.Sink) (*prepared, error) {
	bal, err := balancer(x.inv, x.conn)
	if err != nil {
		return nil, err
	}
	arts, err := artifacts(x.inv, x.plan)
	if err != nil {
		return nil, err
	}
	dir, err := journalDir(x.inv)
	if err != nil {
		return nil, err
	}
	var j *journal.Writer
	var runID string
	var done *plan.Progress
	if x.resume != nil {
		runID = x.resume.ID
		j, err = journal.Open(x.resume.Path)
		done = &x.resume.Progress
	} else {
		runID = journal.NewRunID(timeNow())
		j, err = journal.Create(dir, runID)
	}
	if err != nil {
		return nil, err
	}
	bus := event.NewBus(runID, nil, j)
	for _, s := range sinks {
		bus.Add(s)
	}
	eng := rollout.New(rollout.Config{
		Inventory: x.inv, Plan: x.plan, Hosts: x.conn, Balancer: bal, Gate: gate, Bus: bus, Journal: j,
		Artifacts: arts, RunID: runID, Owner: owner(), Resume: done, ForceBalancer: x.force, LockWait: x.of.lockWait,
		Force: x.forced,
	})
	return &prepared{eng: eng, journal: j, bus: bus}, nil
}

// execute runs x.plan with the journal and the chosen line view, and
// returns the exit code's error (nil on success).
func execute(ctx context.Context, x execution) error {
	var gate rollout.Gate = rollout.AutoApprove{}
	if !x.of.yes {
		gate = &promptGate{ios: x.ios}
	}
	var sink event.Sink = view.NewPlain(x.ios.Err)
	if x.of.json {
		sink = view.NewJSON(x.ios.Out)
	}
	x.forced = forceOf(ctx)
	pr, err := prepare(x, gate, sink)
	if err != nil {
		return err
	}
	defer pr.journal.Close()
	res := pr.eng.Run(ctx)
	return report(x.ios, x.of.json, res)
}

// report prints how a run ended (the summary, then the verdict's lines
// naming every host not in service) and returns the exit code's error.
func report(ios *IO, asJSON bool, res rollout.Result) error {
	code, lines := Verdict(runEnd(res))
	if !asJSON {
		view.Summary(ios.Out, res.Outcome, res.Summary)
		for _, l := range lines {
			fmt.Fprintln(ios.Out, l)
		}
		fmt.Fprintf(ios.Out, "exit:\t%d\n", code)
	}
	if code == ExitOK {
		return nil
	}
	msg := string(res.Outcome)
	if res.Err != nil {
		msg = res.Err.Error()
	}
	if len(lines) > 0 && asJSON {
		msg += "; " + strings.Join(lines, "; ")
	}
	return withCode(code, errors.New(msg))
}

// confirm asks the operator, or requires --yes without a terminal.
func confirm(ios *IO, of outFlags, question string) error {
	if of.yes {
		return nil
	}
	if !ios.interactive() {
		return withCode(ExitUsage, errors.New("--yes required when not running interactively"))
	}
	fmt.Fprintf(ios.Err, "%s [y/N] ", question)
	line, _ := bufio.NewReader(ios.In).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a == "y" || a == "yes" {
		return nil
	}
	return withCode(ExitAborted, errors.New("not confirmed: nothing was changed"))
}

// promptGate asks at the canary gate on the terminal.
type promptGate struct {
	ios *IO
	mu  sync.Mutex
}

func (g *promptGate) ask(ctx context.Context, q string, answers map[string]rollout.Decision) (rollout.Decision, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan string, 1)
	go func() {
		fmt.Fprint(g.ios.Err, q)
		line, err := bufio.NewReader(g.ios.In).ReadString('\n')
		if err != nil && err != io.EOF {
			line = ""
		}
		ch <- strings.ToLower(strings.TrimSpace(line))
	}()
	select {
	case a := <-ch:
		if d, ok := answers[a]; ok {
			return d, nil
		}
		return rollout.Abort, nil
	case <-ctx.Done():
		return rollout.Abort, ctx.Err()
	}
}

func (g *promptGate) Approve(ctx context.Context, s plan.Step) (rollout.Decision, error) {
	return g.ask(ctx, fmt.Sprintf("canary on %s: [p]romote to the rest, [r]oll back, [a]bort? ", s.To),
		map[string]rollout.Decision{"p": rollout.Promote, "promote": rollout.Promote, "r": rollout.RollBack, "rollback": rollout.RollBack, "a": rollout.Abort})
}

func (g *promptGate) Failed(ctx context.Context, reason string) (rollout.Decision, error) {
	return g.ask(ctx, "the run is paused after a failure: [c]ontinue, [r]oll back, [a]bort, [s]top and resume later? ",
		map[string]rollout.Decision{"c": rollout.Promote, "r": rollout.RollBack, "a": rollout.Abort, "s": rollout.Stop})
}
