package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/shell"
	"golang.org/x/crypto/ssh"
)

// The persistent shell.
//
// Every SSH session makes sshd fork and run the user's login shell, which
// reads its rc files (rbenv/pyenv/nvm init: 0.1–1.5 s on app servers), and
// costs round trips. So each connection keeps one session running
// /bin/sh -s and writes the host's commands to its stdin, one at a time.
// The shell's functions are defined by driverScript; a command is one line
// of shell text on its stdin (every part quoted, so it is data to the
// shell until the function runs it):
//
//	relctl_run <nonce> <exports> <script> <timeout> <grace> relctl-eor:<nonce>
//
// The function answers on stdout, with lines that carry the command's
// random nonce (its output cannot fake them without knowing the nonce):
//
//	relctl-ack:<nonce>            read and accepted, before anything runs
//	relctl-pid:<nonce> <pid> g    the command runs as process group <pid>
//	…the command's own stdout and stderr, on the session's streams…
//	\nrelctl-end:<nonce> <status> <signal|-> <w|->   on stdout, and
//	\nrelctl-end:<nonce>                            on stderr, after it exited
//
// <w|-> says whether the host's watchdog fired (it sent the command's group
// TERM at the timeout), and <signal|-> names the signal only then: a
// shell's wait status cannot tell a command killed by TERM from one that
// ran `exit 143`, so a status above 128 is read as a signal only when the
// watchdog sent one. (A command killed by a signal from elsewhere reads as
// its exit status, 128+n.) The watchdog's own exit status carries the
// flag. At the timeout it traps TERM to `exit 11`, sends the command's
// group TERM (or exits 10 when the group is gone), waits the grace period,
// sends KILL and exits 11. When the command has ended, relctl_run sends
// the watchdog's group TERM and reads its status: a watchdog still waiting
// for the timeout, or not yet past arming its trap, dies of the TERM (143,
// and it had sent nothing); one that fired exits 11 through its trap.
// (Stopping it with KILL instead lost the flag when the KILL landed
// between the watchdog's TERM and its exit: the command, woken by that
// TERM, often ends first on a busy host.)
//
// The command runs in a subshell with stdin from /dev/null (it cannot read
// the next command), exports the environment there (values travel on
// stdin, never in a command line that ps shows), and execs setsid sh, which
// reports its pid (the pid line comes from the command's own process, so
// it is on stdout before anything the command prints), clears its
// arguments and evaluates the script as sh -c would ($0 is sh, no
// positional parameters; one exec fewer): its own session and process
// group. A command with a timeout
// gets a watchdog on the host (its own process group too, removed when
// the command ends) that sends the group TERM at the timeout and KILL a
// grace period later, so a timeout costs no session; if the command is
// still not reported ended soon after, or when ctx is cancelled, the
// client kills the group from a second, short session (the shell itself
// is blocked in wait meanwhile).
// The end markers start with a newline so a last line without one ends
// before them; the reader drops exactly that newline.
//
// No ack means the command never started: the client opens a new shell
// and sends it again. A shell that dies after the ack leaves the outcome
// unknown: ErrConnectionLost, and the next command opens a new shell.
// A host whose /bin/sh cannot run the driver (no setsid) gets the fallback:
// one session per command, said once through Options.Warnf.

