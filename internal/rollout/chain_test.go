package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/view"
)

// countingHosts counts the commands (round trips through the persistent
// shell) sent to each host, in one log with the run's events, so that a
// test can tell which commands a host's deploy sent.
type countingHosts struct {
	Hosts
	mu  sync.Mutex
	log []string // "run web2", "web2 started stop", "web2 done version", ...
}

func (c *countingHosts) Run(ctx context.Context, host string, cmd remote.Command) (remote.Result, error) {
	c.mu.Lock()
	c.log = append(c.log, "run "+host)
	c.mu.Unlock()
	return c.Hosts.Run(ctx, host, cmd)
}

func (c *countingHosts) sink(e event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e.Type {
	case event.ActionStarted:
		c.log = append(c.log, fmt.Sprintf("%s started %s", e.Host, e.Action))
	case event.ActionDone:
		c.log = append(c.log, fmt.Sprintf("%s done %s", e.Host, e.Action))
	}
}

// counts returns, for host, the commands of the whole run and those sent
// between the start of its stop and the end of its version check.
func (c *countingHosts) counts(host string) (all, deploy int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := false
	for _, l := range c.log {
		switch l {
		case host + " started stop":
			in = true
		case host + " done version":
			in = false
		case "run " + host:
			all++
			if in {
				deploy++
			}
		}
	}
	return all, deploy
}

// Over the real transport, a host's stop, switch, start, health wait and
// version check are one command: one round trip on the deploy's critical
// path, where a WAN charges for each.
func TestForwardPathRoundTripsRealSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("real transport")
	}
	root, hosts, inv, conn := startRealFleet(t, 3)
	ch := &countingHosts{Hosts: conn}
	bal := newFake(t, []string{"web1", "web2", "web3"}, "1.0.0")
	p, err := plan.Build(inv, plan.Assume(inv, "1.0.0"), plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(root, "shop-1.1.0.tar.gz")
	data, _ := os.ReadFile(art)
	sum := sha256.Sum256(data)
	bus := event.NewBus("r", nil, event.SinkFunc(ch.sink))
	res := New(Config{Inventory: inv, Plan: p, Hosts: ch, Balancer: bal, Bus: bus, RunID: "r", Owner: "o",
		Artifacts: map[string]Artifact{"1.1.0": {Path: art, SHA256: hex.EncodeToString(sum[:])}}}).Run(context.Background())
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	var report []string
	for _, h := range hosts {
		all, deploy := ch.counts(h.name)
		report = append(report, fmt.Sprintf("%s: %d commands in the run, %d from stop to version", h.name, all, deploy))
		if deploy != 1 {
			t.Errorf("%s: %d commands from stop to version, want 1", h.name, deploy)
		}
		if v := readCurrent(t, h.dir); v != "1.1.0" {
			t.Errorf("%s runs %s", h.name, v)
		}
	}
	t.Logf("round trips per host:\n%s", strings.Join(report, "\n"))
}

