package rollout

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
)

// The forward chain: a host's stop, switch, start, health wait and version
// check, sent as ONE command. Each is a round trip through the persistent
// shell when sent alone, and over a WAN the round trips, not the work,
// make a host's deploy slow (five of them, 50 ms each at 25 ms one-way).
//
// The executor's truth stays per action. The host runs the actions in
// order, each in its own session and process group (setsid) with its own
// watchdog that sends the group TERM at the action's timeout and KILL a
// grace later; it stops at the first action that fails, so a failed stop
// never runs switch. Each action is framed by records that carry the
// chain's random nonce (an action's output cannot fake them):
//
//	relctl-act:<nonce> <action>                                stdout, before it starts
//	…its stdout and stderr, on the command's streams…
//	\nrelctl-act-end:<nonce> <action> <status> <ms> <timed out 0|1>   stdout, after it ended
//	\nrelctl-act-end:<nonce> <action>                          stderr, after it ended
//
// The runner of each action (deploy.go's table) waits for its own records
// and reports them as if it had sent the command itself: the same events,
// output lines, errors and journal entries, so compensation unwinds
// exactly the actions whose end the host reported (and the one in flight,
// as for any action that can fail half-way). The chain starts at the first
// chainable action the host reaches (stop, after the balancer re-check)
// and takes the chainable actions that follow it in the plan, up to the
// first that is not chainable.
//
// Before each action the host writes its start record: once relctl's
// session is gone (relctl killed, connection closed) that write fails and
// the chain ends there; the action in flight runs to its end or its
// timeout, as a command sent alone would. That alone is not enough: in a
// partition sshd does not notice (the TCP socket stays open, writes land
// in buffers), the host would go on to switch and start while relctl, on
// a new connection, compensates. So the chain also leaves a trace on the
// host (chaincancel.go): its pid and nonce, and every action's start and
// end appended to a log under path/.relctl/chains/<run>/<nonce>/, and it
// checks a cancel marker there before each action. Before relctl
// compensates a host whose chain session it lost (connection dropped,
// session dead, the chain's read timed out), its first command there sets
// the marker of every chain of the run, waits for each to exit (bounded by
// its in-flight action's timeout and the kill grace, which the watchdog
// enforces; a chain past that is killed with its process group), and reads
// the log: compensation unwinds exactly the actions the log says started,
// the one in flight included. A host that cannot be reached is treated as
// before (compensation meets it and names it).
const chainScript = `relctl_act() {
	printf 'relctl-act:%s %s\n' "$1" "$2" || exit 141
	if [ -e "$relctl_dir/cancel" ]; then printf 'cancelled %s\n' "$2" >>"$relctl_dir/log"; exit 125; fi
	printf 'start %s %s\n' "$2" "$3" >>"$relctl_dir/log" || exit 125
	relctl_t0=$(relctl_ms)
	if [ -z "$relctl_ss" ]; then
		sh -c "$4" </dev/null &
		relctl_ap=$!
		printf 'pid %s %s\n' "$2" "$relctl_ap" >>"$relctl_dir/log"
		wait "$relctl_ap"
		relctl_rc=$?
	else
	setsid sh -c "$4" </dev/null &
	relctl_ap=$!
	printf 'pid %s %s\n' "$2" "$relctl_ap" >>"$relctl_dir/log"
	setsid sh -c 'sleep "$1" || exit 0; kill -s TERM -- "-$3" 2>/dev/null || kill -s TERM "$3" 2>/dev/null || exit 0; sleep "$2" || exit 0; kill -s KILL -- "-$3" 2>/dev/null || kill -s KILL "$3" 2>/dev/null' \
		relctl-watchdog "$(relctl_secs "$3")" "$relctl_grace" "$relctl_ap" </dev/null >/dev/null 2>&1 &
	relctl_aw=$!
	wait "$relctl_ap"
	relctl_rc=$?
	kill -s KILL -- "-$relctl_aw" 2>/dev/null || kill -s KILL "$relctl_aw" 2>/dev/null
	wait "$relctl_aw" 2>/dev/null
	fi
	relctl_d=$(( $(relctl_ms) - relctl_t0 ))
	relctl_tmo=0
	if [ "$relctl_rc" -gt 128 ] && [ $((relctl_d + 20)) -ge "$3" ]; then relctl_tmo=1; fi
	printf 'end %s %s %s %s\n' "$2" "$relctl_rc" "$relctl_d" "$relctl_tmo" >>"$relctl_dir/log"
	printf '\nrelctl-act-end:%s %s\n' "$1" "$2" >&2
	printf '\nrelctl-act-end:%s %s %s %s %s\n' "$1" "$2" "$relctl_rc" "$relctl_d" "$relctl_tmo"
	relctl_ap=
	return "$relctl_rc"
}
relctl_begin() {
	relctl_st=$(cut -d' ' -f22 "/proc/$$/stat" 2>/dev/null) || relctl_st=
	mkdir -p "$relctl_dir" && printf '%s %s %s\n' "$$" "$1" "$relctl_st" >"$relctl_dir/pid" && : >>"$relctl_dir/log" ||
		{ echo "relctl: cannot record the chain in $relctl_dir: no action started" >&2; exit 125; }
}
relctl_ap=
relctl_ss=
if command -v setsid >/dev/null 2>&1; then relctl_ss=1; fi
trap 'if [ -n "$relctl_ap" ]; then kill -s TERM -- "-$relctl_ap" 2>/dev/null || kill -s TERM "$relctl_ap" 2>/dev/null; fi; exit 143' TERM INT HUP
`

