package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
)

// ErrLocked means another run holds the fleet's lock.
var ErrLocked = errors.New("fleet is locked")

// ErrLockGone means the lock this run held is no longer there: it was
// released, or broken by an operator. A renewal never re-creates it.
var ErrLockGone = errors.New("the lock is gone (released or broken)")

// ErrLockLost means this run no longer holds the fleet's lock: it is gone
// or held by another run, or its lease ran out while renewals failed. A run
// that lost its lock starts no new step.
var ErrLockLost = errors.New("lock lost")

// Process identifies one relctl process: the machine it runs on and, there,
// the process. A lock records its holder's, so that a later process can
// tell whether the holder still runs.
type Process struct {
	PID     int    `json:"pid,omitempty"`
	Machine string `json:"machine,omitempty"` // hostname
	// Boot is the machine's boot id: a reboot ends every process.
	Boot string `json:"boot,omitempty"`
	// Start is the process's start time in clock ticks after boot
	// (/proc/<pid>/stat field 22): a reused pid has another.
	Start int64 `json:"pstart,omitempty"`
	// Since is the same start time in unix seconds, for people.
	Since int64 `json:"since,omitempty"`
}

func (p Process) String() string {
	if p.PID == 0 {
		return "an unknown process"
	}
	s := fmt.Sprintf("pid %d on %s", p.PID, p.Machine)
	if p.Since > 0 {
		s += ", started " + time.Unix(p.Since, 0).UTC().Format(time.RFC3339)
	}
	return s
}

// CurrentProcess is this process.
func CurrentProcess() Process {
	p := Process{PID: os.Getpid()}
	p.Machine, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		p.Boot = strings.TrimSpace(string(b))
	}
	if st, ok := readProcStat(p.PID); ok {
		p.Start = st.start
		p.Since = bootTime() + st.start/userHZ
	}
	return p
}

// userHZ is the unit of /proc/<pid>/stat times: USER_HZ, 100 on Linux.
const userHZ = 100

type procStat struct {
	state  byte
	start  int64
	exists bool
}

// readProcStat reads a process's state and start time from /proc.
func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state), f[19] field 22 (starttime)
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	start, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], start: start, exists: true}, true
}