// chain plays the host side of a forward chain (chain.go) as its shell
// text does: each action runs as the fleet runs any command, bounded by
// its own timeout, framed by its records; the first that fails ends the
// chain, and a lost connection (or a killed process) ends the whole
// command so.
func (f *fakeFleet) chain(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	out := func(l string) {
		if c.Stdout != nil {
			c.Stdout(l)
		}
	}
	errOut := func(l string) {
		if c.Stderr != nil {
			c.Stderr(l)
		}
	}
	trace := func(format string, args ...any) {}
	if m := beginRe.FindStringSubmatch(c.Script); m != nil {
		trace = func(format string, args ...any) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.chainLogs == nil {
				f.chainLogs = map[string][]string{}
			}
			f.chainLogs[m[1]] = append(f.chainLogs[m[1]], fmt.Sprintf(format, args...))
		}
	}
	for _, l := range strings.Split(c.Script, "\nrelctl_act ")[1:] {
		w := shellWords(l, 4)
		if len(w) != 4 {
			f.t.Errorf("chain on %s: bad action line %q", host, l)
			return remote.Result{ExitCode: 127}, &remote.ExitError{Host: host, Code: 127}
		}
		nonce, action, script := w[0], w[1], w[3]
		n, _ := strconv.Atoi(w[2])
		out("relctl-act:" + nonce + " " + action)
		trace("start %s %d", action, n)
		env := c.Env
		if rest, ok := strings.CutPrefix(script, "unset "); ok {
			// relctl's own script: the names it unsets are not its env.
			names, body, _ := strings.Cut(rest, "\n")
			env = maps.Clone(c.Env)
			for _, k := range strings.Fields(names) {
				delete(env, k)
			}
			script = body
		}
		t0 := time.Now()
		_, err := f.Run(ctx, host, remote.Command{Script: script, Env: env, Timeout: time.Duration(n) * time.Millisecond, Stdout: out, Stderr: errOut})
		st, tmo := 0, 0
		var ee *remote.ExitError
		switch {
		case err == nil:
		case errors.Is(err, remote.ErrTimeout):
			st, tmo = 143, 1
		case errors.Is(err, remote.ErrConnectionLost), ctx.Err() != nil, err.Error() == "killed":
			return remote.Result{ExitCode: -1}, err
		case errors.As(err, &ee):
			st = ee.Code
			if ee.StderrTail != "" {
				errOut(ee.StderrTail)
			}
		default:
			st = 1
			errOut(err.Error())
		}
		trace("end %s %d %d %d", action, st, time.Since(t0).Milliseconds(), tmo)
		errOut("relctl-act-end:" + nonce + " " + action)
		out(fmt.Sprintf("relctl-act-end:%s %s %d %d %d", nonce, action, st, time.Since(t0).Milliseconds(), tmo))
		if st != 0 {
			return remote.Result{ExitCode: st}, &remote.ExitError{Host: host, Code: st}
		}
	}
	return remote.Result{}, nil
}

// chainStop answers chainStopScript as a host does once the fake's
// chain has ended (it ends with the connection): the chain's log.
func (f *fakeFleet) chainStop(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	m := stopMeRe.FindStringSubmatch(c.Script)
	if m == nil {
		f.t.Errorf("chain stop on %s without its values: %q", host, c.Script)
		return remote.Result{ExitCode: 127}, &remote.ExitError{Host: host, Code: 127}
	}
	if err := f.rec(ctx, c.Timeout, host+" chain-stop"); err != nil {
		return remote.Result{ExitCode: -1}, err
	}
	me := strings.Trim(m[1], "'")
	f.mu.Lock()
	log, ok := f.chainLogs[me]
	log = slices.Clone(log)
	f.mu.Unlock()
	lines := []string{"log-begin"}
	if ok {
		lines = append([]string{"chain " + me + " ended"}, lines...)
	}
	lines = append(append(lines, log...), "log-end")
	for _, l := range lines {
		if c.Stdout != nil {
			c.Stdout(l)
		}
	}
	return remote.Result{}, nil
}

// shellWords reads the first n words of s as sh does for the quoting
// shell.Quote produces (bare words, '…' and \x), across newlines.
func shellWords(s string, n int) []string {
	var words []string
	var w strings.Builder
	in := false
	for i := 0; i < len(s) && len(words) < n; i++ {
		ch := s[i]
		switch {
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case ch == '\\' && i+1 < len(s):
			w.WriteByte(s[i+1])
			i++
			in = true
		case ch == ' ' || ch == '\n' || ch == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(ch)
			in = true
		}
	}
	if in && len(words) < n {
		words = append(words, w.String())
	}
	return words
}

