// Package hooks runs the inventory's hooks: local commands on the
// operator's machine at points of a run (before_run, after_canary,
// after_run, on_failure, on_rollback). Each gets the run's document (Input,
// JSON, schema-versioned) on stdin and RELCTL_* variables in its
// environment; no run or inventory value is ever put into its command
// text. A hook runs with sh -c in its own process group, killed as a whole
// when its timeout passes or when relctl dies (package localexec), and its
// output is kept up to a cap.
//
// It decides nothing about a run: package ops says when each point is
// reached and what a failure means (docs/hooks.md).
package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/localexec"
	"github.com/relctl/relctl/internal/plan"
)

// Schema is the version of Input's JSON form (docs/json.md).
const Schema = 1

// Input is the document a hook reads on stdin.
type Input struct {
	Schema int    `json:"v"`
	Hook   string `json:"hook"` // the hook point
	RunID  string `json:"run"`
	App    string `json:"app"`
	// Fleet is the inventory file.
	Fleet    string    `json:"fleet"`
	Operator string    `json:"operator"` // user@machine
	Kind     plan.Kind `json:"kind"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Reason   string    `json:"reason,omitempty"`
	Ticket   string    `json:"ticket,omitempty"`
	// Hosts are the hosts the plan switches, in plan order.
	Hosts []string `json:"hosts"`
	// Resumed is true when this process continues an earlier run.
	Resumed bool `json:"resumed,omitempty"`
	// Outcome and ExitCode: how the run ended, and the exit code relctl
	// ends with (after_run, on_failure, on_rollback).
	Outcome  event.Outcome `json:"outcome,omitempty"`
	ExitCode *int          `json:"exit_code,omitempty"`
	Journal  string        `json:"journal,omitempty"`
	// Plan is the plan about to run (before_run).
	Plan *plan.Plan `json:"plan,omitempty"`
	// Summary is run_finished's summary, with the hooks run so far
	// (after_run, on_failure, on_rollback).
	Summary *event.Summary `json:"summary,omitempty"`
	// Event is the gate_requested event of the canary gate (after_canary).
	Event *event.Event `json:"event,omitempty"`
}

// Env is the RELCTL_* environment of a hook reading in. Every variable is
// set, empty when it has no value, so that one inherited from the
// operator's shell never stands in for the run's.
func Env(in Input) []string {
	code := ""
	if in.ExitCode != nil {
		code = strconv.Itoa(*in.ExitCode)
	}
	resumed := ""
	if in.Resumed {
		resumed = "1"
	}
	kv := [][2]string{
		{"RELCTL_HOOK", in.Hook}, {"RELCTL_RUN_ID", in.RunID}, {"RELCTL_APP", in.App}, {"RELCTL_FLEET", in.Fleet},
		{"RELCTL_OPERATOR", in.Operator}, {"RELCTL_KIND", string(in.Kind)}, {"RELCTL_FROM", in.From}, {"RELCTL_TO", in.To},
		{"RELCTL_REASON", in.Reason}, {"RELCTL_TICKET", in.Ticket}, {"RELCTL_HOSTS", strings.Join(in.Hosts, " ")},
		{"RELCTL_RESUMED", resumed}, {"RELCTL_OUTCOME", string(in.Outcome)}, {"RELCTL_EXIT_CODE", code},
		{"RELCTL_JOURNAL", in.Journal}, {"RELCTL_HOOK_SCHEMA", strconv.Itoa(Schema)},
	}
	out := make([]string, len(kv))
	for i, p := range kv {
		out[i] = p[0] + "=" + p[1]
	}
	return out
}

// DefaultMaxOutput is how much of a hook's output is kept: its last 8 KiB.
const DefaultMaxOutput = 8 << 10

// waitDelay bounds how long a hook's end waits for its output pipes once
// it exited or was killed (a child holding them is then killed too).
const waitDelay = 2 * time.Second

// Runner runs hooks.
type Runner struct {
	Hooks fleet.Hooks
	// Dir is the hooks' working directory (the inventory's directory).
	Dir string
	// Environ is the environment hooks inherit (nil: os.Environ()),
	// without its RELCTL_* variables: Env sets those.
	Environ []string
	// MaxOutput caps the output kept per hook (0: DefaultMaxOutput).
	MaxOutput int
}

// Has reports whether point has any hook.
func (r *Runner) Has(point string) bool { return r != nil && len(r.Hooks.List(point)) > 0 }

// Run runs the hooks of in.Hook in order and returns how each ended. The
// hooks of before_run stop at the first that fails (those after it do not
// run); every notification hook runs whatever the others did. ctx ending
// kills the hook that runs and starts no other.
func (r *Runner) Run(ctx context.Context, in Input) []event.HookResult {
	if r == nil {
		return nil
	}
	in.Schema = Schema
	doc, err := json.Marshal(in)
	if err != nil {
		// Input holds only plain data; say so rather than run a hook blind.
		return []event.HookResult{{Hook: in.Hook, Place: "hooks." + in.Hook, ExitCode: -1, Error: "encode the hook's input: " + err.Error()}}
	}
	doc = append(doc, '\n')
	env := append(r.environ(), Env(in)...)
	var out []event.HookResult
	for i, h := range r.Hooks.List(in.Hook) {
		place := fmt.Sprintf("hooks.%s[%d]", in.Hook, i)
		if ctx.Err() != nil {
			out = append(out, event.HookResult{Hook: in.Hook, Place: place, ExitCode: -1, Error: "not run: " + ctx.Err().Error()})
			continue
		}
		res := r.one(ctx, h, doc, env)
		res.Hook, res.Place = in.Hook, place
		out = append(out, res)
		if !res.OK() && in.Hook == fleet.HookBeforeRun {
			break
		}
	}
	return out
}

func (r *Runner) environ() []string {
	base := r.Environ
	if base == nil {
		base = os.Environ()
	}
	out := make([]string, 0, len(base))
	for _, kv := range base {
		if !strings.HasPrefix(kv, "RELCTL_") {
			out = append(out, kv)
		}
	}
	return out
}

// one runs a hook: sh -c command, doc on stdin, env, its own process
// group killed when the timeout passes or ctx ends.
func (r *Runner) one(ctx context.Context, h fleet.Hook, doc []byte, env []string) event.HookResult {
	tctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, "/bin/sh", "-c", h.Command)
	localexec.Group(cmd, waitDelay)
	cmd.Dir, cmd.Env = r.Dir, env
	cmd.Stdin = strings.NewReader(string(doc))
	limit := r.MaxOutput
	if limit <= 0 {
		limit = DefaultMaxOutput
	}
	tail := &tailBuffer{max: limit}
	cmd.Stdout, cmd.Stderr = tail, tail
	t0 := time.Now()
	err := localexec.Run(cmd)
	res := event.HookResult{Duration: time.Since(t0), ExitCode: -1}
	res.Output, res.OutputCut = tail.result()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case err == nil:
	case errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		res.TimedOut, res.ExitCode = true, -1
		res.Error = fmt.Sprintf("timed out after %s (killed with its process group)", h.Timeout)
	case ctx.Err() != nil:
		res.ExitCode = -1
		res.Error = "cut: " + ctx.Err().Error() + " (killed with its process group)"
	case errors.Is(err, exec.ErrWaitDelay):
		_ = localexec.KillGroup(cmd)
		res.Error = fmt.Sprintf("exited %d, but a process it started kept its output open (killed with its process group): a hook must wait for what it starts", res.ExitCode)
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			res.Error = "exit status " + strconv.Itoa(res.ExitCode)
		} else {
			res.Error = err.Error()
		}
	}
	return res
}

// tailBuffer keeps the last max bytes written to it and counts the rest.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// result is the kept output (its last max bytes, cut at a UTF-8 boundary
// and trimmed of trailing space) and how many bytes were dropped before it.
func (t *tailBuffer) result() (string, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	cut := t.total - int64(len(b))
	for len(b) > 0 && cut > 0 && b[0]&0xC0 == 0x80 { // a cut rune's continuation bytes
		b, cut = b[1:], cut+1
	}
	return strings.TrimRight(string(b), " \t\r\n"), cut
}

// Failed returns the results that failed.
func Failed(rs []event.HookResult) []event.HookResult {
	var out []event.HookResult
	for _, r := range rs {
		if !r.OK() {
			out = append(out, r)
		}
	}
	return out
}

// Describe is one line for a person about a result: "hooks.after_run[0]
// ok (120ms)" or "hooks.after_run[0] failed: exit status 1: <last line of
// its output>".
func Describe(r event.HookResult) string {
	if r.OK() {
		return fmt.Sprintf("%s ok (%s)", r.Place, r.Duration.Round(time.Millisecond))
	}
	s := r.Place + " failed: " + r.Error
	if last := lastLine(r.Output); last != "" {
		s += ": " + last
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}
