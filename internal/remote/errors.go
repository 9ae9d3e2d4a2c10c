package remote

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/relctl/relctl/internal/shell"
)

// ErrHostKeyMismatch means the host offered a key that differs from the one
// known_hosts records for it: possibly a man-in-the-middle, possibly a
// reinstalled host. It is a hard stop; nothing is run on that host until an
// operator fixes known_hosts. Always wrapped in a *HostKeyError.
var ErrHostKeyMismatch = errors.New("host key mismatch")

// ErrHostKeyUnknown means known_hosts has no key for the host and
// Options.AcceptNewHostKeys is off. The *HostKeyError wrapping it carries
// the exact known_hosts line the operator can add after checking the
// fingerprint.
var ErrHostKeyUnknown = errors.New("host key unknown")

// ErrKnownHostsMissing means none of a host's known_hosts files exists,
// so no key can be verified; it is reported as missing, not as an unknown
// key.
var ErrKnownHostsMissing = errors.New("known_hosts file missing")

// ErrTimeout means Command.Timeout passed: the remote process group was
// sent TERM, then KILL, and the command counts as failed.
var ErrTimeout = errors.New("command timed out")

// ErrExitUnknown means the session closed without an exit status or
// signal while the connection stayed up: the command's outcome is unknown
// and a mutating step must be treated as failed-unknown.
var ErrExitUnknown = errors.New("remote command ended without exit status")

// ErrConnectionLost means the SSH connection died (dropped, or silent past
// the keepalive interval) while an operation was in flight. The remote
// command may still be running or may have finished: its outcome is
// unknown. The next Pool.Get redials.
var ErrConnectionLost = errors.New("connection lost")

// HostKeyError reports a host key that could not be verified. Err is
// ErrHostKeyMismatch or ErrHostKeyUnknown; errors.Is works on either.
type HostKeyError struct {
	Host      string        // inventory name
	Address   string        // "host:port" that was verified
	Key       ssh.PublicKey // the key the host offered
	Files     []string      // known_hosts files consulted
	KnownLine string        // the known_hosts line that would accept Key
	Err       error         // ErrHostKeyMismatch or ErrHostKeyUnknown

	// Want lists "file:line" of the recorded keys that did not match
	// (mismatch only).
	Want []string
}

func (e *HostKeyError) Error() string {
	fp := ""
	if e.Key != nil {
		fp = e.Key.Type() + " " + ssh.FingerprintSHA256(e.Key)
	}
	if errors.Is(e.Err, ErrHostKeyMismatch) {
		where := strings.Join(e.Want, ", ")
		if where == "" {
			where = strings.Join(e.Files, ", ")
		}
		fix := ""
		if len(e.Want) > 0 {
			file := e.Want[0][:strings.LastIndexByte(e.Want[0], ':')]
			fix = fmt.Sprintf("; if the host was reinstalled and you checked its new key, remove the old entry with: ssh-keygen -R %s -f %s",
				shell.Quote(knownhosts.Normalize(e.Address)), shell.Quote(file))
		}
		return fmt.Sprintf("%s: %s: %v: the host offered %s but %s records a different key "+
			"(the host was reinstalled, or someone is intercepting the connection); refusing to connect%s",
			e.Host, e.Address, e.Err, fp, where, fix)
	}
	return fmt.Sprintf("%s: %s: %v: %s is not in %s; after checking the fingerprint, add this line:\n%s",
		e.Host, e.Address, e.Err, fp, strings.Join(e.Files, ", "), e.KnownLine)
}

func (e *HostKeyError) Unwrap() error { return e.Err }

// ExitError is a command that ran and ended unsuccessfully: a non-zero exit
// status, or death by a signal.
type ExitError struct {
	Host       string
	Code       int    // exit status; 128+n when killed by signal n (as sh reports it)
	Signal     string // "TERM", "KILL", ... when killed by a signal
	StderrTail string // the last lines of stderr, for the error message
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Signal != "" {
		fmt.Fprintf(&b, "%s: killed by signal %s", e.Host, e.Signal)
	} else {
		fmt.Fprintf(&b, "%s: exit status %d", e.Host, e.Code)
	}
	if t := lastLine(e.StderrTail); t != "" {
		b.WriteString(": ")
		b.WriteString(t)
	}
	return b.String()
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}
