package rollout

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
)

// fakeFleet is a Hosts and a Balancer that records every command in order
// and fails the test on a command it does not know.
type fakeFleet struct {
	t         *testing.T
	mu        sync.Mutex
	log       []string           // "web1 stop", "lb drain web1", ...
	notes     []string           // what the balancer did on its own, for TakeNotes
	drainNote map[string]string  // server → DrainResult.Note
	current   map[string]string  // host → running version
	lock      string             // lock file content
	failOn    map[string]error   // "web1 health 1.1.0" → error
	up        map[string]bool    // server → in rotation
	hook      func(string) error // optional, called with every log line
	missing   map[string]bool    // "web3 1.0.0": releases/1.0.0 is not on web3
	hangOn    map[string]bool    // "web1 stop": hangs until its timeout or its context ends
	verify    bool               // the balancer reads its state back (CanVerify)
	// sessions are a server's open sessions as States reports them; each
	// read closes one (-1: never closes).
	sessions map[string]int
	stuck    map[string]bool
	outside  map[string]string // host → where current points, outside releases/
	base     string            // the inventory's path ("" = /srv/shop)
	// runHook, when it handles script, answers it with out (one line per
	// line) and exit 0.
	runHook func(host, script string) (out string, handled bool)
	// chainLogs are the host-side logs of the chains sent (nonce → lines,
	// chain.go's format), as chainStopScript reads them.
	chainLogs map[string][]string
}

func newFake(t *testing.T, hosts []string, v string) *fakeFleet {
	f := &fakeFleet{t: t, current: map[string]string{}, failOn: map[string]error{}, up: map[string]bool{}, missing: map[string]bool{}, hangOn: map[string]bool{}, outside: map[string]string{}, sessions: map[string]int{}, stuck: map[string]bool{}}
	for _, h := range hosts {
		f.current[h] = v
		f.up[h] = true
	}
	return f
}

// hasRelease reports whether releases/v is on host: every version the
// fleet started on, and every version unpacked there.
func (f *fakeFleet) hasRelease(host, v string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missing[host+" "+v] {
		return false
	}
	return true
}

// rec logs s and applies what the test injected for it: a hook, a
// failure, or a hang that lasts until the command's timeout or its context
// ends, as a real host's hung command does under remote's deadlines.
func (f *fakeFleet) rec(ctx context.Context, timeout time.Duration, s string) error {
	f.mu.Lock()
	f.log = append(f.log, s)
	err := f.failOn[s]
	hang := f.hangOn[s]
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		if herr := hook(s); herr != nil {
			return herr
		}
	}
	if hang {
		var tc <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			tc = t.C
		}
		select {
		case <-tc:
			return fmt.Errorf("%s: %w after %s", s, remote.ErrTimeout, timeout)
		case <-ctx.Done():
			return fmt.Errorf("%s: command stopped: %w", s, ctx.Err())
		}
	}
	return err
}

var relRe = regexp.MustCompile(`releases/([0-9.]+)`)

// wrappedRe finds the command a migration wrapper runs (see
// migrationWrapper); the fake runs the command itself.
var wrappedRe = regexp.MustCompile(`\n\s*sh -c '?([^'\n]*)'? > `)

