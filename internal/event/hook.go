package event

import "time"

// HookFinished: one hook command ended (Hook, Status, Error, Duration,
// Message). A failing before_run hook refuses the run; any other hook's
// failure is reported and changes nothing (docs/hooks.md).
const HookFinished Type = "hook_finished"

// HookResult is how one hook command ended. It names the hook by its
// place in the inventory, never by its command text (which may hold a
// secret the operator wrote into it).
type HookResult struct {
	// Hook is the hook point: before_run, after_canary, after_run,
	// on_failure or on_rollback.
	Hook string `json:"hook"`
	// Place is its key path in the inventory: hooks.after_run[0].
	Place string `json:"place"`
	// ExitCode is the command's exit status; -1 when it was killed or
	// could not start.
	ExitCode int  `json:"exit_code"`
	TimedOut bool `json:"timed_out,omitempty"`
	// Output is the end of what the command wrote (stdout and stderr,
	// interleaved), at most the runner's cap; OutputCut bytes before it
	// were dropped.
	Output    string        `json:"output,omitempty"`
	OutputCut int64         `json:"output_cut,omitempty"`
	Error     string        `json:"error,omitempty"` // "" when the hook succeeded
	Duration  time.Duration `json:"duration_ns"`
}

// OK reports whether the hook succeeded (exit 0 within its timeout).
func (r HookResult) OK() bool { return r.Error == "" }
