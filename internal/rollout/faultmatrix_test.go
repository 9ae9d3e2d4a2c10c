package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/view"
)

// The fault matrix: every per-host action × every fault, injected on web2
// (the second host; web1 is already upgraded when it fails), with
// on_failure: rollback and no failure budget. Each cell asserts the final
// state of every host (in service on a stated version, or named LEFT
// DRAINED), the exit code from view.Verdict (README's table), that the
// journal reads back and is resumable when the run did not finish, and
// that the migrations ran exactly once.
//
//	go test -run FaultMatrix -v ./internal/rollout/
//
// prints the matrix as a table.

const matrixInventory = `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: stop-cmd, start: start-cmd, health: health-cmd, version: version-cmd, migrate: migrate-cmd, post_migrate: post-cmd}
health: {timeout: 400ms, interval: 10ms, stable_for: 0s}
balancer: {kind: none, drain_timeout: 100ms}
rollout: {batches: [1], pause_after_canary: false, on_failure: rollback, max_failed_hosts: 0}
timeouts: {stop: 250ms, start: 250ms, switch: 250ms, health_check: 250ms, version: 250ms, lock: 2s, observe: 300ms, upload: 2s}
hosts:
  - {name: web1, address: 10.0.0.1}
  - {name: web2, address: 10.0.0.2}
  - {name: web3, address: 10.0.0.3}
`

type fault string

const (
	faultFails  fault = "fails"
	faultHangs  fault = "hangs past its deadline"
	faultDrops  fault = "connection drops"
	faultDies   fault = "host's sshd dies"
	faultKilled fault = "relctl killed, resumed"
)

var matrixFaults = []fault{faultFails, faultHangs, faultDrops, faultDies, faultKilled}

// matrixActions are the per-host actions, and the fake's log line of each
// one's forward command on web2. wait-idle's command is the balancer read
// that follows web2's drain.
var matrixActions = []struct {
	action plan.Action
	line   string
}{
	{plan.ActionDrain, "lb drain web2"},
	{plan.ActionWaitIdle, "lb states"},
	{plan.ActionStop, "web2 stop"},
	{plan.ActionSwitch, "web2 switch 1.1.0"},
	{plan.ActionStart, "web2 start"},
	{plan.ActionHealth, "web2 health 1.1.0"},
	{plan.ActionVersion, "web2 version-cmd"},
	{plan.ActionEnable, "lb enable web2"},
	{plan.ActionVerify, "lb verify web2"},
}

// want is what a cell must end with.
type want struct {
	exit     int
	versions map[string]string // host → version it serves, in service
	drained  []string          // hosts named LEFT DRAINED
	post     int               // post-migrations run
}

func all(v string) map[string]string {
	return map[string]string{"web1": v, "web2": v, "web3": v}
}

// expected is the matrix's contract, written out cell by cell.
func expected(a plan.Action, f fault) want {
	switch f {
	case faultKilled:
		// resume finishes the run: the host in flight is redone from its
		// first action (every action is idempotent).
		return want{exit: view.ExitOK, versions: all("1.1.0"), post: 1}
	case faultDies:
		if a == plan.ActionWaitIdle {
			// web2's app was never stopped: put back in rotation, it
			// serves 1.0.0 while its sshd is down.
			return want{exit: view.ExitRolledBack, versions: all("1.0.0")}
		}
		// web2 cannot be reached to go back: named, and every switched
		// host (web1) still goes back; web3 was never touched.
		return want{exit: view.ExitPaused, versions: map[string]string{"web1": "1.0.0", "web3": "1.0.0"}, drained: []string{"web2"}}
	}
	if a == plan.ActionDrain {
		// A drain that fails is checked against the balancer's own state
		// and done again once (a reload may have undone it): the run
		// goes on, and says so.
		return want{exit: view.ExitOK, versions: all("1.1.0"), post: 1}
	}
	// The action fails, hangs or loses its connection once: web2 is
	// compensated, the failure policy rolls web1 back.
	return want{exit: view.ExitRolledBack, versions: all("1.0.0")}
}