// The chain's records split its output into actions exactly: an output
// line without a newline ends before the record, an empty last line is
// kept, a record with another nonce is output, and each stream has its
// own position.
func TestChainRecordsSplitOutput(t *testing.T) {
	c := &hostChain{host: "web1", nonce: "n1", wake: make(chan struct{}, 1), done: make(chan struct{}), outAt: -1,
		acts: []*chainAct{{action: plan.ActionStop, timeout: time.Second}, {action: plan.ActionSwitch, timeout: time.Second}}}
	for _, l := range []struct {
		stderr bool
		text   string
	}{
		{false, "relctl-act:n1 stop"},
		{false, "stopping"},
		{true, "warn 1"},
		{false, "relctl-act-end:n0 stop 0 1 0"}, // another nonce: output
		{false, ""},                             // a real empty line: kept
		{false, ""},                             // the record's newline: dropped
		{false, "relctl-act-end:n1 stop 0 12 0"},
		{true, "no newline"},
		{true, "relctl-act-end:n1 stop"},
		{false, "relctl-act:n1 switch"},
		{true, "boom"},
		{false, "relctl-act-end:n1 switch 4 3 0"},
		{true, ""},
		{true, "relctl-act-end:n1 switch"},
	} {
		c.line(l.stderr, l.text)
	}
	var got []string
	collect := func(l chainLine) { got = append(got, fmt.Sprintf("%v:%s", l.stderr, l.text)) }
	end, err := c.wait(c.acts[0], collect)
	if err != nil || end.status != 0 || end.took != 12*time.Millisecond {
		t.Fatalf("stop: %+v, %v", end, err)
	}
	want := []string{"false:stopping", "true:warn 1", "false:relctl-act-end:n0 stop 0 1 0", "false:", "true:no newline"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("stop's output %q, want %q", got, want)
	}
	got = nil
	_, err = c.wait(c.acts[1], collect)
	var ee *remote.ExitError
	if !errors.As(err, &ee) || ee.Code != 4 || !strings.Contains(err.Error(), "exit status 4: boom") {
		t.Errorf("switch: %v", err)
	}
	if strings.Join(got, "|") != "true:boom" {
		t.Errorf("switch's output %q", got)
	}
}

