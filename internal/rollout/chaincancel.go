package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
)

// Stopping a chain relctl lost (the hole the header of chain.go names).
//
// A chain's start records go to relctl's session; when the connection is
// cut in a way sshd does not notice (a partition, a blackholing middlebox:
// the TCP socket stays open and writes land in buffers), those writes
// succeed and the host goes on to switch and start while relctl, on a new
// connection, compensates. So every chain leaves a trace on the host, in
// chainDir:
//
//	pid     "<pid> <nonce> <start time>": the chain's shell (its process group)
//	        and its start time from /proc (empty without one)
//	log     one line per record: start <action> <timeout ms>,
//	        pid <action> <pgid>, end <action> <status> <ms> <timed out>,
//	        cancelled <action> (the marker was there: it never started)
//	cancel  the marker: present, the chain starts no further action
//
// The chain checks the marker after its start record and before the
// action's log line: an action either is in the log as started or never
// starts. Before relctl compensates a host whose chain session it lost,
// its first command there (chainStopScript, on a new session) sets the
// marker of every chain of the run on that host, waits for each still
// alive to exit (bounded by its in-flight action's timeout and the kill
// grace: the host's watchdog ends the action by then), kills its process
// group and its action's if it outlives that, and prints the log of
// relctl's own chain. Compensation then unwinds exactly the actions the
// log says started (the one in flight counts as started). A chain that
// never reached the host before the marker was set finds it when it
// arrives, and starts nothing.

// chainDir is where the chain with nonce leaves its trace on the host:
// path/.relctl/chains/<run>/<nonce>.
func chainDir(base, runID, nonce string) string {
	return chainRunDir(base, runID) + "/" + nonce
}

func chainRunDir(base, runID string) string {
	key := strings.NewReplacer("/", "_", "@", "_").Replace(runID)
	if key == "" || key == "." || key == ".." {
		key = "_" + key
	}
	return strings.TrimRight(base, "/") + "/.relctl/chains/" + key
}

// chainStopScript stops every chain of the run under run (a chainDir's
// parent) and prints the state of each ("chain <nonce> ended|killed"),
// then relctl's own chain's (me) log between log-begin and log-end.
// grace is the host watchdog's kill grace in seconds.
func chainStopScript(run, me string, grace int) string {
	// A pid is the chain's only while its start time (/proc, where there
	// is one) is the one the chain recorded: a chain that ended long ago
	// may have left its pid to an unrelated process, which must not be
	// waited for, let alone killed.
	return fmt.Sprintf(`relctl_alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
	[ -z "$2" ] || [ "$(cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null)" = "$2" ]
}
run=%s; me=%s; grace=%d
mkdir -p "$run/$me" && : >"$run/$me/cancel" || { echo "cannot write the cancel marker in $run/$me" >&2; exit 2; }
for d in "$run"/*; do
	[ -d "$d" ] && : >"$d/cancel"
done
for d in "$run"/*; do
	[ -f "$d/pid" ] || continue
	p=; s=; read -r p x s <"$d/pid" || :
	st=ended
	if relctl_alive "$p" "$s"; then
		a=; t=0; ap=
		while read -r k x y z; do
			case "$k" in start) a=$x; t=$y ;; pid) ap=$y ;; end) a= ;; esac
		done <"$d/log"
		[ -n "$a" ] || t=0
		case "$t" in ''|*[!0-9]*) t=0 ;; esac
		n=$(( (t + 999) / 1000 * 10 + grace * 10 + 20 ))
		i=0
		while relctl_alive "$p" "$s" && [ "$i" -lt "$n" ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i + 1)); done
		if relctl_alive "$p" "$s"; then
			st=killed
			kill -s KILL -- "-$p" 2>/dev/null || kill -s KILL "$p" 2>/dev/null
			if [ -n "$ap" ]; then kill -s KILL -- "-$ap" 2>/dev/null || kill -s KILL "$ap" 2>/dev/null; fi
			i=0
			while relctl_alive "$p" "$s" && [ "$i" -lt 50 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i + 1)); done
			relctl_alive "$p" "$s" && st=alive
		fi
	fi
	echo "chain ${d##*/} $st"
done
echo log-begin
cat "$run/$me/log" 2>/dev/null
echo log-end
`, shell.Quote(run), shell.Quote(me), grace)
}