const driverScript = `set +e +u
relctl_run() {
	if [ "$#" -ne 6 ] || [ "$6" != "relctl-eor:$1" ]; then printf '\nrelctl-bad:%s\n' "$1"; return 0; fi
	printf 'relctl-ack:%s\n' "$1"
	( eval "$2" || exit 126; exec setsid sh -c 'printf "relctl-pid:%s %s g\n" "$1" "$$"; eval "set --
$2"' sh "$1" "$3" ) </dev/null &
	relctl_p=$!
	relctl_w=
	if [ "$4" != 0 ] && command -v setsid >/dev/null 2>&1; then
		setsid sh -c 'sleep "$1" || exit 10; trap "exit 11" TERM; kill -s TERM -- "-$3" 2>/dev/null || kill -s TERM "$3" 2>/dev/null || exit 10; sleep "$2"; kill -s KILL -- "-$3" 2>/dev/null || kill -s KILL "$3" 2>/dev/null; exit 11' \
			relctl-watchdog "$4" "$5" "$relctl_p" </dev/null >/dev/null 2>&1 &
		relctl_w=$!
	fi
	wait "$relctl_p"
	relctl_rc=$?
	relctl_f=-
	if [ -n "$relctl_w" ]; then
		kill -s TERM -- "-$relctl_w" 2>/dev/null || kill -s TERM "$relctl_w" 2>/dev/null
		wait "$relctl_w" 2>/dev/null
		if [ "$?" = 11 ]; then relctl_f=w; fi
	fi
	relctl_sig=-
	if [ "$relctl_f" = w ] && [ "$relctl_rc" -gt 128 ]; then relctl_sig=$(kill -l "$relctl_rc" 2>/dev/null) || relctl_sig=-; fi
	printf '\nrelctl-end:%s\n' "$1" >&2
	printf '\nrelctl-end:%s %s %s %s\n' "$1" "$relctl_rc" "${relctl_sig:--}" "$relctl_f"
}
`

// errNotStarted: the shell ended or stalled before it acknowledged the
// command, which therefore never ran; it is safe to send it again.
var errNotStarted = errors.New("remote shell did not accept the command")

// errShellUnsupported: the host cannot run the persistent shell.
type errShellUnsupported struct{ why string }

func (e *errShellUnsupported) Error() string { return e.why }

// rshell is one persistent shell session. Its reader goroutines route the
// session's output to the command in flight (cur).
type rshell struct {
	c     *Client
	sess  *ssh.Session
	stdin io.WriteCloser
	pid   int // the remote shell's pid

	dead      chan struct{} // closed when the session's output ended
	deadOnce  sync.Once
	closeOnce sync.Once

	mu    sync.Mutex
	cur   *shellCmd
	early earlyLines // output outside any command (login scripts, strays)
}

// shellCmd is the command in flight on a shell. The fields below the
// channels are touched by one reader goroutine each (index 0 stdout, 1
// stderr).
type shellCmd struct {
	nonce  string
	out    *output
	ack    chan struct{}  // relctl-ack seen
	pidc   chan remotePID // relctl-pid
	endOut chan shellEnd  // stdout's end marker
	endErr chan struct{}  // stderr's end marker
	bad    chan struct{}  // relctl-bad: the request arrived malformed

	acked bool    // stdout reader
	held  [2]bool // an empty line held back: it may be the marker's newline
	done  [2]bool // the stream's end marker was seen
}

type shellEnd struct {
	code   int
	signal string
	// fired: the host's watchdog sent the command's group TERM (its
	// timeout passed on the host).
	fired bool
}

// runShell runs cmd through the connection's persistent shell, opening it
// first when there is none or it died; it falls back to runPlain when the
// host cannot run it.
func (c *Client) runShell(ctx context.Context, cmd Command) (Result, error) {
	if cmd.Beside {
		select {
		case c.shellSlot <- struct{}{}:
		default:
			return c.runPlain(ctx, cmd) // the shell is busy
		}
	} else {
		select {
		case c.shellSlot <- struct{}{}:
		case <-ctx.Done():
			return Result{ExitCode: -1}, fmt.Errorf("%s: waiting for the remote shell: %w", c.host, ctx.Err())
		case <-c.dead:
			return Result{ExitCode: -1}, c.lost("run")
		}
	}
	defer func() { <-c.shellSlot }()
	for attempt := 0; ; attempt++ {
		if c.shellOff.Load() {
			return c.runPlain(ctx, cmd)
		}
		sh, err := c.openShell(ctx)
		var unsupported *errShellUnsupported
		if errors.As(err, &unsupported) {
			c.shellOff.Store(true)
			c.warnf("%s: no persistent shell (%s); running one SSH session per command", c.host, unsupported.why)
			continue
		}
		if err != nil {
			return Result{ExitCode: -1}, err
		}
		res, err := sh.run(ctx, cmd)
		if errors.Is(err, errNotStarted) && attempt == 0 && ctx.Err() == nil && c.Alive() {
			continue // the command never ran: once more, on a new shell
		}
		return res, err
	}
}