// An action that reports no end within its bound stops the chain, and
// fails as a timeout.
func TestChainBackstop(t *testing.T) {
	c := &hostChain{host: "web1", nonce: "n1", wake: make(chan struct{}, 1), done: make(chan struct{}), outAt: -1,
		acts: []*chainAct{{action: plan.ActionStop, timeout: time.Millisecond}}}
	c.cancel = func() {
		c.mu.Lock()
		c.err = errors.New("command stopped: context canceled")
		c.mu.Unlock()
		select {
		case <-c.done:
		default:
			close(c.done)
		}
		c.poke()
	}
	c.line(false, "relctl-act:n1 stop")
	_, err := c.wait(c.acts[0], func(chainLine) {})
	if !errors.Is(err, remote.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
}

// The chain goes out with one environment: the inventory's commands must
// share it, and relctl's own switch script unsets what is not its own.
func TestChainEnv(t *testing.T) {
	own := map[string]string{"RELCTL_VERSION": "1.1.0"}
	cmds := map[string]string{"RELCTL_VERSION": "1.1.0", "DB_URL": "secret"}
	mk := func() []*chainAct {
		return []*chainAct{
			{action: plan.ActionStop, env: cmds},
			{action: plan.ActionSwitch, env: own, own: true, script: "ln -sfn a b"},
			{action: plan.ActionStart, env: cmds},
		}
	}
	chain := mk()
	env, ok := chainEnv(chain)
	if !ok || !maps.Equal(env, cmds) {
		t.Fatalf("env %v, ok %v", env, ok)
	}
	if chain[1].script != "unset DB_URL\nln -sfn a b" {
		t.Errorf("switch script %q", chain[1].script)
	}
	// A command with another environment (its own become, say): no chain.
	chain = mk()
	chain[2].env = map[string]string{"RELCTL_VERSION": "1.1.0", "DB_URL": "secret", "RELCTL_BECOME": "x"}
	if _, ok := chainEnv(chain); ok {
		t.Error("chained commands with different environments")
	}
	// A direct become command (no environment) chains with any.
	chain = mk()
	chain[0].env, chain[0].script = nil, "exec sudo -n -u root -- /usr/bin/systemctl stop shop"
	if env, ok := chainEnv(chain); !ok || !maps.Equal(env, cmds) || chain[0].script != "exec sudo -n -u root -- /usr/bin/systemctl stop shop" {
		t.Errorf("a direct become command broke the chain: env %v, ok %v, script %q", env, ok, chain[0].script)
	}
	// The switch's own value differing from the commands': no chain.
	chain = mk()
	chain[1].env = map[string]string{"RELCTL_VERSION": "1.0.0"}
	if _, ok := chainEnv(chain); ok {
		t.Error("chained a switch whose RELCTL_* values differ")
	}
}

// darkFleet is the fake fleet with a partition: the session that carries
// a host's chain goes dark when the action darkOn ("web2 stop") starts.
// relctl's call fails with the connection lost, while the host side goes
// on as sshd would when it never noticed: every action after it runs
// unless the chain finds its cancel marker first. It keeps each chain's
// host-side trace (chain.go's log) and answers chainStopScript as the
// host does.
type darkFleet struct {
	*fakeFleet
	darkOn string
	// hold, when set, runs on the host side before each action (after its
	// start is logged) and may block; ctx ends when the chain is killed.
	hold func(ctx context.Context, action string, c *darkChain)
	// late: the stop command waits for the chain to end by itself before
	// it sets the marker (the cancel arrives after the chain ran on).
	late bool
	// until: the stop command lands once the chain has logged the start
	// of this action.
	until string
	// unreachable: every command to the host after the partition fails.
	unreachable bool
	// bound is how long the stop command waits for a live chain before it
	// kills it (the host's in-flight bound, short here).
	bound time.Duration

	mu     sync.Mutex
	chains map[string]*darkChain // nonce →
	marked map[string]bool       // nonce → cancel marker set
	stops  int                   // stop commands answered
	dark   bool
}

type darkChain struct {
	host   string
	nonce  string
	log    []string
	cancel bool
	done   chan struct{}
	kill   context.CancelFunc
}

func newDark(f *fakeFleet, darkOn string) *darkFleet {
	return &darkFleet{fakeFleet: f, darkOn: darkOn, bound: 2 * time.Second, chains: map[string]*darkChain{}, marked: map[string]bool{}}
}

var beginRe = regexp.MustCompile(`(?m)^relctl_begin (\S+)$`)
var stopMeRe = regexp.MustCompile(`(?m)^run=\S+; me=(\S+); grace=`)

func (d *darkFleet) Run(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	d.mu.Lock()
	gone := d.unreachable && d.dark && host == strings.Fields(d.darkOn)[0]
	d.mu.Unlock()
	if gone {
		return remote.Result{ExitCode: -1}, fmt.Errorf("%s: dial: %w (no route to host)", host, remote.ErrConnectionLost)
	}
	switch {
	case strings.Contains(c.Script, "\nrelctl_act "):
		return d.chain(ctx, host, c)
	case strings.Contains(c.Script, "relctl_alive()"):
		return d.stopChains(host, c)
	}
	return d.fakeFleet.Run(ctx, host, c)
}

func (d *darkFleet) logf(dc *darkChain, format string, args ...any) {
	d.mu.Lock()
	dc.log = append(dc.log, fmt.Sprintf(format, args...))
	d.mu.Unlock()
}

func (d *darkFleet) chain(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	m := beginRe.FindStringSubmatch(c.Script)
	if m == nil {
		d.t.Errorf("chain on %s without relctl_begin: %q", host, c.Script)
		return remote.Result{ExitCode: 127}, &remote.ExitError{Host: host, Code: 127}
	}
	hctx, kill := context.WithCancel(context.Background())
	dc := &darkChain{host: host, nonce: m[1], done: make(chan struct{}), kill: kill}
	var dark atomic.Bool
	lost := make(chan struct{})
	// darkOn "HOST begin": the partition comes before the chain reaches
	// the host, which gets it only after relctl's stop command.
	late := d.darkOn == host+" begin"
	if late {
		dark.Store(true)
		d.mu.Lock()
		d.dark = true
		d.mu.Unlock()
		close(lost)
	} else {
		d.mu.Lock()
		d.chains[dc.nonce] = dc
		d.mu.Unlock()
	}
	stopRelay := context.AfterFunc(ctx, func() {
		if !dark.Load() {
			kill() // relctl stops the chain while its session is up
		}
	})
	defer stopRelay()
	relay := c
	relay.Stdout = func(l string) {
		if !dark.Load() && c.Stdout != nil {
			c.Stdout(l)
		}
	}
	relay.Stderr = func(l string) {
		if !dark.Load() && c.Stderr != nil {
			c.Stderr(l)
		}
	}
	// Each action of the chain through the fake fleet's own chain, one at
	// a time, with the host side's marker check and log around it.
	var res remote.Result
	var err error
	go func() {
		defer close(dc.done)
		defer kill()
		for deadline := time.Now().Add(10 * time.Second); late && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			d.mu.Lock()
			marked := d.marked[dc.nonce]
			d.mu.Unlock()
			if marked {
				break
			}
		}
		if late {
			d.mu.Lock()
			d.chains[dc.nonce] = dc
			d.mu.Unlock()
		}
		for _, l := range strings.Split(c.Script, "\nrelctl_act ")[1:] {
			w := shellWords(l, 4)
			action := w[1]
			d.mu.Lock()
			cancelled := d.marked[dc.nonce]
			d.mu.Unlock()
			if cancelled {
				d.logf(dc, "cancelled %s", action)
				res, err = remote.Result{ExitCode: 125}, &remote.ExitError{Host: host, Code: 125}
				return
			}
			d.logf(dc, "start %s %s", action, w[2])
			if host+" "+action == d.darkOn && !dark.Load() {
				dark.Store(true)
				d.mu.Lock()
				d.dark = true
				d.mu.Unlock()
				close(lost)
			}
			if d.hold != nil {
				d.hold(hctx, action, dc)
			}
			if hctx.Err() != nil {
				return // killed in flight: no end record
			}
			one := relay
			one.Script = "relctl_begin " + dc.nonce + "\nrelctl_act " + l
			t0 := time.Now()
			var r remote.Result
			r, err = d.fakeFleet.chain(hctx, host, one)
			res = r
			st := 0
			var ee *remote.ExitError
			switch {
			case err == nil:
			case errors.As(err, &ee):
				st = ee.Code
			default:
				st = 137 // killed
			}
			d.logf(dc, "end %s %d %d 0", action, st, time.Since(t0).Milliseconds())
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-dc.done:
		if !dark.Load() {
			return res, err
		}
	case <-lost:
	}
	return remote.Result{ExitCode: -1}, fmt.Errorf("%s: run: %w (no answer to 4 keepalives in a row)", host, remote.ErrConnectionLost)
}

// stopChains answers chainStopScript as the host does.
func (d *darkFleet) stopChains(host string, c remote.Command) (remote.Result, error) {
	m := stopMeRe.FindStringSubmatch(c.Script)
	if m == nil {
		d.t.Errorf("stop script on %s without its values: %q", host, c.Script)
		return remote.Result{ExitCode: 127}, &remote.ExitError{Host: host, Code: 127}
	}
	me := strings.Trim(m[1], "'")
	d.mu.Lock()
	d.stops++
	var mine []*darkChain
	for _, dc := range d.chains {
		if dc.host == host {
			mine = append(mine, dc)
		}
	}
	d.mu.Unlock()
	if d.late {
		for _, dc := range mine {
			<-dc.done
		}
	}
	for deadline := time.Now().Add(10 * time.Second); d.until != "" && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		d.mu.Lock()
		in := false
		for _, dc := range mine {
			in = in || slices.ContainsFunc(dc.log, func(l string) bool { return strings.HasPrefix(l, "start "+d.until+" ") })
		}
		d.mu.Unlock()
		if in {
			break
		}
	}
	d.mu.Lock()
	d.marked[me] = true
	for _, dc := range mine {
		d.marked[dc.nonce] = true
	}
	d.mu.Unlock()
	var out []string
	for _, dc := range mine {
		st := "ended"
		select {
		case <-dc.done:
		case <-time.After(d.bound):
			st = "killed"
			dc.kill()
			<-dc.done
		}
		out = append(out, fmt.Sprintf("chain %s %s", dc.nonce, st))
	}
	out = append(out, "log-begin")
	d.mu.Lock()
	if dc := d.chains[me]; dc != nil {
		out = append(out, dc.log...)
	}
	d.mu.Unlock()
	out = append(out, "log-end")
	for _, l := range out {
		if c.Stdout != nil {
			c.Stdout(l)
		}
	}
	return remote.Result{}, nil
}

