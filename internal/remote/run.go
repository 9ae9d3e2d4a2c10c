package remote

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/shell"
	"golang.org/x/crypto/ssh"
)

// Command is one script to run on a host.
type Command struct {
	Script  string            // run as: sh -c <quoted script>; the caller has already shell-quoted template values
	Env     map[string]string // exported for the script (sent on stdin, never in the command line); keys [A-Z_][A-Z0-9_]*
	Timeout time.Duration     // 0 = none; when it passes the remote process group is killed
	Stdout  func(line string) // called per line (sanitized, see Sanitize), may be nil
	Stderr  func(line string) // called per line (sanitized, see Sanitize), may be nil

	// MaxOutput caps the bytes of output (both streams, one byte per
	// newline) handed to Stdout/Stderr: 0 means DefaultMaxOutput (1 MiB),
	// negative means no cap. Lines past it are dropped, and a last line
	// per stream ("… N bytes of output cut") says how much.
	MaxOutput int

	// Beside: when the persistent shell is busy with another command, run
	// this one in a session of its own rather than wait behind it (the
	// deploy lock's renewals: a long command must not starve the lease).
	// With the shell free it goes through the shell as any command.
	Beside bool
}

// Result is how a command ended.
type Result struct {
	ExitCode int           // -1 when unknown (timeout, cancel, lost connection)
	Signal   string        // "TERM", "KILL", ... when killed by a signal
	Duration time.Duration // from sending the command to the shell (from opening its session, without the shell) to its end
}

var envKey = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

const (
	stderrTailBytes = 4096
	maxLineBytes    = 1 << 20 // longer lines are delivered in pieces
	readBufBytes    = 4 << 10 // per stream, see readLines
)

// Run runs cmd on the host and waits for it. Commands go through the
// connection's persistent shell (shell.go), one at a time: a Run waits
// for the one before it (honouring ctx). Where the host cannot run that
// shell, or with Options.OneSessionPerCommand, each command gets a session
// of its own and commands run concurrently up to MaxSessionsPerHost.
//
// Stdout and Stderr are called once per line, never concurrently with
// each other and never after Run returns; terminal control sequences are
// removed from each line first (Sanitize) and the output is capped
// (Command.MaxOutput). Errors, all prefixed with the host name:
//   - exit status 0: nil;
//   - non-zero exit or death by signal: *ExitError (through the shell,
//     a status above 128 is reported as death by that signal, as sh does);
//   - Timeout passed: wraps ErrTimeout; ctx ended: wraps ctx.Err(). In both
//     cases the remote process group was sent TERM, then KILL after
//     Options.KillGrace: by a watchdog on the host for a timeout through
//     the shell, otherwise from a second session;
//   - the connection died, or the persistent shell's session ended
//     mid-command: wraps ErrConnectionLost (outcome unknown);
//   - a session of its own closed without an exit status: wraps
//     ErrExitUnknown.
func (c *Client) Run(ctx context.Context, cmd Command) (Result, error) {
	if err := checkCommand(cmd); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("%s: %w", c.host, err)
	}
	if c.opts.OneSessionPerCommand || c.shellOff.Load() {
		return c.runPlain(ctx, cmd)
	}
	return c.runShell(ctx, cmd)
}