// openShell returns the live shell, or starts one. The caller holds
// shellSlot.
func (c *Client) openShell(ctx context.Context) (*rshell, error) {
	if sh := c.shell; sh != nil {
		select {
		case <-sh.dead:
			sh.close()
			c.shell = nil
		default:
			return sh, nil
		}
	}
	// The shell takes no slot of MaxSessionsPerHost: with a cap of 1 an
	// upload could never start beside it.
	sess, err := c.newSession("start remote shell")
	if err != nil {
		return nil, err
	}
	sh := &rshell{c: c, sess: sess, dead: make(chan struct{})}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	stderr, err3 := sess.StderrPipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		sess.Close()
		return nil, fmt.Errorf("%s: remote shell: %w", c.host, err)
	}
	sh.stdin = stdin
	// From here sh.close ends the session.
	fail := func(err error) (*rshell, error) {
		sh.close()
		return nil, err
	}
	unsupported := func(why string) (*rshell, error) {
		return fail(&errShellUnsupported{why: why + sh.early.note()})
	}
	nonce, err := newNonce()
	if err != nil {
		return fail(fmt.Errorf("%s: %w", c.host, err))
	}
	type hello struct {
		pid int
		why string // the driver cannot run here
	}
	hellos := make(chan hello, 1)
	say := func(h hello) { // the first answer counts; later ones are noise
		select {
		case hellos <- h:
		default:
		}
	}
	go func() {
		ready := "relctl-ready:" + nonce + " "
		refused := "relctl-unsupported:" + nonce + " "
		started := false
		readLines(stdout, func(line string) {
			switch {
			case started:
				sh.stdoutLine(line)
			case strings.HasPrefix(line, ready):
				pid, err := strconv.Atoi(strings.TrimPrefix(line, ready))
				if err != nil || pid <= 1 {
					say(hello{why: fmt.Sprintf("bad ready line %q", Sanitize(line))})
					return
				}
				started = true
				say(hello{pid: pid})
			case strings.HasPrefix(line, refused):
				say(hello{why: Sanitize(strings.TrimPrefix(line, refused))})
			default:
				sh.early.add(line) // login scripts may print: not ours
			}
		})
		sh.markDead() // stdout ended: the shell is gone
	}()
	go func() { readLines(stderr, sh.stderrLine) }()

	// The login shell may be anything and reads its rc files once, here.
	if err := sess.Start("exec /bin/sh -s"); err != nil {
		if !c.Alive() || c.waitDead(50*time.Millisecond) {
			return fail(c.lost("start remote shell"))
		}
		return fail(fmt.Errorf("%s: start remote shell: %w", c.host, err))
	}
	probe := driverScript + fmt.Sprintf(
		"if command -v setsid >/dev/null 2>&1; then printf 'relctl-ready:%%s %%s\\n' %[1]s \"$$\"; "+
			"else printf 'relctl-unsupported:%%s %%s\\n' %[1]s 'setsid(1) is not installed'; exit 0; fi\n", nonce)
	werr := make(chan error, 1)
	go func() { _, err := io.WriteString(stdin, probe); werr <- err }()

	wait := time.NewTimer(c.opts.ShellStartTimeout)
	defer wait.Stop()
	for {
		select {
		case h := <-hellos:
			if h.why != "" {
				return unsupported(h.why)
			}
			sh.pid = h.pid
			c.shell = sh
			return sh, nil
		case err := <-werr:
			werr = nil
			if err != nil {
				if !c.Alive() || c.waitDead(50*time.Millisecond) {
					return fail(c.lost("start remote shell"))
				}
				return unsupported("the session ended before the shell read its script")
			}
		case <-sh.dead:
			select {
			case h := <-hellos: // answered, then ended: the next command opens another
				if h.why != "" {
					return unsupported(h.why)
				}
				return fail(fmt.Errorf("%s: start remote shell: the shell ended right after it started", c.host))
			default:
			}
			if !c.Alive() || c.waitDead(50*time.Millisecond) {
				return fail(c.lost("start remote shell"))
			}
			return unsupported("the shell exited at start")
		case <-wait.C:
			return unsupported(fmt.Sprintf("the shell did not answer within %s", c.opts.ShellStartTimeout))
		case <-ctx.Done():
			return fail(fmt.Errorf("%s: start remote shell: %w", c.host, ctx.Err()))
		case <-c.dead:
			return fail(c.lost("start remote shell"))
		}
	}
}