// runDark runs h's plan to to with d as the hosts.
func (h *harness) runDark(t *testing.T, d *darkFleet) Result {
	t.Helper()
	obs := plan.Observed{}
	for _, name := range []string{"web1", "web2", "web3"} {
		obs.Hosts = append(obs.Hosts, plan.HostState{Name: name, Version: h.fake.current[name], Reachable: true})
	}
	p, err := plan.Build(h.inv, obs, plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus("run1", nil, event.SinkFunc(func(e event.Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}))
	done := make(chan Result, 1)
	go func() {
		done <- New(Config{Inventory: h.inv, Plan: p, Hosts: d, Balancer: h.fake, Bus: bus, RunID: "run1", Owner: "me@here",
			Artifacts: map[string]Artifact{"1.1.0": {Path: "/dist/shop-1.1.0.tar.gz", SHA256: "abc"}}}).Run(context.Background())
	}()
	select {
	case res := <-done:
		return res
	case <-time.After(60 * time.Second):
		t.Fatal("the run never ended")
		return Result{}
	}
}

// darkLog is web2's chain log, as the stop command read it.
func (d *darkFleet) darkLog(t *testing.T) []string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dc := range d.chains {
		if dc.host == "web2" {
			return slices.Clone(dc.log)
		}
	}
	t.Fatal("web2 never got a chain")
	return nil
}