func bootTime() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// processRunning reports whether p (on this machine) still runs: its pid
// exists, is not a zombie, and started when p did.
func processRunning(p Process) bool {
	if p.PID <= 0 {
		return false
	}
	if err := syscall.Kill(p.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	st, ok := readProcStat(p.PID)
	if !ok {
		// No /proc: the pid exists, which is all that can be known.
		return true
	}
	if st.state == 'Z' || st.state == 'X' {
		return false
	}
	return p.Start == 0 || st.start == p.Start
}

// LockInfo is the content of path/.relctl/lock on the lock host.
type LockInfo struct {
	Owner       string  `json:"owner"` // user@machine
	RunID       string  `json:"run"`
	Proc        Process `json:"proc"`
	Fingerprint string  `json:"fingerprint"`
	Started     int64   `json:"started"`     // unix seconds, host clock
	LeaseUntil  int64   `json:"lease_until"` // unix seconds, host clock
	// TakenFrom is the run whose lock this run took over (resume of a dead
	// process, or a rollback of a dead run); the takeover is audited.
	TakenFrom string `json:"taken_from,omitempty"`
	// Reason and Ticket are what the operator said about the run
	// (--reason, --ticket; the plan's).
	Reason string `json:"reason,omitempty"`
	Ticket string `json:"ticket,omitempty"`
	// Environment is the inventory environment of the run (--env).
	Environment string `json:"environment,omitempty"`
	Now         int64  `json:"-"` // the host's clock when read
	raw         string // the file's content as read: what a takeover compares
}

// Expired reports whether the lease ran out (by the lock host's clock).
func (l LockInfo) Expired() bool { return l.Now > l.LeaseUntil }

func (l LockInfo) String() string {
	s := fmt.Sprintf("held by %s (run %s", l.Owner, l.RunID)
	if l.Environment != "" {
		s += ", environment " + l.Environment
	}
	if l.Proc.PID != 0 {
		s += fmt.Sprintf(", pid %d on %s", l.Proc.PID, l.Proc.Machine)
	}
	s += ") since " + time.Unix(l.Started, 0).UTC().Format(time.RFC3339)
	if l.Expired() {
		s += fmt.Sprintf(", lease expired %s ago", time.Duration(l.Now-l.LeaseUntil)*time.Second)
	} else {
		s += fmt.Sprintf(", lease renewed until %s", time.Unix(l.LeaseUntil, 0).UTC().Format(time.RFC3339))
	}
	if l.Ticket != "" {
		s += ", ticket " + l.Ticket
	}
	if l.Reason != "" {
		s += fmt.Sprintf(", reason %q", l.Reason)
	}
	return s
}

// Liveness is whether a lock's holder is alive, and how that is known.
type Liveness struct {
	Alive bool
	Why   string
}

// Liveness tells whether the process that holds the lock is alive. On
// this machine its pid tells (a pid reused by another process, a zombie or
// a reboot since count as dead), whatever the lease says; on another
// machine only the lease can: a live holder keeps renewing it, so a live
// lease counts as alive and an expired one as dead.
func (l LockInfo) Liveness() Liveness { return liveness(l, CurrentProcess(), processRunning) }

func liveness(l LockInfo, self Process, running func(Process) bool) Liveness {
	p := l.Proc
	if p.PID != 0 && p.Machine != "" && p.Machine == self.Machine {
		switch {
		case p.Boot != "" && self.Boot != "" && p.Boot != self.Boot:
			return Liveness{false, fmt.Sprintf("%s has rebooted since run %s took the lock", p.Machine, l.RunID)}
		case p == self:
			return Liveness{true, "this process holds it"}
		case running(p):
			return Liveness{true, fmt.Sprintf("run %s is still running: %s is alive", l.RunID, p)}
		default:
			return Liveness{false, fmt.Sprintf("run %s's process (%s) has ended", l.RunID, p)}
		}
	}
	where := "on another machine"
	if p.Machine != "" {
		where = "on " + p.Machine
	}
	if !l.Expired() {
		return Liveness{true, fmt.Sprintf("run %s runs %s, where its process cannot be checked, and its lease is live until %s", l.RunID, where, time.Unix(l.LeaseUntil, 0).UTC().Format(time.RFC3339))}
	}
	return Liveness{false, fmt.Sprintf("run %s's lease expired %s ago without renewal", l.RunID, time.Duration(l.Now-l.LeaseUntil)*time.Second)}
}

// LockError is ErrLocked with the holder.
type LockError struct {
	Holder LockInfo
	Why    string // optional: why the holder counts as alive
}

func (e *LockError) Error() string {
	s := "fleet is locked: " + e.Holder.String()
	if e.Why != "" {
		s += ": " + e.Why
	}
	return s
}

// Unwrap makes errors.Is(err, ErrLocked) hold.
func (e *LockError) Unwrap() error { return ErrLocked }

// Lock is the deploy lock on one host, under path/.relctl/lock. Every
// change (acquire, renew, release, take over, break) is one script that
// holds flock(1) on path/.relctl/lock.guard while it reads, checks and
// writes, so no two interleave; the file is replaced by rename, never
// written in place. The lease is stamped by the host's own clock so that
// clock skew between operators does not matter.
type Lock struct {
	Hosts Hosts
	Host  string
	Path  string // the app's base path on Host
	Lease time.Duration

	renewEvery time.Duration // tests: renew this often instead of every Lease/3
	guardWait  int           // tests: seconds to wait for the guard instead of 20
}

func (l *Lock) file() string { return strings.TrimRight(l.Path, "/") + "/.relctl/lock" }

func (l *Lock) leaseSeconds() int { return max(int(l.Lease.Seconds()), 1) }

// Exit statuses of the lock scripts besides 0.
const (
	exitHeld  = 3 // held by another run or process: its content and now= on stdout
	exitGone  = 4 // no lock to renew or take over
	exitGuard = 5 // the guard could not be taken (no flock, unwritable dir, timeout)
)

// guard opens the critical section every lock script runs in. It needs f
// and gw (seconds to wait for another command's section to end).
const guard = `d=${f%/*}
mkdir -p "$d" || exit 5
command -v flock >/dev/null 2>&1 || { echo "flock(1) (util-linux) is not installed on this host: relctl's lock needs it" >&2; exit 5; }
exec 9>>"$d/lock.guard" || exit 5
flock -w "$gw" 9 || { echo "$d/lock.guard is held by another relctl command for more than ${gw}s" >&2; exit 5; }
`

// writeBody writes $body (with __STARTED__ and __LEASE__ filled in) to $f
// through a temporary file and a rename.
const writeBody = `body=$(printf '%s' "$body" | sed "s/__STARTED__/$started/; s/__LEASE__/$((now + lease))/")
tmp="$f.tmp.$$"
{ printf '%s\n' "$body" > "$tmp" && mv -f "$tmp" "$f"; } || { rm -f "$tmp"; exit 5; }
`

// keepStarted sets $started from the current lock ($cur), else now.
const keepStarted = `started=$(printf '%s' "$cur" | sed -n 's/.*"started":\([0-9][0-9]*\).*/\1/p')
[ -n "$started" ] || started=$now
`

// acquireScript: exit 0 = taken, or already this process's (renewed);
// exit 3 = held by another run or another process of this run.
// Variables: f, run, lease, id, body.
const acquireScript = guard + `now=$(date +%s)
started=$now
if [ -e "$f" ]; then
  cur=$(cat "$f")
  case "$cur" in
    *"$id"*) ` + keepStarted + `;;
    *) printf '%s\nnow=%s\n' "$cur" "$now"; exit 3 ;;
  esac
fi
` + writeBody

// renewScript extends the lease of a lock this process holds, and never
// creates one: exit 4 = gone, exit 3 = someone else's now.
// Variables: f, run, lease, id, body.
const renewScript = guard + `now=$(date +%s)
[ -e "$f" ] || { echo gone; exit 4; }
cur=$(cat "$f")
case "$cur" in
  *"$id"*) ;;
  *) printf '%s\nnow=%s\n' "$cur" "$now"; exit 3 ;;
esac
` + keepStarted + writeBody

// releaseScript removes the lock if this process holds it.
// Variables: f, id.
const releaseScript = guard + `[ -e "$f" ] || exit 0
if grep -qF -- "$id" "$f"; then rm -f "$f"; else echo "lock is held by another run: $(cat "$f")" >&2; exit 3; fi
`

// replaceScript replaces (or, with an empty body, removes) the lock only
// if it is still exactly prev, and appends the audit record in the same
// critical section. Variables: f, prev, lease, body, audit, history.
const replaceScript = guard + `now=$(date +%s)
[ -e "$f" ] || { echo gone; exit 4; }
cur=$(cat "$f")
if [ "$cur" != "$prev" ]; then printf '%s\nnow=%s\n' "$cur" "$now"; exit 3; fi
printf '%s\n' "$audit" >> "$history" || exit 5
if [ -z "$body" ]; then rm -f "$f"; exit 0; fi
started=$now
` + writeBody

// script is a lock script with its variables set, shell-quoted, first
// (name, value pairs; f is the lock file).
func (l *Lock) script(body string, vars ...string) string {
	var b strings.Builder
	gw := 20
	if l.guardWait > 0 {
		gw = l.guardWait
	}
	b.WriteString("set -u\nf=" + shell.Quote(l.file()) + "; gw=" + strconv.Itoa(gw))
	for i := 0; i+1 < len(vars); i += 2 {
		b.WriteString("; " + vars[i] + "=" + shell.Quote(vars[i+1]))
	}
	b.WriteString("\n")
	return b.String() + body
}

// identity is what a lock file holds for run info in this process, as one
// contiguous piece of its JSON: scripts compare it as a fixed string.
func identity(info LockInfo) string {
	run, _ := json.Marshal(info.RunID)
	proc, _ := json.Marshal(info.Proc)
	return `"run":` + string(run) + `,"proc":` + string(proc)
}

// body is the lock file's JSON with __STARTED__ and __LEASE__ for the
// script to fill in by the host's clock.
func body(info LockInfo) string {
	owner, _ := json.Marshal(info.Owner)
	fp, _ := json.Marshal(info.Fingerprint)
	s := `{"owner":` + string(owner) + `,` + identity(info) + `,"fingerprint":` + string(fp) + `,"started":__STARTED__,"lease_until":__LEASE__`
	if info.TakenFrom != "" {
		from, _ := json.Marshal(info.TakenFrom)
		s += `,"taken_from":` + string(from)
	}
	// Last, after every field the scripts read: JSON-escaped text, one line.
	if info.Environment != "" {
		env, _ := json.Marshal(info.Environment)
		s += `,"environment":` + string(env)
	}
	if info.Ticket != "" {
		t, _ := json.Marshal(info.Ticket)
		s += `,"ticket":` + string(t)
	}
	if info.Reason != "" {
		r, _ := json.Marshal(info.Reason)
		s += `,"reason":` + string(r)
	}
	return s + "}"
}

// withProcess fills in this process when info names none.
func withProcess(info LockInfo) LockInfo {
	if info.Proc.PID == 0 {
		info.Proc = CurrentProcess()
	}
	return info
}

// run runs a lock script and sorts its outcome: *LockError with the holder
// (exit 3), ErrLockGone (exit 4), or the transport's error prefixed by op.
func (l *Lock) run(ctx context.Context, op, script string) error {
	return l.runCmd(ctx, op, remote.Command{Script: script})
}

func (l *Lock) runCmd(ctx context.Context, op string, cmd remote.Command) error {
	var out strings.Builder
	cmd.Timeout, cmd.Stdout = 30*time.Second, func(s string) { out.WriteString(s + "\n") }
	_, err := l.Hosts.Run(ctx, l.Host, cmd)
	var ee *remote.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.Code == exitHeld:
		holder, perr := parseLock(out.String())
		if perr != nil {
			return fmt.Errorf("%s on %s: held, and its content is unreadable: %v", op, l.Host, perr)
		}
		return &LockError{Holder: holder}
	case errors.As(err, &ee) && ee.Code == exitGone:
		return fmt.Errorf("%s on %s: %w", op, l.Host, ErrLockGone)
	}
	return fmt.Errorf("%s on %s: %w", op, l.Host, err)
}