// injector applies one fault at one line of the fake's log.
type injector struct {
	mu       sync.Mutex
	f        fault
	line     string
	armed    bool // wait-idle: armed by web2's drain
	fired    bool
	dead     bool          // faultDies: web2's sshd is gone
	killed   chan struct{} // faultKilled: closed when the first process "dies"
	release  chan struct{} // unblocks the dead process at the end of the test
	snapshot func()        // copies the journal as it is on disk at the kill
}

func (in *injector) hook(s string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.line == "lb states" && s == "lb drain web2" {
		in.armed = true
	}
	if in.dead && strings.HasPrefix(s, "web2 ") {
		return fmt.Errorf("web2: %w", remote.ErrConnectionLost)
	}
	match := s == in.line && (in.line != "lb states" || in.armed)
	if !match {
		return nil
	}
	switch in.f {
	case faultFails:
		if s == "web2 health 1.1.0" || !in.fired {
			in.fired = true
			return errors.New("exit status 1")
		}
	case faultDrops:
		if !in.fired {
			in.fired = true
			return fmt.Errorf("%s: %w", s, remote.ErrConnectionLost)
		}
	case faultDies:
		if !in.fired {
			in.fired, in.dead = true, true
			return fmt.Errorf("%s: %w", s, remote.ErrConnectionLost)
		}
	case faultKilled:
		if !in.fired {
			in.fired = true
			in.snapshot()
			close(in.killed)
			in.mu.Unlock()
			<-in.release // this process is dead: it never returns in time
			in.mu.Lock()
			return errors.New("killed")
		}
	}
	return nil
}

// dying wraps the fake for the first process of a killed cell: once it is
// killed, every call it makes blocks until the test ends, then fails
// without effect.
type dying struct {
	*fakeFleet
	in *injector
}

func (d dying) gone() bool {
	select {
	case <-d.in.killed:
		return true
	default:
		return false
	}
}

func (d dying) wait() error { <-d.in.release; return errors.New("killed") }

func (d dying) Run(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	if d.gone() {
		return remote.Result{}, d.wait()
	}
	return d.fakeFleet.Run(ctx, host, c)
}
func (d dying) Upload(ctx context.Context, host, local, rp, sha string) (bool, error) {
	if d.gone() {
		return false, d.wait()
	}
	return d.fakeFleet.Upload(ctx, host, local, rp, sha)
}
func (d dying) Drain(ctx context.Context, s string) (lb.DrainResult, error) {
	if d.gone() {
		return lb.DrainResult{}, d.wait()
	}
	return d.fakeFleet.Drain(ctx, s)
}
func (d dying) Enable(ctx context.Context, s string, to time.Duration) error {
	if d.gone() {
		return d.wait()
	}
	return d.fakeFleet.Enable(ctx, s, to)
}
func (d dying) States(ctx context.Context) ([]lb.ServerState, error) {
	if d.gone() {
		return nil, d.wait()
	}
	return d.fakeFleet.States(ctx)
}
func (d dying) Restore(ctx context.Context, s []string) error {
	if d.gone() {
		return d.wait()
	}
	return d.fakeFleet.Restore(ctx, s)
}
func (d dying) Verify(ctx context.Context, s string) error {
	if d.gone() {
		return d.wait()
	}
	return d.fakeFleet.Verify(ctx, s)
}
func (d dying) EnsureOut(ctx context.Context, s string) (string, error) {
	if d.gone() {
		return "", d.wait()
	}
	return d.fakeFleet.EnsureOut(ctx, s)
}

// cellResult is what one cell ended with, for the table.
type cellResult struct {
	exit    int
	summary string
}