func (sh *rshell) markDead() { sh.deadOnce.Do(func() { close(sh.dead) }) }

// close ends the shell's session: sshd closes the shell's stdin and it
// exits. (Not stdin.Close: a request may be being written, and x/crypto's
// EOF flag is not safe against a concurrent Write; closing the channel is.)
func (sh *rshell) close() {
	sh.closeOnce.Do(func() {
		sh.markDead()
		sh.sess.Close()
	})
}

func (sh *rshell) current() *shellCmd {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.cur
}

// stdoutLine routes one line of the session's stdout: the markers of the
// command in flight, or its output.
func (sh *rshell) stdoutLine(line string) {
	cur := sh.current()
	if cur == nil || cur.done[0] {
		sh.early.add(line)
		return
	}
	if strings.HasPrefix(line, "relctl-") {
		switch rest := strings.TrimPrefix(line, "relctl-"); {
		case rest == "ack:"+cur.nonce && !cur.acked:
			cur.acked = true
			close(cur.ack)
			return
		case rest == "bad:"+cur.nonce && !cur.acked:
			cur.done[0] = true
			close(cur.bad)
			return
		case strings.HasPrefix(rest, "pid:"+cur.nonce+" "):
			if pid, ok := parsePID(strings.TrimPrefix(rest, "pid:"+cur.nonce+" ")); ok {
				select {
				case cur.pidc <- pid:
				default:
				}
				return
			}
		case strings.HasPrefix(rest, "end:"+cur.nonce+" "):
			if end, ok := parseEnd(strings.TrimPrefix(rest, "end:"+cur.nonce+" ")); ok {
				cur.done[0] = true // the held empty line was the marker's newline
				cur.endOut <- end
				return
			}
		}
	}
	if !cur.acked {
		// Before the ack nothing of this command runs: a background
		// process of an earlier one still writes.
		sh.early.add(line)
		return
	}
	cur.emit(0, line)
}

// stderrLine routes one line of the session's stderr. Unlike stdout it has
// no ack to tell a stray line from the command's first: once a command is
// in flight, its lines are its own.
func (sh *rshell) stderrLine(line string) {
	cur := sh.current()
	if cur == nil || cur.done[1] {
		sh.early.add(line)
		return
	}
	if line == "relctl-end:"+cur.nonce {
		cur.done[1] = true
		close(cur.endErr)
		return
	}
	cur.emit(1, line)
}

// emit hands a line to the command's output, holding back one empty line:
// the end marker's leading newline shows up as an empty line when the
// output ended with a newline.
func (cmd *shellCmd) emit(stream int, line string) {
	if cmd.held[stream] {
		cmd.out.line(stream == 1, "")
		cmd.held[stream] = false
	}
	if line == "" {
		cmd.held[stream] = true
		return
	}
	cmd.out.line(stream == 1, line)
}

// seconds is d for sleep(1): decimal seconds, rounded up to milliseconds.
func seconds(d time.Duration) string {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
}

// parseEnd reads "<status> <signal|-> <w|->" of an end marker. A signal is
// named only when the watchdog fired: otherwise a status above 128 is the
// command's own exit status.
func parseEnd(s string) (shellEnd, bool) {
	f := strings.Fields(s)
	if len(f) != 3 || (f[2] != "w" && f[2] != "-") {
		return shellEnd{}, false
	}
	code, err := strconv.Atoi(f[0])
	if err != nil || code < 0 || code > 255 {
		return shellEnd{}, false
	}
	end := shellEnd{code: code, fired: f[2] == "w"}
	if end.fired && f[1] != "-" && code > 128 {
		end.signal = strings.TrimPrefix(strings.ToUpper(f[1]), "SIG")
	}
	return end, true
}

