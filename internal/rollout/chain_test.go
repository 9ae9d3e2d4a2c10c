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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
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
	for _, l := range strings.Split(c.Script, "\nrelctl_act ")[1:] {
		w := shellWords(l, 4)
		if len(w) != 4 {
			f.t.Errorf("chain on %s: bad action line %q", host, l)
			return remote.Result{ExitCode: 127}, &remote.ExitError{Host: host, Code: 127}
		}
		nonce, action, script := w[0], w[1], w[3]
		n, _ := strconv.Atoi(w[2])
		out("relctl-act:" + nonce + " " + action)
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
		errOut("relctl-act-end:" + nonce + " " + action)
		out(fmt.Sprintf("relctl-act-end:%s %s %d %d %d", nonce, action, st, time.Since(t0).Milliseconds(), tmo))
		if st != 0 {
			return remote.Result{ExitCode: st}, &remote.ExitError{Host: host, Code: st}
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