// chainable are the actions the chain can carry: each is one command on
// the host with the step's forward values.
var chainable = map[plan.Action]bool{
	plan.ActionStop: true, plan.ActionSwitch: true, plan.ActionStart: true, plan.ActionHealth: true, plan.ActionVersion: true,
}

// chainAct is one action of a chain: what the host runs, and what it
// reported.
type chainAct struct {
	action  plan.Action
	script  string
	timeout time.Duration // kept by the action's watchdog on the host
	health  *healthLoop   // the health action's loop
	env     map[string]string
	own     bool // relctl's own script (switch): the RELCTL_* values only

	// Below: under hostChain.mu.
	q      []chainLine // output not handed on yet
	end    *chainEnd   // stdout's end record
	errEnd bool        // stderr's end record
	tail   []string    // stderr's last lines, for the error
	used   int         // bytes of output handed on (remote.DefaultMaxOutput at most)
	cut    int         // bytes dropped past it
}

type chainLine struct {
	stderr bool
	text   string
}

type chainEnd struct {
	status   int
	took     time.Duration
	timedOut bool
}

// hostChain is a chain in flight on one host.
type hostChain struct {
	host   string
	nonce  string
	dir    string // its trace on the host (chainDir)
	acts   []*chainAct
	cancel context.CancelFunc
	done   chan struct{} // closed when the command returned

	mu      sync.Mutex
	wake    chan struct{} // (cap 1) something arrived
	outAt   int           // the action stdout carries (-1: none yet)
	errAt   int           // the action stderr carries
	held    [2]bool       // an empty line held back: it may be a record's newline
	stray   []string      // stdout outside any action
	err     error         // how the command ended (after done)
	waiting bool
}

func (c *hostChain) act(a plan.Action) *chainAct {
	for _, ca := range c.acts {
		if ca.action == a {
			return ca
		}
	}
	return nil
}

func (c *hostChain) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *hostChain) push(stderr bool, at int, text string) {
	if at < 0 || at >= len(c.acts) {
		if !stderr {
			c.stray = append(c.stray, text)
		}
		return
	}
	a := c.acts[at]
	if stderr {
		a.tail = append(a.tail, text)
		if len(a.tail) > 20 {
			a.tail = a.tail[1:]
		}
	}
	if size := len(text) + 1; a.cut > 0 || a.used+size > remote.DefaultMaxOutput {
		a.cut += size // as remote caps a command's output: no holes
		return
	}
	a.used += len(text) + 1
	a.q = append(a.q, chainLine{stderr: stderr, text: text})
}