func runCell(t *testing.T, a plan.Action, line string, f fault) cellResult {
	inv, err := fleet.Parse("fleet.yaml", []byte(matrixInventory))
	if err != nil {
		t.Fatal(err)
	}
	fk := newFake(t, []string{"web1", "web2", "web3"}, "1.0.0")
	fk.verify = true
	fk.runHook = func(host, script string) (string, bool) {
		if script != "version-cmd" {
			return "", false
		}
		fk.mu.Lock()
		defer fk.mu.Unlock()
		return fk.current[host], true
	}
	in := &injector{f: f, line: line, killed: make(chan struct{}), release: make(chan struct{})}
	if f == faultHangs {
		fk.hangOn[line] = true
		if line == "lb states" {
			fk.hangOn[line] = false // armed below, after web2's drain
		}
	}
	fk.hook = func(s string) error {
		if f == faultHangs && line == "lb states" && s == "lb drain web2" {
			fk.mu.Lock()
			fk.hangOn["lb states"] = true
			fk.mu.Unlock()
		}
		if f == faultHangs && s == line && line != "web2 health 1.1.0" {
			// One hang: the next call of the same command answers.
			go func() {
				fk.mu.Lock()
				fk.hangOn[line] = false
				fk.mu.Unlock()
			}()
		}
		return in.hook(s)
	}
	p, err := plan.Build(inv, plan.Assume(inv, "1.0.0"), plan.Options{To: "1.1.0", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.Actions, a) {
		t.Fatalf("plan does not list %s: %v", a, p.Actions)
	}
	dir := t.TempDir()
	j, err := journal.Create(dir, "run1")
	if err != nil {
		t.Fatal(err)
	}
	jpath := j.Path()
	snap := filepath.Join(t.TempDir(), "run1.jsonl")
	in.snapshot = func() {
		b, err := os.ReadFile(jpath)
		if err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(snap, b, 0o600); err != nil {
			t.Error(err)
		}
	}
	arts := map[string]Artifact{"1.1.0": {Path: "/dist/shop-1.1.0.tar.gz", SHA256: "abc"}}
	var hosts Hosts = fk
	var bal lb.Balancer = fk
	if f == faultKilled {
		hosts, bal = dying{fk, in}, dying{fk, in}
	}
	bus := event.NewBus("run1", nil, j)
	e := New(Config{Inventory: inv, Plan: p, Hosts: hosts, Balancer: bal, Bus: bus, Journal: j, Artifacts: arts, RunID: "run1", Owner: "o"})
	done := make(chan Result, 1)
	go func() { done <- e.Run(context.Background()) }()

	var res Result
	finalJournal := jpath
	if f == faultKilled {
		select {
		case <-in.killed:
		case r := <-done:
			t.Fatalf("the run ended (%s: %v) before the kill point %q", r.Outcome, r.Err, line)
		case <-time.After(60 * time.Second):
			t.Fatal("kill point never reached")
		}
		// The first process is dead. Resume from what its journal holds.
		run, err := journal.Read(snap)
		if err != nil {
			t.Fatalf("journal after the kill: %v", err)
		}
		if !run.Resumable() {
			t.Fatalf("journal after the kill is not resumable")
		}
		j2, err := journal.Open(snap)
		if err != nil {
			t.Fatal(err)
		}
		e2 := New(Config{Inventory: inv, Plan: run.Plan, Hosts: fk, Balancer: fk, Bus: event.NewBus("run1", nil, j2), Journal: j2,
			Artifacts: arts, RunID: "run1", Owner: "o", Resume: &run.Progress})
		res = e2.Run(context.Background())
		j2.Close()
		finalJournal = snap
		close(in.release)
		<-done // let the dead process end (its calls now fail, without effect)
	} else {
		select {
		case res = <-done:
		case <-time.After(120 * time.Second):
			t.Fatal("the run never ended: a call without a deadline")
		}
		close(in.release)
	}
	j.Close()

	// The journal reads back, finished, with the outcome the run returned.
	run, err := journal.Read(finalJournal)
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	if !run.Finished || run.Outcome != res.Outcome || run.Resumable() != (res.Outcome == event.OutcomePaused) {
		t.Errorf("journal: finished %v outcome %s resumable %v; run ended %s", run.Finished, run.Outcome, run.Resumable(), res.Outcome)
	}

	w := expected(a, f)
	code, lines := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary, Locked: errors.Is(res.Err, ErrLocked)})
	if code != w.exit {
		t.Errorf("exit %d, want %d (%s: %v)\n%s", code, w.exit, res.Outcome, res.Err, strings.Join(lines, "\n"))
	}
	fk.mu.Lock()
	defer fk.mu.Unlock()
	for _, h := range []string{"web1", "web2", "web3"} {
		_, named := res.Summary.LeftDrained[h]
		wantNamed := slices.Contains(w.drained, h)
		if named != wantNamed {
			t.Errorf("%s named LEFT DRAINED %v, want %v (%+v)", h, named, wantNamed, res.Summary.LeftDrained)
		}
		if v, ok := w.versions[h]; ok {
			if fk.current[h] != v || !fk.up[h] {
				t.Errorf("%s: runs %s, in rotation %v; want in service on %s", h, fk.current[h], fk.up[h], v)
			}
		}
		if named && !strings.Contains(strings.Join(lines, "\n"), h+" is LEFT DRAINED") {
			t.Errorf("%s drained but the verdict does not name it: %q", h, lines)
		}
	}
	count := func(s string) int {
		n := 0
		for _, l := range fk.log {
			if l == s {
				n++
			}
		}
		return n
	}
	if n := count("web1 migrate-cmd 1.1.0"); n != 1 {
		t.Errorf("pre-deploy migration ran %d times", n)
	}
	if n := count("web1 post-cmd 1.1.0"); n != w.post {
		t.Errorf("post-migration ran %d times, want %d", n, w.post)
	}
	return cellResult{exit: code, summary: describe(fk, res)}
}

