package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
)

// The health wait runs on the host, as one command: a shell loop that runs
// the health check every interval, each check bounded and killed with its
// process group, and decides there when the host has been healthy for
// stable_for or when the health timeout has passed. Polling from here
// would cost a command per check, and where a host charges for each
// session (its login shell's rc files, PAM, a WAN's round trips), a
// session per check.
//
// The loop reports each check on stdout, as one line carrying the loop's
// random nonce, followed by the check's own output (stdout and stderr, in
// order):
//
//	relctl-check:<nonce> <n> <exit status> <duration ms> <timed out 0|1>
//
// and ends with one verdict line, exiting 0 or 3:
//
//	relctl-healthy:<nonce> <checks> <elapsed ms>
//	relctl-unhealthy:<nonce> <checks> <elapsed ms>
//
// When the plan's next action is the version check, a healthy loop runs
// the version command right away, in the same command (a round trip per
// host saved on the critical path, which a WAN makes count), bounded by
// timeouts.version, and reports it after the verdict; the version action
// then judges what it printed, exactly as if it had run it:
//
//	relctl-then-out:<nonce>                 …its stdout…
//	\nrelctl-then-err:<nonce>                …its stderr…
//	\nrelctl-then:<nonce> <exit status> <duration ms> <timed out 0|1>
//
// Time on the host comes from /proc/uptime (10 ms steps; date +%s, 1 s
// steps, where there is none). A check is started in its own session
// (setsid) with a watchdog that sends its process group TERM at the
// check's timeout and KILL a grace later; whatever the check left running
// is killed when it ends, so that nothing holds its output open. On a host
// without setsid a check runs without its own bound: the loop as a whole
// is still bounded by the command's timeout.
const healthLoopScript = `relctl_ms() {
	if [ -r /proc/uptime ] && read -r relctl_up relctl_x </proc/uptime; then
		relctl_f=${relctl_up#*.}
		echo $(( ${relctl_up%.*} * 1000 + (1$relctl_f - 100) * 10 ))
	else
		echo $(( $(date +%s) * 1000 ))
	fi
}
relctl_secs() { printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )); }
relctl_check() {
	if [ -z "$relctl_setsid" ]; then
		if [ "$2" = split ]; then sh -c "$relctl_script" </dev/null; else sh -c "$relctl_script" </dev/null 2>&1; fi
		return
	fi
	if [ "$2" = split ]; then
		setsid sh -c "$relctl_script" </dev/null &
	else
		setsid sh -c "$relctl_script" </dev/null 2>&1 &
	fi
	relctl_p=$!
	setsid sh -c 'sleep "$1" || exit 0; kill -s TERM -- "-$3" 2>/dev/null || kill -s TERM "$3" 2>/dev/null || exit 0; sleep "$2" || exit 0; kill -s KILL -- "-$3" 2>/dev/null || kill -s KILL "$3" 2>/dev/null' \
		relctl-watchdog "$(relctl_secs "$1")" "$relctl_grace" "$relctl_p" </dev/null >/dev/null 2>&1 &
	relctl_w=$!
	wait "$relctl_p" 2>/dev/null
	relctl_rc=$?
	kill -s KILL -- "-$relctl_w" 2>/dev/null || kill -s KILL "$relctl_w" 2>/dev/null
	wait "$relctl_w" 2>/dev/null
	kill -s KILL -- "-$relctl_p" 2>/dev/null
	return "$relctl_rc"
}
relctl_then() {
	relctl_script=$relctl_then
	relctl_ef=$(mktemp 2>/dev/null) || relctl_ef=/tmp/relctl-then.$$
	relctl_now=$(relctl_ms)
	printf 'relctl-then-out:%s\n' "$relctl_n"
	relctl_check "$relctl_thento" split 2>"$relctl_ef"
	relctl_rc=$?
	relctl_end=$(relctl_ms)
	relctl_d=$((relctl_end - relctl_now))
	relctl_tmo=0
	if [ "$relctl_rc" -gt 128 ] && [ $((relctl_d + 20)) -ge "$relctl_thento" ]; then relctl_tmo=1; fi
	printf '\nrelctl-then-err:%s\n' "$relctl_n"
	cat "$relctl_ef" 2>/dev/null
	rm -f "$relctl_ef"
	printf '\nrelctl-then:%s %s %s %s\n' "$relctl_n" "$relctl_rc" "$relctl_d" "$relctl_tmo"
}
relctl_health() {
	relctl_n=$1 relctl_iv=$2 relctl_st=$3 relctl_to=$4 relctl_hc=$5 relctl_grace=$6 relctl_script=$7
	relctl_then=${8-} relctl_thento=${9-0}
	relctl_setsid=
	if command -v setsid >/dev/null 2>&1; then relctl_setsid=1; fi
	relctl_t0=$(relctl_ms)
	# + 10: /proc/uptime counts in 1/100 s, and two truncated readings can
	# span up to 10 ms less than really passed; never give up before the
	# timeout.
	relctl_dl=$((relctl_t0 + relctl_to + 10))
	relctl_ok=
	relctl_i=0
	while :; do
		relctl_i=$((relctl_i + 1))
		relctl_now=$(relctl_ms)
		relctl_a=$((relctl_dl - relctl_now))
		if [ "$relctl_a" -lt 0 ]; then relctl_a=0; fi
		relctl_a=$((relctl_a + 1000))
		if [ "$relctl_a" -gt "$relctl_hc" ]; then relctl_a=$relctl_hc; fi
		relctl_out=$(relctl_check "$relctl_a")
		relctl_rc=$?
		relctl_end=$(relctl_ms)
		relctl_d=$((relctl_end - relctl_now))
		relctl_tmo=0
		if [ "$relctl_rc" -gt 128 ] && [ $((relctl_d + 20)) -ge "$relctl_a" ]; then relctl_tmo=1; fi
		if [ "$relctl_rc" -eq 0 ]; then
			if [ -z "$relctl_ok" ]; then relctl_ok=$relctl_end; fi
		else
			relctl_ok=
		fi
		printf 'relctl-check:%s %s %s %s %s\n' "$relctl_n" "$relctl_i" "$relctl_rc" "$relctl_d" "$relctl_tmo"
		if [ -n "$relctl_out" ]; then printf '%s\n' "$relctl_out"; fi
		if [ -n "$relctl_ok" ] && [ $((relctl_end - relctl_ok)) -ge "$relctl_st" ]; then
			printf 'relctl-healthy:%s %s %s\n' "$relctl_n" "$relctl_i" $((relctl_end - relctl_t0))
			if [ -n "$relctl_then" ]; then relctl_then; fi
			return 0
		fi
		if [ "$relctl_end" -ge "$relctl_dl" ]; then
			printf 'relctl-unhealthy:%s %s %s\n' "$relctl_n" "$relctl_i" $((relctl_end - relctl_t0))
			return 3
		fi
		relctl_s=$((relctl_dl - relctl_end + 1))
		if [ "$relctl_s" -gt "$relctl_iv" ]; then relctl_s=$relctl_iv; fi
		sleep "$(relctl_secs "$relctl_s")" 2>/dev/null || sleep 1
	done
}
`

