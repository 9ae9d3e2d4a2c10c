package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/localexec"
	"github.com/relctl/relctl/internal/plan"
)

// checkWaitDelay bounds how long a check's output pipes are waited for
// after its process group was killed.
const checkWaitDelay = 2 * time.Second

// runChecks runs the analysis checks on this machine, in parallel, each
// bounded by its timeout, and returns one result per check.
func (e *Engine) runChecks(ctx context.Context, spec fleet.Analysis, s plan.Step, canary, baseline []string, since time.Time) []analysis.CheckResult {
	env := append(os.Environ(),
		"RELCTL_APP="+e.inv.App,
		"RELCTL_VERSION="+s.To,
		"RELCTL_FROM="+s.From,
		"RELCTL_CANARY="+strings.Join(canary, ","),
		"RELCTL_BASELINE="+strings.Join(baseline, ","),
		"RELCTL_SINCE="+strconv.FormatInt(since.Unix(), 10),
		"RELCTL_RUN="+e.cfg.RunID,
	)
	out := make([]analysis.CheckResult, len(spec.Checks))
	var wg sync.WaitGroup
	for i, c := range spec.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = runCheck(ctx, c, env)
		}()
	}
	wg.Wait()
	return out
}

// runCheck runs one check command with sh -c in its own process group
// (killed whole at its timeout) and reads the number it prints: the last
// non-empty line of its stdout. A non-zero exit, a timeout, or output that
// is not one finite number gives a result with Err saying which.
func runCheck(ctx context.Context, c fleet.Check, env []string) analysis.CheckResult {
	r := analysis.CheckResult{Name: c.Name}
	if strings.TrimSpace(c.Command) == "" {
		r.Err = "no command: the inventory has no check of this name (the plan was made from another inventory)"
		return r
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = fleet.DefaultCheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", c.Command)
	cmd.Env = env
	localexec.Group(cmd, checkWaitDelay) // killed whole at its timeout, and with relctl
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := localexec.Run(cmd)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		r.Err = fmt.Sprintf("no answer within its timeout of %s (killed)", timeout)
		return r
	}
	if ctx.Err() != nil {
		r.Err = "interrupted"
		return r
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		_ = localexec.KillGroup(cmd)
		err = nil // it exited; a child it left held the output open
	}
	if err != nil {
		msg := err.Error()
		if se := lastLine(stderr.String()); se != "" {
			msg += ": " + se
		}
		r.Err = "the command failed: " + msg
		return r
	}
	line := lastLine(stdout.String())
	v, perr := strconv.ParseFloat(line, 64)
	if perr != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		if line == "" {
			r.Err = "the command printed nothing; it must print one number"
		} else {
			if len(line) > 80 {
				line = line[:80] + "..."
			}
			r.Err = fmt.Sprintf("the command printed %q, not a number", line)
		}
		return r
	}
	r.Value = v
	return r
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