func (f *fakeFleet) Run(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	s := c.Script
	if strings.Contains(s, "/.relctl/migrations/") {
		s = wrappedRe.FindStringSubmatch(s)[1]
	}
	out := func(l string) {
		if c.Stdout != nil {
			c.Stdout(l)
		}
	}
	if f.runHook != nil {
		if o, ok := f.runHook(host, s); ok {
			if err := f.rec(ctx, c.Timeout, host+" "+s); err != nil {
				return remote.Result{ExitCode: 1}, err
			}
			for _, l := range strings.Split(o, "\n") {
				out(l)
			}
			return remote.Result{}, nil
		}
	}
	var err error
	switch {
	case strings.Contains(s, "\nrelctl_act "):
		return f.chain(ctx, host, c)
	case strings.Contains(s, "relctl_alive()"):
		return f.chainStop(ctx, host, c)
	case s == "true":
		return remote.Result{}, nil
	case strings.Contains(s, "need=present"):
		// preflight: where current points, and whether releases/<need> is there.
		f.mu.Lock()
		v, elsewhere := f.current[host], f.outside[host]
		f.mu.Unlock()
		if elsewhere != "" {
			out("current=" + elsewhere)
		} else {
			base := f.base
			if base == "" {
				base = "/srv/shop"
			}
			out("current=" + base + "/releases/" + v)
		}
		if m := regexp.MustCompile(`n='?([^';\n]*)'?\n`).FindStringSubmatch(s); m != nil && f.hasRelease(host, m[1]) {
			out("need=present")
		} else {
			out("need=missing")
		}
		return remote.Result{}, nil
	case strings.Contains(s, ".relctl/lock"):
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case strings.Contains(s, "now=$(date"):
			if f.lock != "" {
				out(f.lock)
			}
			out("now=100")
		case strings.Contains(s, "lease="):
			m := regexp.MustCompile(`run=([^;]+);`).FindStringSubmatch(s)
			if f.lock != "" && !strings.Contains(f.lock, m[1]) {
				out(f.lock)
				out("now=100")
				return remote.Result{ExitCode: 3}, &remote.ExitError{Host: host, Code: 3}
			}
			if f.lock == "" {
				f.log = append(f.log, host+" lock")
			}
			f.lock = fmt.Sprintf(`{"owner":"o","run":"%s","started":1,"lease_until":200}`, m[1])
		case strings.Contains(s, "grep -qF"):
			f.log = append(f.log, host+" unlock")
			f.lock = ""
		}
		return remote.Result{}, nil
	case strings.Contains(s, "ln -sfn"):
		v := relRe.FindStringSubmatch(s)[1]
		err = f.rec(ctx, c.Timeout, host+" switch "+v)
		if err == nil {
			f.mu.Lock()
			f.current[host] = v
			f.mu.Unlock()
		}
	case strings.HasPrefix(s, "readlink"):
		if err := f.rec(ctx, c.Timeout, host+" readlink"); err != nil {
			return remote.Result{ExitCode: 1}, err
		}
		f.mu.Lock()
		v := f.current[host]
		f.mu.Unlock()
		// readlink '<path>/current': answer under the inventory's own path.
		base := strings.TrimSuffix(strings.Trim(strings.TrimPrefix(s, "readlink "), "'"), "/current")
		out(base + "/releases/" + v)
		return remote.Result{}, nil
	case strings.Contains(s, "history.jsonl"):
		return remote.Result{}, f.rec(ctx, c.Timeout, host+" audit")
	case strings.Contains(s, "tar -xzf"):
		err = f.rec(ctx, c.Timeout, host+" unpack "+relRe.FindStringSubmatch(s)[1])
	case strings.Contains(s, "pruned"):
		err = f.rec(ctx, c.Timeout, host+" cleanup")
	case s == "stop-cmd", s == "start-cmd":
		err = f.rec(ctx, c.Timeout, host+" "+strings.TrimSuffix(s, "-cmd"))
	case strings.Contains(s, "\nrelctl_health "):
		return f.healthLoop(ctx, host, c)
	case strings.HasPrefix(s, "migrate-cmd"), strings.HasPrefix(s, "post-cmd"):
		err = f.rec(ctx, c.Timeout, host+" "+strings.Fields(s)[0]+" "+c.Env["RELCTL_VERSION"])
	default:
		f.t.Errorf("unexpected command on %s: %q", host, s)
		return remote.Result{ExitCode: 127}, &remote.ExitError{Host: host, Code: 127}
	}
	if err != nil {
		return remote.Result{ExitCode: 1}, err
	}
	return remote.Result{}, nil
}

var healthCall = regexp.MustCompile(`(?m)^relctl_health (\S+) (\d+) (\d+) (\d+) (\d+) (\d+) (.*) (\S+) (\d+)$`)