// line routes one line of the chain's output (remote serialises the
// calls of both streams).
func (c *hostChain) line(stderr bool, l string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.poke()
	s, at := 0, c.outAt
	if stderr {
		s, at = 1, c.errAt
	}
	endTag := "relctl-act-end:" + c.nonce + " "
	if rest, ok := strings.CutPrefix(l, endTag); ok && at >= 0 && at < len(c.acts) {
		f := strings.Fields(rest)
		a := c.acts[at]
		switch {
		case stderr && len(f) == 1 && f[0] == string(a.action):
			c.held[s] = false
			a.errEnd = true
			c.errAt++
			return
		case !stderr && len(f) == 4 && f[0] == string(a.action):
			st, err1 := strconv.Atoi(f[1])
			ms, err2 := strconv.Atoi(f[2])
			if err1 == nil && err2 == nil {
				c.held[s] = false
				a.end = &chainEnd{status: st, took: time.Duration(ms) * time.Millisecond, timedOut: f[3] == "1"}
				return
			}
		}
	}
	if !stderr && c.outAt+1 < len(c.acts) && l == "relctl-act:"+c.nonce+" "+string(c.acts[c.outAt+1].action) {
		if c.held[s] {
			c.push(false, c.outAt, "")
			c.held[s] = false
		}
		c.outAt++
		return
	}
	if c.held[s] {
		c.push(stderr, at, "")
		c.held[s] = false
	}
	if l == "" {
		c.held[s] = true
		return
	}
	c.push(stderr, at, l)
}

// chainBound is the whole command's bound: every action's, each with its
// kill grace, and a margin for a loaded host.
func chainBound(acts []*chainAct, grace time.Duration) time.Duration {
	var d time.Duration
	for _, a := range acts {
		d += a.timeout + grace + time.Second
	}
	return d + 5*time.Second
}

// startChain builds and sends the chain that begins with action a, when
// the plan has at least two chainable actions from a on that run a
// command; it returns nil when a is to run alone.
func (r *hostRun) startChain(ctx context.Context, a plan.Action) (*hostChain, error) {
	e := r.e
	acts := e.plan.ActionsFor(r.step.Host)
	i := slices.Index(acts, a)
	if i < 0 {
		return nil, nil
	}
	var chain []*chainAct
	for _, x := range acts[i:] {
		if !chainable[x] {
			break
		}
		ca, err := r.chainStep(x)
		if err != nil {
			return nil, err
		}
		if ca != nil {
			chain = append(chain, ca)
		}
	}
	if len(chain) < 2 {
		return nil, nil
	}
	env, ok := chainEnv(chain)
	if !ok {
		return nil, nil
	}
	c := &hostChain{host: r.h.Name, nonce: newNonce(), acts: chain, done: make(chan struct{}), wake: make(chan struct{}, 1), outAt: -1}
	var b strings.Builder
	b.WriteString(healthLoopScript)
	b.WriteString(chainScript)
	fmt.Fprintf(&b, "relctl_grace=%d\n", int(healthKillGrace/time.Second))
	c.dir = chainDir(e.inv.HostPath(r.h), e.cfg.RunID, c.nonce)
	fmt.Fprintf(&b, "relctl_dir=%s\nrelctl_begin %s\n", shell.Quote(c.dir), c.nonce)
	for _, ca := range chain {
		fmt.Fprintf(&b, "relctl_act %s %s %s %s || exit $?\n", c.nonce, ca.action, ms(max(ca.timeout, time.Millisecond)), shell.Quote(ca.script))
	}
	cctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	cmd := remote.Command{Script: b.String(), Env: env, Timeout: chainBound(chain, healthKillGrace), MaxOutput: -1,
		Stdout: func(l string) { c.line(false, l) }, Stderr: func(l string) { c.line(true, l) }}
	go func() {
		_, err := e.hostsRun(cctx, r.h.Name, cmd)
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
		c.poke()
	}()
	return c, nil
}

