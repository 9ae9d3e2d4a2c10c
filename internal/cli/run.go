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
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// showConfirmRun is the line front end of every operation's answer: say
// there is nothing to do, or show the plan, ask, start and report.
func showConfirmRun(ctx context.Context, ios *IO, env *ops.Env, pr *ops.Prepared, of outFlags, showPlan bool) error {
	if pr.Nothing != "" {
		if of.json {
			// stdout stays a stream of events: here, none.
			fmt.Fprintln(ios.Err, pr.Nothing)
			return nil
		}
		fmt.Fprintln(ios.Out, pr.Nothing)
		return nil
	}
	if showPlan && !of.json {
		fmt.Fprint(ios.Err, plan.RenderText(pr.Plan))
	}
	if err := confirm(ios, of, pr.Question); err != nil {
		return err
	}
	return execute(ctx, ios, env, pr, of)
}

// execute starts pr with the chosen line view and returns the exit code's
// error (nil on success).
func execute(ctx context.Context, ios *IO, env *ops.Env, pr *ops.Prepared, of outFlags) error {
	var gate rollout.Gate = rollout.AutoApprove{}
	if !of.yes {
		gate = &promptGate{ios: ios}
	}
	var sink event.Sink = view.NewPlain(ios.Err)
	if of.json {
		sink = view.NewJSON(ios.Out)
	}
	run, err := env.Start(ctx, pr, ops.StartOptions{Gate: gate, Sinks: []event.Sink{sink}, LockWait: of.lockWait, Force: forceOf(ctx)})
	if err != nil {
		return err
	}
	return report(ios, of.json, run.Wait(ctx))
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