// Acquire takes the lock for info's run in this process, or renews it if
// this process already holds it. A lock held by another process of the
// same run (a resume after a crash) is taken over, audited, when that
// process is provably dead (see Liveness); while it lives, the answer is a
// *LockError saying so. A lock of another run is a *LockError.
func (l *Lock) Acquire(ctx context.Context, info LockInfo) error {
	info = withProcess(info)
	err := l.run(ctx, "lock", l.script(acquireScript, "run", info.RunID, "lease", strconv.Itoa(l.leaseSeconds()), "id", identity(info), "body", body(info)))
	var le *LockError
	if !errors.As(err, &le) || le.Holder.RunID != info.RunID {
		return err
	}
	return l.TakeOver(ctx, le.Holder, info)
}

// Renew extends the lease of the lock this process holds for info's run.
// It never creates a lock: ErrLockGone when there is none (released or
// broken), a *LockError when another run or process holds it. While the
// lock host's shell runs a long command (its forward chain, a migration)
// the renewal goes in a session of its own beside it (remote.Command's
// Beside), so the lease never waits behind the host's deploy.
func (l *Lock) Renew(ctx context.Context, info LockInfo) error {
	info = withProcess(info)
	return l.runCmd(ctx, "renew lock", remote.Command{Beside: true,
		Script: l.script(renewScript, "run", info.RunID, "lease", strconv.Itoa(l.leaseSeconds()), "id", identity(info), "body", body(info))})
}