// chainEnv is the environment the chain is sent with: the inventory's
// commands of a chain must all have the same (the RELCTL_* values, env:,
// secrets, and their become setting); otherwise (ok false) each action
// goes alone, as its own command with its own environment. relctl's own
// switch script gets the RELCTL_* values only: the other names are unset
// at its start (names only: values never appear in a script).
func chainEnv(chain []*chainAct) (map[string]string, bool) {
	var env map[string]string
	for _, ca := range chain {
		if ca.own || ca.env == nil {
			// A direct become command (fleet/become_direct.go) takes no
			// environment: sudo runs it with its own, whatever the chain's.
			continue
		}
		if env == nil {
			env = ca.env
		} else if !maps.Equal(env, ca.env) {
			return nil, false
		}
	}
	for _, ca := range chain {
		if !ca.own {
			continue
		}
		if env == nil {
			env = ca.env
		}
		var extra []string
		for k, v := range env {
			if w, ok := ca.env[k]; !ok {
				extra = append(extra, k)
			} else if w != v {
				return nil, false
			}
		}
		for k := range ca.env {
			if _, ok := env[k]; !ok {
				return nil, false
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			ca.script = "unset " + strings.Join(extra, " ") + "\n" + ca.script
		}
	}
	return env, true
}

// chainStep is what the host runs for action x of the chain (nil: x runs
// no command, as when the inventory has no such command).
func (r *hostRun) chainStep(x plan.Action) (*chainAct, error) {
	e := r.e
	render := func(name string) (string, map[string]string, error) {
		t := e.inv.HostTemplate(r.h, name)
		if t == nil {
			return "", nil, nil
		}
		s, err := t.Render(r.vals)
		if err != nil {
			return "", nil, fmt.Errorf("commands.%s: %w", name, err)
		}
		return e.commandEnv(name, s, r.vals)
	}
	ca := &chainAct{action: x}
	var err error
	switch x {
	case plan.ActionStop:
		ca.script, ca.env, err = render(fleet.CmdStop)
		ca.timeout = e.to.Stop
	case plan.ActionSwitch:
		own := r.vals
		own.EnvVars = nil
		ca.script, ca.env, ca.own, ca.timeout = switchScript(r.vals.Path, r.step.To), own.Env(), true, e.to.Switch
	case plan.ActionStart:
		ca.script, ca.env, err = render(fleet.CmdStart)
		ca.timeout = e.to.Start
	case plan.ActionHealth:
		loop, env, lerr := e.newHealthLoop(r, r.vals)
		if lerr != nil {
			return nil, lerr
		}
		ca.health, ca.script, ca.env, ca.timeout = &loop, loop.Script(), env, loop.bound()
	case plan.ActionVersion:
		ca.script, ca.env, err = render(fleet.CmdVersion)
		ca.timeout = e.to.Version
	}
	if err != nil || ca.script == "" {
		return nil, err
	}
	return ca, nil
}

// chained runs action a as part of the host's chain: it starts the chain
// when a is its first action, or waits for a's records in the chain
// already sent. It returns false when a is not in a chain and must run
// alone.
func (r *hostRun) chained(ctx context.Context, a plan.Action, onLine func(chainLine)) (*chainEnd, bool, error) {
	if err := r.ensureChain(ctx, a); err != nil {
		return nil, true, err
	}
	if r.chain == nil {
		return nil, false, nil
	}
	ca := r.chain.act(a)
	if ca == nil {
		return nil, false, nil
	}
	end, err := r.chain.wait(ca, onLine)
	return end, true, err
}

// wait hands on a's output as it arrives and returns its end. Past a's
// own bound (its timeout, the kill grace and a margin) without an end,
// the chain is stopped from here (remote kills its process group, whose
// trap kills a's): the host's watchdog did not act.
func (c *hostChain) wait(a *chainAct, onLine func(chainLine)) (*chainEnd, error) {
	backstop := time.NewTimer(a.timeout + 2*healthKillGrace + 5*time.Second)
	defer backstop.Stop()
	stopped, noted := false, false
	for {
		c.mu.Lock()
		q := a.q
		a.q = nil
		end, errEnd, cut := a.end, a.errEnd, a.cut
		var done bool
		select {
		case <-c.done:
			done = true
		default:
		}
		cerr := c.err
		c.mu.Unlock()
		for _, l := range q {
			onLine(l)
		}
		if cut > 0 && !noted && (end != nil && (errEnd || done) || done) {
			noted = true
			onLine(chainLine{text: fmt.Sprintf("… %d bytes of output cut", cut)})
		}
		switch {
		case end != nil && (errEnd || done):
			if end.status == 0 {
				return end, nil
			}
			return end, c.actErr(a, end)
		case done && stopped:
			return nil, fmt.Errorf("%s: %w after %s (the chain was stopped: %v)", c.host, remote.ErrTimeout, a.timeout, cerr)
		case done && cerr != nil:
			return nil, cerr
		case done:
			return nil, fmt.Errorf("%s: the host's command ended before %s reported its end", c.host, a.action)
		}
		select {
		case <-c.wake:
		case <-backstop.C:
			stopped = true
			c.cancel()
		}
	}
}

// actErr is a's reported failure as an error, as remote reports a command
// sent alone: a timeout wraps remote.ErrTimeout, a status an ExitError.
func (c *hostChain) actErr(a *chainAct, end *chainEnd) error {
	if end.timedOut {
		return fmt.Errorf("%s: %w after %s (its process group was killed on the host)", c.host, remote.ErrTimeout, a.timeout)
	}
	c.mu.Lock()
	tail := strings.Join(a.tail, "\n")
	c.mu.Unlock()
	// No signal is named: a shell's status cannot tell an action killed by
	// TERM from one that ran `exit 143`, and the host's watchdog (the one
	// signal relctl knows of) is reported above as a timeout.
	return &remote.ExitError{Host: c.host, Code: end.status, StderrTail: tail}
}

// close waits for the chain's command to end (it ends at once after an
// action fails), stopping it when it does not: the host's commands run
// one at a time, and compensation needs the shell.
func (c *hostChain) close() {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
		c.cancel()
		return
	case <-t.C:
	}
	c.cancel()
	<-c.done
}