// healthLoop plays the host side of the health wait (health.go) as the
// loop's shell text would: one logged "HOST health VERSION" per check,
// each bounded by its check timeout, the check and verdict lines on
// stdout, healthy once the checks have passed for stable_for, unhealthy
// (exit 3) once a check ends past the health timeout. A check that loses
// the connection, or whose process is killed, ends the whole command so.
func (f *fakeFleet) healthLoop(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	m := healthCall.FindStringSubmatch(c.Script)
	if m == nil {
		f.t.Errorf("health loop on %s without its call line: %q", host, c.Script)
		return remote.Result{ExitCode: 127}, &remote.ExitError{Host: host, Code: 127}
	}
	msOf := func(s string) time.Duration { n, _ := strconv.Atoi(s); return time.Duration(n) * time.Millisecond }
	nonce, interval, stable, timeout, check := m[1], msOf(m[2]), msOf(m[3]), msOf(m[4]), msOf(m[5])
	if script := strings.Trim(m[7], "'"); script != "health-cmd" {
		f.t.Errorf("health loop on %s runs %q", host, script)
	}
	out := func(format string, args ...any) {
		if c.Stdout != nil {
			c.Stdout(fmt.Sprintf(format, args...))
		}
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var okSince time.Time
	for n := 1; ; n++ {
		f.mu.Lock()
		v := f.current[host]
		f.mu.Unlock()
		attempt := min(check, max(time.Until(deadline), 0)+time.Second)
		t0 := time.Now()
		err := f.rec(ctx, attempt, host+" health "+v)
		now := time.Now()
		status, timedOut := 0, 0
		switch {
		case err == nil:
			if okSince.IsZero() {
				okSince = now
			}
		case errors.Is(err, remote.ErrTimeout):
			status, timedOut, okSince = 143, 1, time.Time{}
		case errors.Is(err, remote.ErrConnectionLost), ctx.Err() != nil, err.Error() == "killed":
			return remote.Result{ExitCode: -1}, err
		default:
			status, okSince = 1, time.Time{}
		}
		out("relctl-check:%s %d %d %d %d", nonce, n, status, now.Sub(t0).Milliseconds(), timedOut)
		if err != nil && timedOut == 0 {
			out("%v", err)
		}
		if !okSince.IsZero() && now.Sub(okSince) >= stable {
			out("relctl-healthy:%s %d %d", nonce, n, now.Sub(start).Milliseconds())
			if then := strings.Trim(m[8], "'"); then != "" {
				// The version command, run once healthy, as the fleet
				// runs any command.
				out("relctl-then-out:%s", nonce)
				var stdout []string
				t0 := time.Now()
				_, err := f.Run(ctx, host, remote.Command{Script: then, Timeout: msOf(m[9]), Stdout: func(l string) { stdout = append(stdout, l) }})
				st, tmo := 0, 0
				switch {
				case err == nil:
				case errors.Is(err, remote.ErrTimeout):
					st, tmo = 143, 1
				case errors.Is(err, remote.ErrConnectionLost), ctx.Err() != nil, err.Error() == "killed":
					return remote.Result{ExitCode: -1}, err
				default:
					st = 1
				}
				for _, l := range stdout {
					out("%s", l)
				}
				out("relctl-then-err:%s", nonce)
				if err != nil && tmo == 0 {
					out("%v", err)
				}
				out("relctl-then:%s %d %d %d", nonce, st, time.Since(t0).Milliseconds(), tmo)
			}
			return remote.Result{}, nil
		}
		if !now.Before(deadline) {
			out("relctl-unhealthy:%s %d %d", nonce, n, now.Sub(start).Milliseconds())
			return remote.Result{ExitCode: 3}, &remote.ExitError{Host: host, Code: 3}
		}
		select {
		case <-ctx.Done():
			return remote.Result{ExitCode: -1}, ctx.Err()
		case <-time.After(min(interval, time.Until(deadline)+time.Millisecond)):
		}
	}
}

func (f *fakeFleet) Upload(ctx context.Context, host, local, remotePath, sha string) (bool, error) {
	return false, f.rec(ctx, 0, host+" upload "+regexp.MustCompile(`-([0-9.]+)\.tar\.gz$`).FindStringSubmatch(remotePath)[1])
}

// Balancer side. With verify set the fake reads its state back (CanVerify),
// like haproxy or nginx; without it, like balancer none.
func (f *fakeFleet) Kind() string     { return "fake" }
func (f *fakeFleet) Describe() string { return "fake balancer" }
func (f *fakeFleet) Preflight(ctx context.Context, servers []string, force bool) error {
	if len(servers) == 1 {
		if err := f.rec(ctx, 0, "lb preflight "+servers[0]); err != nil {
			return err
		}
	}
	return f.rec(ctx, 0, "lb preflight")
}
func (f *fakeFleet) Drain(ctx context.Context, server string) (lb.DrainResult, error) {
	if err := f.rec(ctx, 0, "lb drain "+server); err != nil {
		return lb.DrainResult{}, err
	}
	f.mu.Lock()
	f.up[server] = false
	note := f.drainNote[server]
	f.mu.Unlock()
	return lb.DrainResult{Idle: true, Waited: time.Millisecond, Note: note}, nil
}

// TakeNotes implements lb.NoteTaker: the notes are handed over once.
func (f *fakeFleet) TakeNotes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.notes
	f.notes = nil
	return n
}
func (f *fakeFleet) Enable(ctx context.Context, server string, timeout time.Duration) error {
	if err := f.rec(ctx, 0, "lb enable "+server); err != nil {
		return err
	}
	f.mu.Lock()
	f.up[server] = true
	f.mu.Unlock()
	return nil
}
func (f *fakeFleet) States(ctx context.Context) ([]lb.ServerState, error) {
	if !f.verify {
		return nil, nil
	}
	if err := f.rec(ctx, 0, "lb states"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.verify {
		return nil, nil
	}
	var out []lb.ServerState
	for sv, up := range f.up {
		st := lb.StatusDrain
		if up {
			st = lb.StatusUp
		}
		n := f.sessions[sv]
		if n > 0 && !f.stuck[sv] {
			f.sessions[sv] = n - 1
		}
		out = append(out, lb.ServerState{Server: sv, Status: st, Sessions: n, Endpoint: "fake"})
	}
	return out, nil
}
func (f *fakeFleet) Restore(ctx context.Context, servers []string) error {
	return f.rec(ctx, 0, "lb restore "+strings.Join(servers, ","))
}

func (f *fakeFleet) CanVerify() bool { return f.verify }
func (f *fakeFleet) Verify(ctx context.Context, server string) error {
	if err := f.rec(ctx, 0, "lb verify "+server); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up[server] {
		return fmt.Errorf("verify %s: %w", server, lb.ErrNotUp)
	}
	return nil
}

// EnsureOut re-drains a server a "reload" put back in rotation, as the
// real drivers do, and says so.
func (f *fakeFleet) EnsureOut(ctx context.Context, server string) (string, error) {
	if err := f.rec(ctx, 0, "lb ensure-out "+server); err != nil {
		return "", err
	}
	f.mu.Lock()
	back := f.up[server]
	f.mu.Unlock()
	if !back {
		return "", nil
	}
	if _, err := f.Drain(ctx, server); err != nil {
		return "", err
	}
	return server + " was back in rotation on fake (UP): drained again, idle after 1ms", nil
}

var _ lb.Balancer = (*fakeFleet)(nil)

const testInventory = `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: stop-cmd, start: start-cmd, health: health-cmd, migrate: migrate-cmd, post_migrate: post-cmd}
health: {timeout: 300ms, interval: 10ms, stable_for: 0s}
balancer: {kind: none}
%s
hosts:
  - {name: web1, address: 10.0.0.1}
  - {name: web2, address: 10.0.0.2}
  - {name: web3, address: 10.0.0.3}
`

type harness struct {
	inv    *fleet.Inventory
	fake   *fakeFleet
	events []event.Event
	mu     sync.Mutex
	force  chan struct{} // Config.Force
	grace  time.Duration // Config.ForceGrace
}

func newHarness(t *testing.T, extra string) *harness {
	return newHarnessText(t, fmt.Sprintf(testInventory, extra))
}

func newHarnessText(t *testing.T, text string) *harness {
	inv, err := fleet.Parse("fleet.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{inv: inv, fake: newFake(t, []string{"web1", "web2", "web3"}, "1.0.0")}
}

func (h *harness) run(t *testing.T, to string, gate Gate) Result {
	t.Helper()
	obs := plan.Observed{}
	for _, name := range []string{"web1", "web2", "web3"} {
		obs.Hosts = append(obs.Hosts, plan.HostState{Name: name, Version: h.fake.current[name], Reachable: true})
	}
	p, err := plan.Build(h.inv, obs, plan.Options{To: to, CanVerify: h.fake.verify})
	if err != nil {
		t.Fatal(err)
	}
	return h.runPlan(t, p, gate, nil)
}

// runPlan runs p; ctx nil means context.Background.
func (h *harness) runPlan(t *testing.T, p *plan.Plan, gate Gate, ctx context.Context) Result {
	t.Helper()
	if ctx == nil {
		ctx = context.Background()
	}
	bus := event.NewBus("run1", nil, event.SinkFunc(func(e event.Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}))
	arts := map[string]Artifact{}
	for _, hop := range p.Hops {
		arts[hop.To] = Artifact{Path: "/dist/shop-" + hop.To + ".tar.gz", SHA256: "abc"}
	}
	e := New(Config{Inventory: h.inv, Plan: p, Hosts: h.fake, Balancer: h.fake, Gate: gate, Bus: bus, Artifacts: arts, RunID: "run1", Owner: "me@here", Force: h.force, ForceGrace: h.grace})
	return e.Run(ctx)
}

// eventsOf returns the events of type typ, in order.
func (h *harness) eventsOf(typ event.Type) []event.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []event.Event
	for _, e := range h.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// hostLog is the fake's log lines about host, without the host prefix.
func (h *harness) hostLog(host string) []string {
	var out []string
	for _, l := range h.fake.log {
		switch {
		case strings.HasPrefix(l, host+" "):
			out = append(out, strings.TrimPrefix(l, host+" "))
		case l == "lb drain "+host || l == "lb enable "+host:
			out = append(out, strings.TrimPrefix(strings.TrimSuffix(l, " "+host), "lb "))
		}
	}
	return out
}

func index(log []string, s string) int { return slices.Index(log, s) }

func TestUpgradeExactOrder(t *testing.T) {
	h := newHarness(t, "")
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v\n%s", res.Outcome, res.Err, strings.Join(h.fake.log, "\n"))
	}
	for _, host := range []string{"web1", "web2", "web3"} {
		want := []string{"upload 1.1.0", "unpack 1.1.0", "drain", "stop", "switch 1.1.0", "start", "health 1.1.0", "enable", "cleanup", "audit"}
		got := h.hostLog(host)
		if host == "web1" {
			// web1 also holds the lock and runs the migrations.
			got = slices.DeleteFunc(got, func(s string) bool {
				return s == "lock" || s == "unlock" || strings.HasPrefix(s, "migrate-cmd") || strings.HasPrefix(s, "post-cmd")
			})
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: commands\n%v\nwant\n%v", host, got, want)
		}
		if h.fake.current[host] != "1.1.0" {
			t.Errorf("%s runs %s", host, h.fake.current[host])
		}
	}
	log := h.fake.log
	mig, post := index(log, "web1 migrate-cmd 1.1.0"), index(log, "web1 post-cmd 1.1.0")
	if mig < 0 || post < 0 {
		t.Fatalf("migrations missing:\n%s", strings.Join(log, "\n"))
	}
	for i, l := range log {
		if strings.HasPrefix(l, "lb drain") && i < mig {
			t.Errorf("%q before the pre-deploy migration", l)
		}
		if strings.HasPrefix(l, "lb enable") && i > post {
			t.Errorf("%q after the post-deploy migration", l)
		}
	}
	if index(log, "web1 lock") > mig || index(log, "web1 unlock") < post {
		t.Errorf("lock does not span the run:\n%s", strings.Join(log, "\n"))
	}
	if !slices.Contains(log, "lb restore web1,web2,web3") {
		t.Errorf("balancer state not re-asserted at the end:\n%s", strings.Join(log, "\n"))
	}
	if got := res.Summary.Upgraded; !slices.Equal(got, []string{"web1", "web2", "web3"}) || !res.Summary.PostMigrated {
		t.Errorf("summary %+v", res.Summary)
	}
	if h.events[len(h.events)-1].Type != event.RunFinished {
		t.Error("last event is not run_finished")
	}
}

func TestCanaryHealthFailsRevertsAndRollsBack(t *testing.T) {
	h := newHarness(t, "")
	h.fake.failOn["web1 health 1.1.0"] = errors.New("exit status 1")
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	want := []string{"upload 1.1.0", "unpack 1.1.0", "drain", "stop", "switch 1.1.0", "start"}
	got := slices.DeleteFunc(h.hostLog("web1"), func(s string) bool {
		return s == "lock" || s == "unlock" || strings.HasPrefix(s, "migrate-cmd") || s == "health 1.1.0"
	})
	want = append(want, "stop", "switch 1.0.0", "start", "health 1.0.0", "enable", "audit")
	if !slices.Equal(got, want) {
		t.Errorf("web1: %v\nwant %v", got, want)
	}
	for _, host := range []string{"web2", "web3"} {
		for _, l := range h.hostLog(host) {
			if l == "drain" {
				t.Errorf("%s was drained after the canary failed", host)
			}
		}
	}
	if slices.Contains(h.fake.log, "web1 post-cmd 1.1.0") {
		t.Error("post-migrate ran")
	}
	if !h.fake.up["web1"] || h.fake.current["web1"] != "1.0.0" {
		t.Errorf("web1 not back in service on 1.0.0")
	}
	if !slices.Equal(res.Summary.RolledBack, []string{"web1"}) || len(res.Summary.LeftDrained) != 0 {
		t.Errorf("summary %+v", res.Summary)
	}
}

func TestRevertFailsLeavesDrainedAndSaysSo(t *testing.T) {
	h := newHarness(t, "rollout: {on_failure: pause}")
	h.fake.failOn["web1 health 1.1.0"] = errors.New("exit status 1")
	h.fake.failOn["web1 health 1.0.0"] = errors.New("exit status 1")
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomePaused {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	if h.fake.up["web1"] {
		t.Error("an unhealthy web1 was put back in the balancer")
	}
	reason := res.Summary.LeftDrained["web1"]
	if !strings.Contains(reason, "not healthy") || !strings.Contains(reason, "going back to 1.0.0 failed") {
		t.Errorf("left drained reason %q", reason)
	}
	if !slices.Contains(h.fake.log, "web1 audit") {
		t.Error("no audit record")
	}
	for _, l := range h.fake.log {
		if strings.HasPrefix(l, "lb restore") {
			t.Errorf("a host left drained was re-enabled at the end: %s", l)
		}
	}
	if strings.Contains(strings.Join(h.fake.log, "\n"), "web1 unlock") {
		t.Error("a paused run released its lock")
	}
}

func TestMigrationFailsTouchesNoHost(t *testing.T) {
	h := newHarness(t, "")
	h.fake.failOn["web1 migrate-cmd 1.1.0"] = errors.New("exit status 1")
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeFailed {
		t.Fatalf("outcome %s", res.Outcome)
	}
	for _, l := range h.fake.log {
		if strings.HasPrefix(l, "lb ") && l != "lb preflight" {
			t.Errorf("balancer touched: %s", l)
		}
	}
	if !slices.Contains(h.fake.log, "web1 unlock") {
		t.Error("lock not released")
	}
}

type gateFunc func() Decision

func (g gateFunc) Approve(context.Context, plan.Step) (Decision, error) { return g(), nil }
func (g gateFunc) Failed(context.Context, string) (Decision, error)     { return Stop, nil }

func TestGateRollback(t *testing.T) {
	h := newHarness(t, "")
	res := h.run(t, "1.1.0", gateFunc(func() Decision { return RollBack }))
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	got := slices.DeleteFunc(h.hostLog("web1"), func(s string) bool {
		return s == "lock" || s == "unlock" || strings.HasPrefix(s, "migrate-cmd") || s == "upload 1.1.0" || s == "unpack 1.1.0"
	})
	// The rollback first reads what web1 runs: it never moves a host forward.
	want := []string{"drain", "stop", "switch 1.1.0", "start", "health 1.1.0", "enable",
		"readlink", "drain", "stop", "switch 1.0.0", "start", "health 1.0.0", "enable", "audit"}
	if !slices.Equal(got, want) {
		t.Errorf("web1: %v\nwant %v", got, want)
	}
	if h.fake.current["web2"] != "1.0.0" || slices.Contains(h.hostLog("web2"), "drain") {
		t.Error("web2 was touched after the gate")
	}
}

func TestGateAbort(t *testing.T) {
	h := newHarness(t, "")
	res := h.run(t, "1.1.0", gateFunc(func() Decision { return Abort }))
	if res.Outcome != event.OutcomeAborted || !slices.Contains(h.fake.log, "web1 unlock") {
		t.Fatalf("outcome %s, log %v", res.Outcome, h.fake.log)
	}
	if h.fake.current["web1"] != "1.1.0" || !h.fake.up["web1"] {
		t.Error("aborting at the gate should leave the canary serving the new version")
	}
}

func TestLockedRefused(t *testing.T) {
	h := newHarness(t, "")
	h.fake.lock = `{"owner":"alice@ops1","run":"other","fingerprint":"x","started":1,"lease_until":200}`
	res := h.run(t, "1.1.0", AutoApprove{})
	if !errors.Is(res.Err, ErrLocked) || !strings.Contains(res.Err.Error(), "alice@ops1") {
		t.Fatalf("err = %v", res.Err)
	}
	for _, l := range h.fake.log {
		if strings.Contains(l, "upload") || strings.Contains(l, "drain") {
			t.Errorf("touched the fleet while locked: %s", l)
		}
	}
	if h.fake.lock == "" {
		t.Error("someone else's lock was removed")
	}
}

func TestInterruptFinishesHostInFlight(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false}")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.fake.hook = func(s string) error {
		if s == "web2 stop" {
			cancel() // Ctrl-C while web2 is mid-deploy
		}
		return nil
	}
	obs := plan.Assume(h.inv, "1.0.0")
	p, _ := plan.Build(h.inv, obs, plan.Options{To: "1.1.0"})
	bus := event.NewBus("r", nil)
	e := New(Config{Inventory: h.inv, Plan: p, Hosts: h.fake, Balancer: h.fake, Bus: bus,
		Artifacts: map[string]Artifact{"1.1.0": {Path: "x", SHA256: "y"}}, RunID: "r", Owner: "o"})
	res := e.Run(ctx)
	if res.Outcome != event.OutcomeAborted {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	if h.fake.current["web2"] != "1.1.0" || !h.fake.up["web2"] {
		t.Error("web2 was abandoned mid-switch")
	}
	if slices.Contains(h.hostLog("web3"), "drain") {
		t.Error("web3 was started after the interrupt")
	}
	if !slices.Contains(h.fake.log, "web1 unlock") {
		t.Error("lock not released")
	}
}

// A canary that fails in the second hop of a multi-hop upgrade is reverted
// to the first hop's version; the run ends rolled back to it, not refused
// because of the first hop's post-migrate.
func TestSecondHopCanaryFailsRollsBackToStop(t *testing.T) {
	h := newHarness(t, "releases:\n  \"2.0.0\": {upgrade_from: \">=1.1.0\"}\n  \"1.1.0\": {upgrade_from: \">=1.0.0\"}")
	h.fake.failOn["web1 health 2.0.0"] = errors.New("exit status 1")
	res := h.run(t, "2.0.0", AutoApprove{})
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	for _, host := range []string{"web1", "web2", "web3"} {
		if h.fake.current[host] != "1.1.0" || !h.fake.up[host] {
			t.Errorf("%s: runs %s, up %v; want 1.1.0 in service", host, h.fake.current[host], h.fake.up[host])
		}
	}
	if !slices.Equal(res.Summary.RolledBack, []string{"web1"}) || len(res.Summary.Upgraded) != 0 {
		t.Errorf("summary %+v", res.Summary)
	}
	if slices.Contains(h.fake.log, "web1 post-cmd 2.0.0") || !slices.Contains(h.fake.log, "web1 post-cmd 1.1.0") {
		t.Errorf("post-migrations: %v", h.fake.log)
	}
}
