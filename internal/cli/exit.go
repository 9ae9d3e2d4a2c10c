package cli

import (
	"errors"

	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/view"
)

// Exit codes. They are documented in README.md; scripts depend on them.
// How a run ends maps to them in view.Verdict.
const (
	ExitOK         = view.ExitOK
	ExitError      = view.ExitError
	ExitUsage      = view.ExitUsage
	ExitRolledBack = view.ExitRolledBack
	ExitLocked     = view.ExitLocked
	ExitAborted    = view.ExitAborted
	ExitPaused     = view.ExitPaused
	ExitPartial    = view.ExitPartial
	ExitRefused    = view.ExitRefused
)

// RunEnd and Verdict are view's: the fault matrix of package rollout checks
// its exit codes against the same function.
type RunEnd = view.RunEnd

// Verdict is view.Verdict.
func Verdict(r RunEnd) (int, []string) { return view.Verdict(r) }

// exitError carries an exit code through cobra's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func codeOf(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ops.Code(err)
}