// run sends cmd to the shell and waits for its end. Errors are those of
// Client.Run, plus errNotStarted (the caller retries on a new shell).
func (sh *rshell) run(ctx context.Context, cmd Command) (Result, error) {
	c := sh.c
	res := Result{ExitCode: -1}
	nonce, err := newNonce()
	if err != nil {
		return res, fmt.Errorf("%s: %w", c.host, err)
	}
	cur := &shellCmd{
		nonce:  nonce,
		out:    newOutput(cmd),
		ack:    make(chan struct{}),
		pidc:   make(chan remotePID, 1),
		endOut: make(chan shellEnd, 1),
		endErr: make(chan struct{}),
		bad:    make(chan struct{}),
	}
	sh.mu.Lock()
	sh.cur = cur
	sh.mu.Unlock()
	defer func() {
		sh.mu.Lock()
		sh.cur = nil
		sh.mu.Unlock()
		cur.out.finish()
	}()

	timeout, grace := "0", seconds(c.opts.KillGrace)
	if cmd.Timeout > 0 {
		timeout = seconds(cmd.Timeout)
	}
	req := "relctl_run " + nonce + " " + shell.Quote(exportLines(cmd.Env)) + " " + shell.Quote(cmd.Script) +
		" " + timeout + " " + grace + " relctl-eor:" + nonce + "\n"
	start := time.Now()
	werr := make(chan error, 1)
	go func() { _, err := io.WriteString(sh.stdin, req); werr <- err }()

	var timer <-chan time.Time
	if cmd.Timeout > 0 {
		t := time.NewTimer(cmd.Timeout)
		defer t.Stop()
		timer = t.C
	}
	// The shell acknowledges with a builtin before anything runs: a
	// silence as long as its start-up allowance means it is gone or stuck.
	ackTimeout := c.opts.ShellStartTimeout
	ackWait := time.NewTimer(ackTimeout)
	defer ackWait.Stop()
	ack := cur.ack
	acked := func() bool {
		select {
		case <-cur.ack:
			return true
		default:
			return false
		}
	}
	// ended reports whether the end marker is there: checked before
	// believing that the shell died (both can be ready at once).
	endNow := func() (shellEnd, bool) {
		select {
		case e := <-cur.endOut:
			return e, true
		default:
			return shellEnd{}, false
		}
	}
	var cause error // why we stopped it, if we did
	var end shellEnd
	ended := false
wait:
	for {
		select {
		case end = <-cur.endOut:
			ended = true
			break wait
		case <-ack:
			ack = nil
			ackWait.Stop()
		case <-ackWait.C:
			if !acked() {
				sh.close() // stuck or gone: a new shell takes the next command
				return res, fmt.Errorf("%s: %w within %s", c.host, errNotStarted, ackTimeout)
			}
		case err := <-werr:
			werr = nil
			if err != nil && !acked() {
				sh.close()
				return res, fmt.Errorf("%s: %w: %v", c.host, errNotStarted, err)
			}
		case <-cur.bad:
			sh.close()
			return res, fmt.Errorf("%s: run: the remote shell received a damaged command; it did not run", c.host)
		case <-sh.dead:
			if end, ended = endNow(); ended {
				break wait
			}
			return res, sh.lostMidCommand(cur)
		case <-timer:
			cause = ErrTimeout
			break wait
		case <-ctx.Done():
			cause = ctx.Err()
			break wait
		}
	}

	var killNote string
	watchdogNote := func() string {
		if pid, ok := peekPID(cur.pidc); ok {
			return fmt.Sprintf("remote process group %d killed", pid.pid)
		}
		return "remote process group killed"
	}
	if ended && cmd.Timeout > 0 && (time.Since(start) >= cmd.Timeout || end.fired) {
		// The end came as the timer fired (a loaded client sees both at
		// once), or the host says its watchdog fired: the watchdog started
		// after start, so the deadline passed on the host too. It is a
		// timeout.
		cause, killNote = ErrTimeout, watchdogNote()
	}
	// waitEnd waits for the shell to report the command's end, at most
	// KillGrace plus a margin for a loaded host.
	waitEnd := func() {
		bound := time.NewTimer(c.opts.KillGrace + 5*time.Second)
		defer bound.Stop()
		select {
		case end = <-cur.endOut:
			ended = true
		case <-sh.dead:
			end, ended = endNow()
		case <-bound.C:
		}
	}
	if errors.Is(cause, ErrTimeout) && !ended {
		// The host's watchdog sends TERM now and KILL after KillGrace (the
		// kill session is the backstop for a watchdog that could not run,
		// not the usual way).
		waitEnd()
		if ended {
			killNote = watchdogNote()
		}
	}
	if cause != nil && !ended {
		killNote = c.stopRemote(cur.pidc)
		// The shell reports the end once the process group is gone.
		waitEnd()
		if !ended {
			sh.close() // still blocked: the next command gets a new shell
		}
	}
	if ended {
		// stderr's marker follows at once; a shell without it is broken.
		bound := time.NewTimer(30 * time.Second)
		select {
		case <-cur.endErr:
		case <-sh.dead:
		case <-bound.C:
			sh.close()
		}
		bound.Stop()
		res.ExitCode, res.Signal = end.code, end.signal
	}
	res.Duration = time.Since(start)

	switch {
	case cause != nil && errors.Is(cause, ErrTimeout):
		if ended && res.Signal == "" {
			// The deadline passed and the group was signalled: by the
			// watchdog, whose "fired" can be lost when the command ends
			// before the watchdog's own exit (a loaded host), or by the
			// kill session. A status of 128+n is that signal.
			res.Signal = timeoutSignal(res.ExitCode)
		}
		return res, fmt.Errorf("%s: %w after %s (%s)", c.host, ErrTimeout, cmd.Timeout, killNote)
	case cause != nil:
		return res, fmt.Errorf("%s: command stopped (%s): %w", c.host, killNote, cause)
	case end.code == 0:
		return res, nil
	}
	cur.out.finish() // the tail is complete; no callback after this
	return res, &ExitError{Host: c.host, Code: res.ExitCode, Signal: res.Signal, StderrTail: cur.out.stderrTail()}
}

