package cli

import "errors"

// Exit codes. They are documented in README.md; scripts depend on them.
const (
	ExitOK         = 0 // done, or nothing to do
	ExitError      = 1 // something failed; the message says what and where
	ExitUsage      = 2 // bad flags or a bad inventory: nothing was touched
	ExitRolledBack = 3 // the run failed and every switched host went back
	ExitLocked     = 4 // another run holds the fleet's lock
	ExitAborted    = 5 // the operator aborted (or refused a gate); hosts were left as reported
	ExitPaused     = 6 // the run stopped and needs the operator (on_failure: pause, a host left drained)
)

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
	return ExitError
}