// ensureChain sends the host's chain when a is the first chainable action
// the host reaches.
func (r *hostRun) ensureChain(ctx context.Context, a plan.Action) error {
	if r.chain != nil || r.chainTried || !chainable[a] {
		return nil
	}
	r.chainTried = true
	c, err := r.startChain(ctx, a)
	if err != nil {
		// A command that cannot be rendered fails in its own action, as
		// when it runs alone: nothing is sent as a chain.
		return nil
	}
	r.chain = c
	return nil
}

// forwardCmd runs action a's command through the chain, or alone (solo)
// when a is in none.
func (r *hostRun) forwardCmd(ctx context.Context, a plan.Action, solo func() error) error {
	if ok, err := r.chainedCmd(ctx, a); ok || err != nil {
		return err
	}
	return solo()
}

// chainedCmd runs action a's command through the chain, its output as
// step output; ok is false when a runs alone.
func (r *hostRun) chainedCmd(ctx context.Context, a plan.Action) (bool, error) {
	_, ok, err := r.chained(ctx, a, r.outputLine)
	return ok, err
}

func (r *hostRun) outputLine(l chainLine) {
	stream := "stdout"
	if l.stderr {
		stream = "stderr"
	}
	r.emit(event.Event{Type: event.StepOutput, Stream: stream, Line: l.text})
}

// chainedHealth is the health wait when it rides in the chain.
func (r *hostRun) chainedHealth(ctx context.Context) (string, bool, error) {
	var rd *healthReader
	var loop healthLoop
	var stderr []string
	if err := r.ensureChain(ctx, plan.ActionHealth); err != nil {
		return "", true, err
	}
	if r.chain != nil {
		if ca := r.chain.act(plan.ActionHealth); ca != nil {
			loop = *ca.health
			rd = &healthReader{nonce: loop.nonce, onCheck: func(c healthCheck) {
				r.emit(event.Event{Type: event.StepOutput, Stream: "check", Line: c.String()})
			}}
		}
	}
	start := time.Now()
	_, ok, err := r.chained(ctx, plan.ActionHealth, func(l chainLine) {
		if rd == nil {
			return
		}
		if l.stderr {
			stderr = append(stderr, l.text)
			return
		}
		rd.line(l.text)
	})
	if !ok || rd == nil {
		return "", false, err
	}
	msg, err := r.e.healthOutcome(ctx, r, loop, rd, stderr, err, time.Since(start))
	return msg, true, err
}

// chainedVersion is the version check when it rides in the chain: what
// the version command printed, judged as checkVersion judges it.
func (r *hostRun) chainedVersion(ctx context.Context) (string, bool, error) {
	var out []string
	_, ok, err := r.chained(ctx, plan.ActionVersion, func(l chainLine) {
		if l.stderr {
			r.outputLine(l)
			return
		}
		out = append(out, l.text)
	})
	if !ok || err != nil {
		return "", ok, err
	}
	got, err := validVersion(r.h.Name, observe.VersionLine(strings.Join(out, "\n")))
	if err != nil {
		return "", true, err
	}
	if got != r.vals.Version {
		return "", true, fmt.Errorf("runs %q, want %q", got, r.vals.Version)
	}
	return "runs " + got, true, nil
}

// endChain lets the host's chain end before anything else runs on the
// host (compensation, the next step).
func (r *hostRun) endChain() {
	if r.chain != nil {
		r.chain.close()
	}
}