// healthKillGrace is how long a check that outlived its timeout has
// between TERM and KILL.
const healthKillGrace = 2 * time.Second

// healthLoop is one health wait's parameters.
type healthLoop struct {
	nonce    string
	interval time.Duration
	stable   time.Duration
	timeout  time.Duration // the health timeout: no check starts after it
	check    time.Duration // one check's bound (timeouts.health_check)
	script   string        // the rendered health command
	then     string        // the rendered version command to run once healthy ("" = none)
	thenTO   time.Duration // its bound (timeouts.version)
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// Script is the loop's shell text: every value in it is quoted.
func (l healthLoop) Script() string {
	return healthLoopScript + "relctl_health " + strings.Join([]string{
		shell.Quote(l.nonce), ms(l.interval), ms(l.stable), ms(l.timeout), ms(max(l.check, time.Millisecond)),
		strconv.Itoa(int(healthKillGrace / time.Second)), shell.Quote(l.script),
		shell.Quote(l.then), ms(max(l.thenTO, time.Millisecond)),
	}, " ") + "\n"
}

// bound is the loop command's own timeout: the health timeout, one more
// check and its kill grace, and room for the host's clock steps.
func (l healthLoop) bound() time.Duration {
	d := l.timeout + l.check + l.interval + healthKillGrace + 5*time.Second
	if l.then != "" {
		d += l.thenTO + healthKillGrace
	}
	return d
}

// versionRead is what the version command printed when it ran in the
// health wait's command (out), or how it failed (err).
type versionRead struct {
	done chan struct{} // closed when out or err is set
	out  string
	err  error
}

// healthCheck is one check the loop reported.
type healthCheck struct {
	n        int
	status   int
	took     time.Duration
	timedOut bool
	out      []string
}

// healthReader turns the loop's stdout into checks and a verdict.
type healthReader struct {
	nonce   string
	onCheck func(healthCheck) // called when a check's output is complete
	cur     *healthCheck
	last    healthCheck // the latest complete check
	lastBad *healthCheck
	verdict string // "healthy" | "unhealthy" | ""
	checks  int
	stray   []string // lines before the first check (not from a check)
	// The version command run once healthy: thenMode is where its lines
	// go ("out", "err"), then its end (nil until reported).
	thenMode         string
	thenOut, thenErr []string
	thenStarted      bool
	then             *healthCheck
}

func (h *healthReader) flush() {
	if h.cur == nil {
		return
	}
	c := *h.cur
	h.cur = nil
	h.last = c
	if c.status != 0 {
		h.lastBad = &c
	}
	if h.onCheck != nil {
		h.onCheck(c)
	}
}

func (h *healthReader) line(l string) {
	switch l {
	case "relctl-then-out:" + h.nonce:
		h.flush()
		h.thenMode, h.thenStarted = "out", true
		return
	case "relctl-then-err:" + h.nonce:
		h.thenMode = "err"
		return
	}
	tag, rest, ok := strings.Cut(l, ":"+h.nonce+" ")
	if ok && tag == "relctl-then" {
		f := strings.Fields(rest)
		if len(f) == 3 {
			st, _ := strconv.Atoi(f[0])
			d, _ := strconv.Atoi(f[1])
			h.then = &healthCheck{status: st, took: time.Duration(d) * time.Millisecond, timedOut: f[2] == "1",
				out: h.thenOut}
			h.thenMode = ""
			return
		}
	}
	switch h.thenMode {
	case "out":
		h.thenOut = append(h.thenOut, l)
		return
	case "err":
		h.thenErr = append(h.thenErr, l)
		return
	}
	if !ok {
		if h.cur != nil {
			h.cur.out = append(h.cur.out, l)
		} else if h.verdict == "" {
			h.stray = append(h.stray, l)
		}
		return
	}
	f := strings.Fields(rest)
	switch tag {
	case "relctl-check":
		if len(f) != 4 {
			break
		}
		h.flush()
		n, _ := strconv.Atoi(f[0])
		st, _ := strconv.Atoi(f[1])
		d, _ := strconv.Atoi(f[2])
		h.cur = &healthCheck{n: n, status: st, took: time.Duration(d) * time.Millisecond, timedOut: f[3] == "1"}
		return
	case "relctl-healthy", "relctl-unhealthy":
		if len(f) != 2 {
			break
		}
		h.flush()
		h.verdict = strings.TrimPrefix(tag, "relctl-")
		h.checks, _ = strconv.Atoi(f[0])
		return
	}
	if h.cur != nil {
		h.cur.out = append(h.cur.out, l)
	}
}

// err is a failed check as an error: a timeout wraps remote.ErrTimeout, an
// exit status is a *remote.ExitError with the check's last output line.
func (c healthCheck) err(host string, bound time.Duration) error {
	if c.timedOut {
		return fmt.Errorf("%s: %w after %s (the check's process group was killed)", host, remote.ErrTimeout, bound.Round(time.Millisecond))
	}
	return &remote.ExitError{Host: host, Code: c.status, StderrTail: strings.Join(c.out, "\n")}
}

func (c healthCheck) String() string {
	switch {
	case c.status == 0:
		return fmt.Sprintf("health check %d: ok (%s)", c.n, c.took)
	case c.timedOut:
		return fmt.Sprintf("health check %d: timed out after %s", c.n, c.took)
	}
	s := fmt.Sprintf("health check %d: exit status %d (%s)", c.n, c.status, c.took)
	if len(c.out) > 0 {
		s += ": " + strings.TrimSpace(c.out[len(c.out)-1])
	}
	return s
}

func newNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitHealthy waits, on the host, until the health command has passed for
// stable_for, or fails after the health timeout with the last failure's
// output. Each check is bounded by timeouts.health_check and by what is
// left of the health timeout (plus a second). Every check the host
// reports becomes a "check" output event. A dropped connection is
// remote.ErrConnectionLost, as for any command.
//
// With withVersion, a healthy loop also runs the version command in the
// same remote command and leaves what it printed (or how it failed) in
// r.version, for the version action that follows.
func (e *Engine) waitHealthy(ctx context.Context, r *hostRun, vals fleet.Values, withVersion bool) (string, error) {
	loop, env, err := e.newHealthLoop(r, vals)
	if err != nil {
		return "", err
	}
	r.version = nil
	if vt := e.inv.HostTemplate(r.h, fleet.CmdVersion); withVersion && vt != nil {
		if loop.then, err = vt.Render(vals); err != nil {
			return "", err
		}
		var venv map[string]string
		if loop.then, venv, err = e.commandEnv(fleet.CmdVersion, loop.then, vals); err != nil {
			return "", err
		}
		for k, v := range venv {
			env[k] = v // the same values; only the become variable is added
		}
		loop.thenTO = e.to.Version
	}
	rd := &healthReader{nonce: loop.nonce, onCheck: func(c healthCheck) {
		r.emit(event.Event{Type: event.StepOutput, Stream: "check", Line: c.String()})
	}}
	var stderr []string
	// The health action ends when the verdict arrives; with a version
	// command, the command goes on and the version action waits for it.
	verdict := make(chan struct{})
	var once sync.Once
	line := func(l string) {
		rd.line(l)
		if rd.verdict != "" {
			once.Do(func() { close(verdict) })
		}
	}
	ended := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := e.hostsRun(ctx, r.h.Name, remote.Command{Script: loop.Script(), Env: env, Timeout: loop.bound(),
			Stdout: line, Stderr: func(l string) { stderr = append(stderr, l) }})
		ended <- err
	}()
	select {
	case <-verdict:
		if rd.verdict == "healthy" && loop.then != "" {
			took := time.Since(start).Round(time.Millisecond)
			checks := rd.checks
			v := &versionRead{done: make(chan struct{})}
			r.version = v
			go func() {
				defer close(v.done)
				err := <-ended
				// Healthy, whatever happened to the version command
				// after: the version action reports that.
				switch {
				case rd.then != nil && rd.then.status == 0:
					v.out = strings.Join(rd.thenOut, "\n")
				case rd.then != nil:
					c := *rd.then
					c.out = rd.thenErr
					v.err = c.err(r.h.Name, loop.thenTO)
				case err != nil:
					v.err = err
				default:
					v.err = errors.New("the version command ran after the health wait but did not report its end")
				}
			}()
			return fmt.Sprintf("healthy after %d check(s) in %s", checks, took), nil
		}
		err = <-ended
	case err = <-ended:
	}
	return e.healthOutcome(ctx, r, loop, rd, stderr, err, time.Since(start))
}