// describe is the end state actually reached (fk locked by the caller).
func describe(fk *fakeFleet, res Result) string {
	byV := map[string][]string{}
	var parts []string
	for _, h := range []string{"web1", "web2", "web3"} {
		switch _, named := res.Summary.LeftDrained[h]; {
		case named:
			parts = append(parts, h+" LEFT DRAINED")
		case fk.up[h]:
			byV[fk.current[h]] = append(byV[fk.current[h]], h)
		default:
			parts = append(parts, h+" OUT OF ROTATION, NOT NAMED")
		}
	}
	for v, hs := range byV {
		if len(hs) == 3 {
			parts = append(parts, "all in service on "+v)
		} else {
			parts = append(parts, strings.Join(hs, ",")+" in service on "+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func TestFaultMatrix(t *testing.T) {
	results := map[plan.Action]map[fault]cellResult{}
	for _, ac := range matrixActions {
		results[ac.action] = map[fault]cellResult{}
		for _, f := range matrixFaults {
			t.Run(fmt.Sprintf("%s/%s", ac.action, strings.ReplaceAll(string(f), " ", "_")), func(t *testing.T) {
				results[ac.action][f] = runCell(t, ac.action, ac.line, f)
			})
		}
	}
	var b strings.Builder
	printMatrix(&b, results)
	t.Logf("fault matrix (exit code, end state of every host; fault on web2, web1 already upgraded, on_failure: rollback):\n%s", b.String())
}

func printMatrix(w io.Writer, results map[plan.Action]map[fault]cellResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "action")
	for _, f := range matrixFaults {
		fmt.Fprintf(tw, "\t%s", f)
	}
	fmt.Fprintln(tw)
	for _, ac := range matrixActions {
		fmt.Fprint(tw, ac.action)
		for _, f := range matrixFaults {
			c, ok := results[ac.action][f]
			if !ok {
				fmt.Fprint(tw, "\t(not run)")
				continue
			}
			fmt.Fprintf(tw, "\texit %d: %s", c.exit, c.summary)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