// checkCommand refuses what neither path can carry: NUL bytes (sh drops
// or truncates them) and environment keys that are not shell names.
func checkCommand(cmd Command) error {
	if strings.IndexByte(cmd.Script, 0) >= 0 {
		return errors.New("script contains a NUL byte")
	}
	for k, v := range cmd.Env {
		if !envKey.MatchString(k) {
			return fmt.Errorf("env key %q: must match [A-Z_][A-Z0-9_]*", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("env %s: value contains a NUL byte", k)
		}
	}
	return nil
}

// runPlain runs cmd in a session of its own: the fallback when the
// persistent shell cannot start on the host, and Options.OneSessionPerCommand.
func (c *Client) runPlain(ctx context.Context, cmd Command) (Result, error) {
	start := time.Now()
	res := Result{ExitCode: -1}
	nonce, err := newNonce()
	if err != nil {
		return res, fmt.Errorf("%s: %w", c.host, err)
	}
	wrapper, exports := wrapScript(nonce, cmd)
	if err := c.acquire(ctx); err != nil {
		return res, err
	}
	defer c.release()
	sess, err := c.newSession("run")
	if err != nil {
		return res, err
	}
	defer sess.Close()
	// The exports travel on stdin, not in the command line that ps shows
	// to every user of the host. The script itself then reads EOF.
	sess.Stdin = strings.NewReader(exports)
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return res, fmt.Errorf("%s: run: %w", c.host, err)
	}
	stderr, err := sess.StderrPipe()
	if err != nil {
		return res, fmt.Errorf("%s: run: %w", c.host, err)
	}

	out := newOutput(cmd)
	pidc := make(chan remotePID, 1)
	marker := "relctl-pid:" + nonce + " "
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		seen := false
		readLines(stdout, func(line string) {
			if !seen && strings.HasPrefix(line, marker) {
				if pid, ok := parsePID(strings.TrimPrefix(line, marker)); ok {
					seen = true
					pidc <- pid
					return
				}
			}
			out.line(false, line)
		})
	}()
	go func() {
		defer readers.Done()
		readLines(stderr, func(line string) { out.line(true, line) })
	}()

	if err := sess.Start(wrapper); err != nil {
		sess.Close()
		out.finish()
		if !c.Alive() || c.waitDead(50*time.Millisecond) {
			return res, c.lost("run")
		}
		return res, fmt.Errorf("%s: run: start: %w", c.host, err)
	}
	waitc := make(chan error, 1)
	go func() { waitc <- sess.Wait() }()

	var timer <-chan time.Time
	if cmd.Timeout > 0 {
		t := time.NewTimer(cmd.Timeout)
		defer t.Stop()
		timer = t.C
	}
	var cause error // why we stopped it, if we did
	var werr error
	ended := false
	select {
	case werr = <-waitc:
		ended = true
	case <-timer:
		cause = ErrTimeout
	case <-ctx.Done():
		cause = ctx.Err()
	}

	var killNote string
	if cause != nil {
		killNote = c.stopRemote(pidc)
		// The command's session ends once its process group is gone.
		bound := time.NewTimer(c.opts.KillGrace + 5*time.Second)
		select {
		case werr = <-waitc:
			ended = true
		case <-bound.C:
			sess.Close()
			select {
			case werr = <-waitc:
				ended = true
			case <-time.After(2 * time.Second):
			}
		}
		bound.Stop()
	}
	if ended {
		readers.Wait() // the channel is closed: what is buffered drains quickly
	} else {
		waitReaders(&readers, 2*time.Second)
	}
	out.finish()
	res.Duration = time.Since(start)

	var exitErr *ssh.ExitError
	if errors.As(werr, &exitErr) {
		res.ExitCode = exitErr.ExitStatus()
		res.Signal = exitErr.Signal()
	} else if werr == nil && ended {
		res.ExitCode = 0
	}

	switch {
	case cause != nil && errors.Is(cause, ErrTimeout):
		return res, fmt.Errorf("%s: %w after %s (%s)", c.host, ErrTimeout, cmd.Timeout, killNote)
	case cause != nil:
		return res, fmt.Errorf("%s: command stopped (%s): %w", c.host, killNote, cause)
	case werr == nil:
		return res, nil
	case exitErr != nil:
		return res, &ExitError{Host: c.host, Code: res.ExitCode, Signal: res.Signal, StderrTail: out.stderrTail()}
	}
	var missing *ssh.ExitMissingError
	if !c.Alive() || c.waitDead(time.Second) {
		note := ""
		if pid, ok := peekPID(pidc); ok {
			note = fmt.Sprintf("; remote process %d may still be running", pid.pid)
		}
		return res, fmt.Errorf("%w%s", c.lost("run"), note)
	}
	if errors.As(werr, &missing) {
		return res, fmt.Errorf("%s: run: %w", c.host, ErrExitUnknown)
	}
	return res, fmt.Errorf("%s: run: %w: %v", c.host, ErrExitUnknown, werr)
}

// Output runs script and returns its stdout, trimmed of surrounding
// white space. Errors are those of Run; the output so far is returned with
// them.
func (c *Client) Output(ctx context.Context, script string) (string, error) {
	var b strings.Builder
	_, err := c.Run(ctx, Command{Script: script, Stdout: func(line string) {
		b.WriteString(line)
		b.WriteByte('\n')
	}})
	return strings.TrimSpace(b.String()), err
}