// Release removes the lock if this process holds it for info's run; no
// lock is not an error.
func (l *Lock) Release(ctx context.Context, info LockInfo) error {
	info = withProcess(info)
	return l.run(ctx, "unlock", l.script(releaseScript, "id", identity(info)))
}

// lockAudit is the history.jsonl record of a takeover or a break: the
// fields of HistoryRecord plus the run whose lock it was.
type lockAudit struct {
	Time      time.Time `json:"time"`
	RunID     string    `json:"run"`
	Owner     string    `json:"owner"`
	Kind      string    `json:"kind"`
	Host      string    `json:"host"`
	Result    string    `json:"result"`
	Reason    string    `json:"reason"`
	PrevRun   string    `json:"prev_run"`
	PrevOwner string    `json:"prev_owner"`
}

// TakeOver replaces prev, a lock as Read returned it, with next's: only if
// prev's holder is dead (Liveness) and the lock is still exactly prev when
// the host replaces it, so a holder that renewed in between keeps it. The
// new lock names prev's run in taken_from, and a "lock-takeover" record
// with both run ids is appended to path/.relctl/history.jsonl in the same
// step. This is how resume (same run, new process) and a rollback of a
// dead run (new run) take a lock; nothing else replaces a lock.
func (l *Lock) TakeOver(ctx context.Context, prev, next LockInfo) error {
	next = withProcess(next)
	lv := liveness(prev, next.Proc, processRunning)
	if lv.Alive {
		return &LockError{Holder: prev, Why: lv.Why}
	}
	next.TakenFrom = prev.RunID
	rec := lockAudit{Time: time.Now().UTC(), RunID: next.RunID, Owner: next.Owner, Kind: "lock-takeover", Host: l.Host,
		Result: "lock taken over by " + next.Proc.String(), Reason: "it was " + prev.String() + "; " + lv.Why,
		PrevRun: prev.RunID, PrevOwner: prev.Owner}
	return l.replace(ctx, "take over lock", prev, body(next), rec)
}