// newHealthLoop is the health wait's loop for r's host with vals, without
// a command to run after it, and the environment to send with it.
func (e *Engine) newHealthLoop(r *hostRun, vals fleet.Values) (healthLoop, map[string]string, error) {
	hTimeout, hInterval, hStable := e.plan.HealthFor(r.h.Name)
	script, err := e.inv.HostTemplate(r.h, fleet.CmdHealth).Render(vals)
	if err != nil {
		return healthLoop{}, nil, err
	}
	script, env, err := e.commandEnv(fleet.CmdHealth, script, vals)
	if err != nil {
		return healthLoop{}, nil, err
	}
	return healthLoop{nonce: newNonce(), interval: time.Duration(hInterval), stable: time.Duration(hStable),
		timeout: time.Duration(hTimeout), check: e.to.HealthCheck, script: script}, env, nil
}

// healthOutcome judges a health wait that ended: what the loop reported
// (rd, its stray stderr lines) and how its command ended (err).
func (e *Engine) healthOutcome(ctx context.Context, r *hostRun, loop healthLoop, rd *healthReader, stderr []string, err error, took time.Duration) (string, error) {
	rd.flush()
	took = took.Round(time.Millisecond)
	switch {
	case err == nil && rd.verdict == "healthy":
		return fmt.Sprintf("healthy after %d check(s) in %s", rd.checks, took), nil
	case errors.Is(err, remote.ErrConnectionLost) || ctx.Err() != nil:
		return "", err
	case rd.verdict == "unhealthy" && rd.lastBad != nil:
		for _, l := range rd.lastBad.out {
			r.emit(event.Event{Type: event.StepOutput, Stream: "stderr", Line: l})
		}
		bound := min(loop.check, loop.timeout+time.Second)
		return "", fmt.Errorf("not healthy within %s (%d checks): %v", loop.timeout, rd.checks, rd.lastBad.err(r.h.Name, bound))
	case rd.verdict == "unhealthy":
		// Healthy at the end, but not for stable_for.
		return "", fmt.Errorf("not healthy within %s (%d checks): healthy for less than stable_for %s", loop.timeout, rd.checks, loop.stable)
	}
	// The loop itself failed: it could not run, or outlived its bound.
	for _, l := range append(rd.stray, stderr...) {
		r.emit(event.Event{Type: event.StepOutput, Stream: "stderr", Line: l})
	}
	if err == nil {
		err = errors.New("the health loop ended without a verdict")
	}
	if rd.lastBad != nil {
		return "", fmt.Errorf("health wait: %w (last check: %v)", err, rd.lastBad.err(r.h.Name, loop.check))
	}
	return "", fmt.Errorf("health wait: %w", err)
}