func darkCase(t *testing.T, prep func(d *darkFleet)) (*harness, *darkFleet, Result) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false, on_failure: rollback}")
	d := newDark(h.fake, "web2 stop")
	if prep != nil {
		prep(d)
	}
	return h, d, h.runDark(t, d)
}

func (h *harness) checkInService(t *testing.T, v string) {
	t.Helper()
	for _, host := range []string{"web1", "web2", "web3"} {
		if h.fake.current[host] != v || !h.fake.up[host] {
			t.Errorf("%s: on %s, in rotation %v; want in service on %s", host, h.fake.current[host], h.fake.up[host], v)
		}
	}
}

func count(log []string, s string) int {
	n := 0
	for _, l := range log {
		if l == s {
			n++
		}
	}
	return n
}

// The cancel lands while web2's stop runs on the far side of the
// partition: switch never starts, compensation undoes stop and drain
// only, every host ends in service on 1.0.0, and the run exits 3.
func TestChainLostCancelDuringStop(t *testing.T) {
	h, d, res := darkCase(t, func(d *darkFleet) {
		d.hold = func(ctx context.Context, action string, c *darkChain) {
			if c.host != "web2" || action != "stop" {
				return
			}
			for ctx.Err() == nil {
				d.mu.Lock()
				marked := d.marked[c.nonce]
				d.mu.Unlock()
				if marked {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
	if log := d.darkLog(t); len(log) != 3 || !strings.HasPrefix(log[0], "start stop ") || !strings.HasPrefix(log[1], "end stop 0 ") || log[2] != "cancelled switch" {
		t.Errorf("web2's chain log %q", log)
	}
	w2 := h.hostLog("web2")
	if slices.Contains(w2, "switch 1.1.0") || count(w2, "stop") != 1 {
		t.Errorf("web2 ran %q: switched after the cancel, or stopped twice", w2)
	}
	if got, want := h.actionsDone("web2"), []string{"drain:ok", "wait-idle:ok", "stop:failed", "undo-stop:ok", "undo-drain:ok"}; !slices.Equal(got, want) {
		t.Errorf("web2's actions %v, want %v", got, want)
	}
	h.checkInService(t, "1.0.0")
	if code, lines := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary}); code != view.ExitRolledBack {
		t.Errorf("exit %d, want %d: %v\n%s", code, view.ExitRolledBack, res.Err, strings.Join(lines, "\n"))
	}
	if d.stops != 1 {
		t.Errorf("%d stop commands, want 1", d.stops)
	}
}

// The host runs the whole chain before the cancel lands: compensation
// undoes start, switch, stop and drain, each exactly once, in reverse.
func TestChainLostRanOn(t *testing.T) {
	h, d, res := darkCase(t, func(d *darkFleet) { d.late = true })
	log := d.darkLog(t)
	for _, a := range []string{"stop", "switch", "start", "health"} {
		if !slices.ContainsFunc(log, func(l string) bool { return strings.HasPrefix(l, "end "+a+" 0 ") }) {
			t.Errorf("web2's chain log %q: no end of %s", log, a)
		}
	}
	if got, want := h.actionsDone("web2"), []string{"drain:ok", "wait-idle:ok", "stop:failed", "undo-start:ok", "undo-switch:ok", "undo-stop:ok", "undo-drain:ok"}; !slices.Equal(got, want) {
		t.Errorf("web2's actions %v, want %v", got, want)
	}
	w2 := h.hostLog("web2")
	for s, n := range map[string]int{"switch 1.1.0": 1, "switch 1.0.0": 1, "start": 2, "stop": 2} {
		if count(w2, s) != n {
			t.Errorf("web2 ran %q: %q %d times, want %d", w2, s, count(w2, s), n)
		}
	}
	if i, j := index(w2, "switch 1.1.0"), index(w2, "switch 1.0.0"); i > j {
		t.Errorf("web2 ran %q: switched back before it switched", w2)
	}
	h.checkInService(t, "1.0.0")
	if code, _ := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary}); code != view.ExitRolledBack {
		t.Errorf("exit %d, want %d: %v", code, view.ExitRolledBack, res.Err)
	}
	var warned bool
	for _, e := range h.eventsOf(event.Warning) {
		warned = warned || e.Host == "web2" && strings.Contains(e.Message, "switch ended (status 0)") && strings.Contains(e.Message, "it had ended")
	}
	if !warned {
		t.Error("no warning names what the lost chain did")
	}
}

// The chain outlives its in-flight action's bound (its switch never
// ends): the stop command kills it; the switch counts as started and is
// undone with stop and drain.
func TestChainLostKilled(t *testing.T) {
	h, d, res := darkCase(t, func(d *darkFleet) {
		d.bound = 100 * time.Millisecond
		d.until = "switch"
		d.hold = func(ctx context.Context, action string, c *darkChain) {
			if c.host == "web2" && action == "switch" {
				<-ctx.Done()
			}
		}
	})
	log := d.darkLog(t)
	if !strings.HasPrefix(log[len(log)-1], "start switch ") {
		t.Errorf("web2's chain log %q: want the switch started, never ended", log)
	}
	if got, want := h.actionsDone("web2"), []string{"drain:ok", "wait-idle:ok", "stop:failed", "undo-switch:ok", "undo-stop:ok", "undo-drain:ok"}; !slices.Equal(got, want) {
		t.Errorf("web2's actions %v, want %v", got, want)
	}
	h.checkInService(t, "1.0.0")
	if code, _ := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary}); code != view.ExitRolledBack {
		t.Errorf("exit %d, want %d: %v", code, view.ExitRolledBack, res.Err)
	}
	var warned bool
	for _, e := range h.eventsOf(event.Warning) {
		warned = warned || e.Host == "web2" && strings.Contains(e.Message, "was killed") && strings.Contains(e.Message, "switch started, never ended")
	}
	if !warned {
		t.Error("no warning says the chain was killed mid-switch")
	}
}