// wrapScript builds the command line sent to the host's login shell, and
// the export statements to feed it on stdin (cmd.Env, quoted). The wrapper
// reports the PID of the process that will run the script (a process-group
// leader, so its PID is the PGID) on a first stdout line carrying a
// per-run nonce, then execs sh -c script:
//   - sshd already makes each session's shell a session (and group) leader:
//     kill -0 -$$ succeeds and the script runs in that group;
//   - otherwise setsid(1), which does not fork for a non-leader, makes it
//     one;
//   - without setsid the PID alone is reported ("n") and only it is killed.
func wrapScript(nonce string, cmd Command) (wrapper, exports string) {
	exports = exportLines(cmd.Env)
	var b strings.Builder
	if exports != "" {
		b.WriteString(`relctl_env=$(cat) && eval "$relctl_env" && unset relctl_env || exit 126; `)
	}
	fmt.Fprintf(&b, "relctl_script=%s; ", shell.Quote(cmd.Script))
	m := "relctl-pid:" + nonce
	fmt.Fprintf(&b, `if kill -0 -$$ 2>/dev/null; then echo "%[1]s $$ g"; exec sh -c "$relctl_script"; fi; `+
		`if command -v setsid >/dev/null 2>&1; then echo "%[1]s $$ g"; exec setsid sh -c "$relctl_script"; fi; `+
		`echo "%[1]s $$ n"; exec sh -c "$relctl_script"`, m)
	return b.String(), exports
}

// exportLines is env as export statements, sorted, values quoted; keys
// were checked by checkCommand.
func exportLines(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var e strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&e, "export %s=%s\n", k, shell.Quote(env[k]))
	}
	return e.String()
}

// remotePID is the process the wrapper reported.
type remotePID struct {
	pid   int
	group bool // pid is also the PGID of everything the script started
}

func parsePID(s string) (remotePID, bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return remotePID{}, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return remotePID{}, false
	}
	return remotePID{pid: pid, group: f[1] == "g"}, true
}

func peekPID(c chan remotePID) (remotePID, bool) {
	select {
	case p := <-c:
		c <- p
		return p, true
	default:
		return remotePID{}, false
	}
}

// stopRemote kills the command's remote process group from a second
// session: sshd refuses Session.Signal for root logins, and closing a
// session without a PTY leaves its command running. It returns a note
// for the error message.
func (c *Client) stopRemote(pidc chan remotePID) string {
	var pid remotePID
	wait := time.NewTimer(3 * time.Second)
	defer wait.Stop()
	select {
	case pid = <-pidc:
		pidc <- pid
	case <-wait.C:
		return "the remote command never reported its pid; it may still be running"
	case <-c.dead:
		return "connection lost; the remote command may still be running"
	}
	target := strconv.Itoa(pid.pid)
	what := "process " + target
	if pid.group {
		target = "-" + target
		what = "process group " + strconv.Itoa(pid.pid)
	}
	steps := max(1, int(c.opts.KillGrace/(100*time.Millisecond)))
	// TERM, wait up to KillGrace for the group to go, then KILL. If the
	// group does not exist yet (setsid not reached), signal the pid.
	script := fmt.Sprintf(`t=%[1]s; kill -s TERM -- $t 2>/dev/null || { t=%[2]d; kill -s TERM -- $t 2>/dev/null; } || exit 0; `+
		`i=0; while [ $i -lt %[3]d ]; do kill -s 0 -- $t 2>/dev/null || exit 0; sleep 0.1; i=$((i+1)); done; `+
		`kill -s KILL -- $t 2>/dev/null; exit 0`, target, pid.pid, steps)

	ctx, cancel := context.WithTimeout(context.Background(), c.opts.KillGrace+10*time.Second)
	defer cancel()
	select {
	case c.killSem <- struct{}{}:
		defer func() { <-c.killSem }()
	case <-ctx.Done():
		return fmt.Sprintf("could not kill remote %s: no session slot", what)
	}
	c.countSession()
	sess, err := c.conn.NewSession()
	if err != nil {
		return fmt.Sprintf("could not kill remote %s: %v", what, err)
	}
	defer sess.Close()
	done := make(chan error, 1)
	go func() { done <- sess.Run(script) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Sprintf("could not kill remote %s: %v", what, err)
	}
	return "remote " + what + " killed"
}

// readLines reads r to the end (a stalled reader would stall the channel
// window and the remote command), calling emit per line without its
// newline. A final line without newline is emitted too.
//
// Its buffer is small: a persistent shell keeps a reader per stream open
// for the whole run, two per host (64 KiB each made 125 MiB of heap at
// 1,000 hosts, the largest part of relctl's peak RSS); a longer line is
// gathered in pieces all the same.
func readLines(r io.Reader, emit func(string)) {
	br := bufio.NewReaderSize(r, readBufBytes)
	var acc []byte
	for {
		chunk, err := br.ReadSlice('\n')
		acc = append(acc, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(acc) >= maxLineBytes {
				emit(string(acc))
				acc = acc[:0]
			}
			continue
		}
		if len(acc) > 0 {
			line := strings.TrimSuffix(string(acc), "\n")
			emit(strings.TrimSuffix(line, "\r"))
			acc = acc[:0]
		}
		if err != nil {
			return
		}
	}
}

func waitReaders(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func newNonce() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
