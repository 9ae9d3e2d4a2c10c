package fleet

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every inventory problem, so callers can tell bad
// input (exit code "usage") from other failures.
var ErrInvalid = errors.New("invalid inventory")

// Error is one problem in an inventory, with its place: file, line and key
// path, the host's name included where the path is under hosts.
type Error struct {
	File string
	Line int
	Path string // e.g. "hosts[2] (web3)" or "rollout.batches[1]"
	Msg  string
	// Kind, when set, is a more precise sentinel (it wraps ErrInvalid),
	// such as ErrUnknownEnvironment.
	Kind error
	// Unknown is an unknown key's own name; Path is then where it sits
	// (Msg already names it: this is for programs, see KeyPath).
	Unknown string
}

// KeyPath is the full key path of the problem: Path, and an unknown key's
// own name under it.
func (e *Error) KeyPath() string {
	switch {
	case e.Unknown == "":
		return e.Path
	case e.Path == "":
		return e.Unknown
	}
	return e.Path + "." + e.Unknown
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap lets errors.Is(err, ErrInvalid) hold for every inventory problem.
func (e *Error) Unwrap() error {
	if e.Kind != nil {
		return e.Kind
	}
	return ErrInvalid
}

// Errors is every problem found in one inventory, in file order. Loading
// reports them all at once so that an operator fixes the file in one pass.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