// The host cannot be reached after the partition: the chain cannot be
// stopped, relctl says so, and the host is named LEFT DRAINED as before
// (exit 6); the other hosts end in service on 1.0.0.
func TestChainLostUnreachable(t *testing.T) {
	h, d, res := darkCase(t, func(d *darkFleet) { d.unreachable = true })
	if d.stops != 0 {
		t.Errorf("a stop command reached the unreachable host")
	}
	if _, ok := res.Summary.LeftDrained["web2"]; !ok {
		t.Errorf("web2 not named LEFT DRAINED: %+v", res.Summary)
	}
	if code, _ := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary}); code != view.ExitPaused {
		t.Errorf("exit %d, want %d: %v", code, view.ExitPaused, res.Err)
	}
	var warned bool
	for _, e := range h.eventsOf(event.Warning) {
		warned = warned || e.Host == "web2" && strings.Contains(e.Message, "could not be stopped on the host")
	}
	if !warned {
		t.Error("no warning says the chain could not be stopped")
	}
	for _, host := range []string{"web1", "web3"} {
		if h.fake.current[host] != "1.0.0" || !h.fake.up[host] {
			t.Errorf("%s: on %s, in rotation %v", host, h.fake.current[host], h.fake.up[host])
		}
	}
}

// The partition comes before the chain reached web2, which gets it only
// after relctl's stop command set the marker: the chain starts nothing,
// compensation undoes nothing of it (only the drain), and the warning
// says the chain never began there.
func TestChainLostBeforeItBegan(t *testing.T) {
	h, d, res := darkCase(t, func(d *darkFleet) { d.darkOn = "web2 begin" })
	var log []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		d.mu.Lock()
		for _, dc := range d.chains {
			if dc.host == "web2" {
				log = slices.Clone(dc.log)
			}
		}
		d.mu.Unlock()
		if len(log) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if !slices.Equal(log, []string{"cancelled stop"}) {
		t.Errorf("web2's late chain log %q, want it cancelled before stop", log)
	}
	if w2 := h.hostLog("web2"); slices.Contains(w2, "stop") || slices.Contains(w2, "switch 1.1.0") {
		t.Errorf("web2 ran %q", w2)
	}
	if got, want := h.actionsDone("web2"), []string{"drain:ok", "wait-idle:ok", "stop:failed", "undo-drain:ok"}; !slices.Equal(got, want) {
		t.Errorf("web2's actions %v, want %v", got, want)
	}
	h.checkInService(t, "1.0.0")
	if code, _ := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary}); code != view.ExitRolledBack {
		t.Errorf("exit %d, want %d: %v", code, view.ExitRolledBack, res.Err)
	}
	var warned bool
	for _, e := range h.eventsOf(event.Warning) {
		warned = warned || e.Host == "web2" && strings.Contains(e.Message, "it never began there") && strings.Contains(e.Message, "no action started")
	}
	if !warned {
		t.Error("no warning says the chain never began on web2")
	}
}