// BreakHeld removes prev, a lock as Read returned it, if it is still
// exactly prev, and appends a "lock-break" record naming the breaker's run
// (by; "" when none) and prev's run to path/.relctl/history.jsonl. The
// caller decides whether prev may be broken (an expired lease, or --force).
func (l *Lock) BreakHeld(ctx context.Context, prev LockInfo, owner, by string) error {
	rec := lockAudit{Time: time.Now().UTC(), RunID: by, Owner: owner, Kind: "lock-break", Host: l.Host,
		Result: "lock broken", Reason: prev.String(), PrevRun: prev.RunID, PrevOwner: prev.Owner}
	return l.replace(ctx, "break lock", prev, "", rec)
}

func (l *Lock) replace(ctx context.Context, op string, prev LockInfo, newBody string, rec lockAudit) error {
	if prev.raw == "" {
		return fmt.Errorf("%s on %s: the lock to replace was not read from the host", op, l.Host)
	}
	audit, _ := json.Marshal(rec)
	history := strings.TrimRight(l.Path, "/") + "/.relctl/history.jsonl"
	err := l.run(ctx, op, l.script(replaceScript, "prev", prev.raw, "lease", strconv.Itoa(l.leaseSeconds()), "body", newBody, "audit", string(audit), "history", history))
	var le *LockError
	if errors.As(err, &le) {
		le.Why = "it changed since it was read"
	}
	return err
}

// Read returns the current lock, or nil when the fleet is not locked.
func (l *Lock) Read(ctx context.Context) (*LockInfo, error) {
	out, err := output(ctx, l.Hosts, l.Host, fmt.Sprintf(`f=%s; if [ -e "$f" ]; then cat "$f"; fi; echo "now=$(date +%%s)"`, shell.Quote(l.file())))
	if err != nil {
		return nil, fmt.Errorf("read lock on %s: %w", l.Host, err)
	}
	if !strings.Contains(out, "{") {
		return nil, nil
	}
	info, err := parseLock(out)
	if err != nil {
		return nil, fmt.Errorf("read lock on %s: %w", l.Host, err)
	}
	return &info, nil
}

// Break removes the lock whoever holds it; the caller checks expiry and
// audits the break. BreakHeld is the audited compare-and-break.
func (l *Lock) Break(ctx context.Context) error {
	return l.run(ctx, "break lock", l.script(guard+`rm -f "$f"`+"\n"))
}

func parseLock(out string) (LockInfo, error) {
	var info LockInfo
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "{"):
			if err := json.Unmarshal([]byte(line), &info); err != nil {
				return info, err
			}
			info.raw = line
		case strings.HasPrefix(line, "now="):
			info.Now, _ = strconv.ParseInt(strings.TrimPrefix(line, "now="), 10, 64)
		}
	}
	if info.RunID == "" {
		return info, fmt.Errorf("no lock record in %q", out)
	}
	return info, nil
}

// Held is a lock this process holds, its lease renewed in the background
// (every third of the lease) until Stop or Release. When the lock is gone,
// taken by another run, or its lease ran out while renewals failed, the
// lock is lost: Lost is closed, Err says why, and it is never renewed
// again (a late renewal must not re-create a lock someone broke).
type Held struct {
	lock   *Lock
	info   LockInfo
	warn   func(string)
	onLost func(error)

	cancel context.CancelFunc // cuts a renewal in flight
	quit   chan struct{}      // closed by Stop: no new renewal
	done   chan struct{}      // closed when the renewer has ended
	lost   chan struct{}

	mu       sync.Mutex
	err      error
	stopped  bool
	released bool
}