// chainTrace is what a stopped chain's log says.
type chainTrace struct {
	state   string                 // ended, killed, alive, or "" (it never began on the host)
	started []plan.Action          // in order
	ended   map[plan.Action]string // action → "status <n>[, timed out]"
	skipped []plan.Action          // found the marker: never started
}

func parseChainStop(out, nonce string) (chainTrace, error) {
	tr := chainTrace{ended: map[plan.Action]string{}}
	in, seen := false, false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case l == "log-begin":
			in, seen = true, true
		case l == "log-end":
			in = false
		case !in && len(f) == 3 && f[0] == "chain" && f[1] == nonce:
			tr.state = f[2]
		case in && len(f) == 3 && f[0] == "start":
			tr.started = append(tr.started, plan.Action(f[1]))
		case in && len(f) == 5 && f[0] == "end":
			st := "status " + f[2]
			if f[4] == "1" {
				st += ", timed out"
			}
			tr.ended[plan.Action(f[1])] = st
		case in && len(f) == 2 && f[0] == "cancelled":
			tr.skipped = append(tr.skipped, plan.Action(f[1]))
		}
	}
	if !seen {
		return tr, errors.New("no log in the answer")
	}
	return tr, nil
}

// lost reports whether the chain's command ended without the host
// reporting how (the connection or session died, its read timed out, it
// was stopped from here): the chain may still be running on the host.
func (c *hostChain) lost() bool {
	select {
	case <-c.done:
	default:
		return true
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	var ee *remote.ExitError
	return err != nil && !errors.As(err, &ee)
}

// settleChain, after the host's step failed with its chain's session
// lost, stops the chain on the host and returns the actions compensation
// unwinds: undo (what relctl saw start) with the chain's own actions
// replaced by exactly those its log says started. When the host cannot be
// reached, undo is returned as it is (compensation then meets the same
// host, and names it).
func (r *hostRun) settleChain(undo []plan.Action) []plan.Action {
	c := r.chain
	if c == nil || c.dir == "" || !c.lost() {
		return undo
	}
	e := r.e
	var bound time.Duration
	for _, a := range c.acts {
		bound = max(bound, a.timeout)
	}
	bound += healthKillGrace + 2*time.Second // the host's own wait, as the script counts it
	run := chainRunDir(e.inv.HostPath(r.h), e.cfg.RunID)
	ctx, cancel := e.graceCtx()
	defer cancel()
	out, err := e.output(ctx, r.h.Name, chainStopScript(run, c.nonce, int(healthKillGrace/time.Second)), bound+5*time.Second+10*time.Second)
	var tr chainTrace
	if err == nil {
		tr, err = parseChainStop(out, c.nonce)
	}
	if err != nil {
		r.warn(fmt.Sprintf("the chain's session was lost and the chain could not be stopped on the host (%v): undoing what relctl saw start", err))
		return undo
	}
	if tr.state == "alive" {
		r.warn("the chain's session was lost and its process group outlived a KILL on the host: undoing every action it carries")
		for _, a := range c.acts {
			tr.started = append(tr.started, a.action)
		}
	}
	inChain := func(a plan.Action) bool { return c.act(a) != nil }
	var next []plan.Action
	for _, a := range e.plan.ActionsFor(r.step.Host) {
		if inChain(a) && slices.Contains(tr.started, a) || !inChain(a) && slices.Contains(undo, a) {
			next = append(next, a)
		}
	}
	var said []string
	for _, a := range tr.started {
		if st, ok := tr.ended[a]; ok {
			said = append(said, fmt.Sprintf("%s ended (%s)", a, st))
		} else {
			said = append(said, fmt.Sprintf("%s started, never ended", a))
		}
	}
	for _, a := range tr.skipped {
		said = append(said, fmt.Sprintf("%s not started (cancelled)", a))
	}
	if len(said) == 0 {
		said = append(said, "no action started")
	}
	how := map[string]string{"ended": "it had ended", "killed": "it outlived its action's bound and was killed", "": "it never began there"}[tr.state]
	r.warn(fmt.Sprintf("the chain's session was lost: stopped the chain on the host (%s); its log: %s", orText(how, tr.state), strings.Join(said, ", ")))
	return next
}