// lostMidCommand is the error for a shell that ended while cmd was in
// flight: if it never acknowledged the command, the command never ran.
func (sh *rshell) lostMidCommand(cur *shellCmd) error {
	c := sh.c
	sh.close()
	select {
	case <-cur.ack:
	default:
		if c.Alive() && !c.waitDead(50*time.Millisecond) {
			return fmt.Errorf("%s: %w: the shell ended", c.host, errNotStarted)
		}
		return c.lost("run")
	}
	note := ""
	if pid, ok := peekPID(cur.pidc); ok {
		note = fmt.Sprintf("; remote process group %d may still be running", pid.pid)
	}
	if !c.Alive() || c.waitDead(time.Second) {
		return fmt.Errorf("%w%s", c.lost("run"), note)
	}
	return fmt.Errorf("%s: run: %w (the remote shell session ended mid-command; the next command opens a new one)%s", c.host, ErrConnectionLost, note)
}

// earlyLines keeps the last few lines seen outside any command, for the
// message when the shell cannot start.
type earlyLines struct {
	mu    sync.Mutex
	lines []string
}

func (e *earlyLines) add(line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.lines) == 3 {
		e.lines = e.lines[1:]
	}
	if len(line) > 200 {
		line = line[:200]
	}
	e.lines = append(e.lines, line)
}

// note is ": <last lines>" or "".
func (e *earlyLines) note() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var parts []string
	for _, l := range e.lines {
		if l = strings.TrimSpace(Sanitize(l)); l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, " / ")
}

// timeoutSignal names the signal a timeout sends (TERM, then KILL after
// the grace) from a command's status of 128+n, or "" for any other status.
func timeoutSignal(code int) string {
	switch code {
	case 128 + 15:
		return "TERM"
	case 128 + 9:
		return "KILL"
	}
	return ""
}