// stopGrace is how long Stop lets a renewal in flight finish before it
// cuts it (safe either way: renewals compare and swap on the host).
const stopGrace = 5 * time.Second

// Keep starts renewing info's lock, acquired by a request sent at since
// (the lease runs from no earlier than that). warn is told of each failed
// renewal; onLost once, when the lock is lost. Either may be nil; both run
// on the renewing goroutine and must not call Stop or Release.
func (l *Lock) Keep(info LockInfo, since time.Time, warn func(string), onLost func(error)) *Held {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Held{lock: l, info: withProcess(info), warn: warn, onLost: onLost, cancel: cancel, quit: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{})}
	go h.renew(ctx, since)
	return h
}

// Lost is closed when the lock is lost.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// Err is nil while the lock is held, and wraps ErrLockLost (with why) once
// it is lost.
func (h *Held) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *Held) lose(err error) {
	h.mu.Lock()
	if h.err != nil {
		h.mu.Unlock()
		return
	}
	h.err = fmt.Errorf("%w: %w", ErrLockLost, err)
	h.mu.Unlock()
	close(h.lost)
	if h.onLost != nil {
		h.onLost(h.Err())
	}
}

func (h *Held) renew(ctx context.Context, since time.Time) {
	defer close(h.done)
	every := max(h.lock.Lease/3, 10*time.Millisecond)
	if h.lock.renewEvery > 0 {
		every = h.lock.renewEvery
	}
	expires := since.Add(h.lock.Lease) // the lease lasts at least until then
	wait := every
	var lastErr error
	for {
		// A renewal that got through late (a slow host or link) can leave
		// less than a period of lease: the next one goes at half of what
		// is left, not at the expiry, where it would be lost unsent.
		d := min(wait, time.Until(expires)/2)
		due := time.Now().Add(d)
		t := time.NewTimer(d)
		select {
		case <-h.quit:
			t.Stop()
			return
		case <-t.C:
		}
		if now := time.Now(); !now.Before(expires) {
			if lastErr == nil {
				// No renewal failed: this process woke too late to send
				// one (stopped with Ctrl-Z or SIGSTOP, a suspended
				// machine, or starved of CPU).
				h.lose(fmt.Errorf("the lease ran out at %s before a renewal could be sent: relctl ran again only %s after its renewal was due (stopped, suspended or starved of CPU)",
					expires.Format(time.RFC3339), now.Sub(due).Round(time.Millisecond)))
				return
			}
			h.lose(fmt.Errorf("the lease ran out at %s while renewals failed (last: %v)", expires.Format(time.RFC3339), lastErr))
			return
		}
		sent := time.Now()
		rctx, cancel := context.WithDeadline(ctx, expires)
		err := h.lock.Renew(rctx, h.info)
		cancel()
		var le *LockError
		switch {
		case ctx.Err() != nil, h.isStopped():
			return // stopped: whatever the renewal did, Release decides
		case err == nil:
			expires, wait, lastErr = sent.Add(h.lock.Lease), every, nil
		case errors.Is(err, ErrLockGone):
			h.lose(err)
			return
		case errors.As(err, &le):
			h.lose(fmt.Errorf("taken by another run or process: %s", le.Holder))
			return
		default:
			lastErr = err
			// Retry sooner; the lease ends where it ends.
			wait = max(every/3, time.Millisecond)
			if h.warn != nil {
				h.warn(fmt.Sprintf("%v (the lease runs out in %s unless a renewal gets through)", err, time.Until(expires).Round(100*time.Millisecond)))
			}
		}
	}
}

// Stop ends the renewals and waits until none is in flight (one in flight
// gets stopGrace to finish, then is cut); the lock stays (a paused run
// keeps it until its lease runs out). It may be called more than once.
func (h *Held) Stop() {
	h.mu.Lock()
	if !h.stopped {
		h.stopped = true
		close(h.quit)
	}
	h.mu.Unlock()
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		h.cancel()
		<-h.done
	}
	h.cancel()
}

func (h *Held) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// Release stops the renewals, waits for the one in flight, then removes the
// lock if this process still holds it: no renewal can follow the release.
func (h *Held) Release(ctx context.Context) error {
	h.Stop()
	h.mu.Lock()
	already := h.released
	h.released = true
	h.mu.Unlock()
	if already {
		return nil
	}
	return releaseLost(h.Err(), h.lock.Release(ctx, h.info))
}
