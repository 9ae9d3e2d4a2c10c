package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// fixture is an inventory (fleet.example.yaml: web1..web5, migrate and
// post_migrate, canary gate), a journal directory and a fleet whose
// observed versions and lock the test sets.
type fixture struct {
	t        *testing.T
	env      *Env
	versions map[string]string
	lock     *rollout.LockInfo
	lockErr  error
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("../../fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := fleet.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, versions: map[string]string{}}
	for _, h := range inv.Hosts {
		f.versions[h.Name] = "1.3.2"
	}
	f.env = &Env{Inv: inv, JournalDir: filepath.Join(dir, "journal"), Owner: "op@box",
		ObserveFleet: func(context.Context, bool) []observe.Host {
			var out []observe.Host
			for _, h := range inv.Hosts {
				out = append(out, observe.Host{HostState: plan.HostState{Name: h.Name, Version: f.versions[h.Name], Reachable: true}})
			}
			return out
		},
		ReadLock:     func(context.Context) (*rollout.LockInfo, error) { return f.lock, f.lockErr },
		RemoteOutput: func(context.Context, string, string) (string, error) { return "", nil },
	}
	if err := os.MkdirAll(f.env.JournalDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

// upgrade is the plan 1.3.2 → 1.4.0 of the fixture's fleet.
func (f *fixture) upgrade() *plan.Plan {
	obs := Observation(f.env.ObserveFleet(context.Background(), false))
	p, err := plan.Build(f.env.Inv, obs, plan.Options{To: "1.4.0"})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// journalState writes a run of p into the journal: every step before the
// first of kind stop finished, that one started (the process died in it).
// stop "" finishes every step; paused/finished end the run so.
func (f *fixture) journalState(p *plan.Plan, stop plan.StepKind, end event.Outcome) string {
	id := journal.NewRunID(time.Now())
	w, err := journal.Create(f.env.JournalDir, id)
	if err != nil {
		f.t.Fatal(err)
	}
	bus := event.NewBus(id, nil, w)
	bus.Emit(event.Event{Type: event.RunStarted, Plan: p, Owner: "old@box"})
	for _, s := range p.Steps {
		bus.Emit(event.Event{Type: event.StepStarted, Step: s.ID, Host: s.Host})
		if s.Kind == stop {
			break
		}
		bus.Emit(event.Event{Type: event.StepFinished, Step: s.ID, Host: s.Host, Status: event.StatusOK})
		if s.Kind == plan.StepDeploy {
			f.versions[s.Host] = s.To
		}
	}
	if end != "" {
		bus.Emit(event.Event{Type: event.RunFinished, Outcome: end, Summary: &event.Summary{}})
	}
	if err := w.Close(); err != nil {
		f.t.Fatal(err)
	}
	return w.Path()
}

func (f *fixture) appendRaw(path, s string) {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(s); err != nil {
		f.t.Fatal(err)
	}
}

// deadLock is the lock as a killed process of run left it on this machine.
func deadLock(run string) *rollout.LockInfo {
	p := rollout.CurrentProcess()
	p.PID = 1<<22 - 7 // above pid_max's default: never a live process
	return &rollout.LockInfo{Owner: "old@box", RunID: run, Proc: p, Started: 1, LeaseUntil: 2, Now: 100}
}

func liveLock(run string) *rollout.LockInfo {
	return &rollout.LockInfo{Owner: "old@box", RunID: run, Proc: rollout.CurrentProcess(), Started: 1, LeaseUntil: 200, Now: 100}
}

// states are the journal states every flow is tried from.
var states = []struct {
	name string
	make func(f *fixture) string // returns the run id ("" when none)
}{
	{"none", func(*fixture) string { return "" }},
	{"finished", func(f *fixture) string {
		// The canary went in, then the operator aborted: finished, no
		// post-migrate.
		p := f.upgrade()
		path := f.journalState(p, plan.StepGate, event.OutcomeAborted)
		return runID(path)
	}},
	{"unfinished at lock", unfinishedAt(plan.StepLock)},
	{"unfinished at stage", unfinishedAt(plan.StepStage)},
	{"unfinished at migrate", unfinishedAt(plan.StepMigrate)},
	{"unfinished at deploy", unfinishedAt(plan.StepDeploy)},
	{"unfinished at gate", unfinishedAt(plan.StepGate)},
	{"unfinished at post-migrate", unfinishedAt(plan.StepPostMigrate)},
	{"unfinished at cleanup", unfinishedAt(plan.StepCleanup)},
	{"paused", func(f *fixture) string {
		return runID(f.journalState(f.upgrade(), plan.StepGate, event.OutcomePaused))
	}},
	{"torn last line", func(f *fixture) string {
		path := f.journalState(f.upgrade(), plan.StepGate, "")
		f.appendRaw(path, `{"v":1,"type":"step_fini`)
		return runID(path)
	}},
	{"unreadable", func(f *fixture) string {
		path := f.journalState(f.upgrade(), plan.StepGate, "")
		f.appendRaw(path, "not json\n"+`{"v":1,"type":"control"}`+"\n")
		return runID(path)
	}},
}

func unfinishedAt(k plan.StepKind) func(f *fixture) string {
	return func(f *fixture) string { return runID(f.journalState(f.upgrade(), k, "")) }
}

func runID(path string) string { return strings.TrimSuffix(filepath.Base(path), ".jsonl") }

// answer is what an operation said: an exit code, and a word of it.
type answer struct {
	code int
	want string // in the error, the Nothing text, or the plan's deploy hosts
}

func describe(pr *Prepared, err error) (int, string) {
	switch {
	case err != nil:
		return Code(err), err.Error()
	case pr.Nothing != "":
		return view.ExitOK, pr.Nothing
	case pr.Resume != nil:
		return view.ExitOK, "resume " + string(pr.Plan.Kind) + " " + strings.Join(pr.Plan.DeployHosts(), ",")
	case pr.Supersedes != nil:
		return view.ExitOK, "rollback of unfinished " + strings.Join(pr.Plan.DeployHosts(), ",")
	}
	return view.ExitOK, string(pr.Plan.Kind) + " " + strings.Join(pr.Plan.DeployHosts(), ",")
}

func TestEveryFlowFromEveryJournalState(t *testing.T) {
	ctx := context.Background()
	flows := []struct {
		name string
		op   func(e *Env) (*Prepared, error)
		want map[string]answer
	}{
		{"apply", func(e *Env) (*Prepared, error) { return e.PlanUpgrade(ctx, UpgradeOptions{To: "1.4.0"}) }, map[string]answer{
			"none":            {0, "upgrade web1,web2,web3,web4,web5"},
			"finished":        {0, "upgrade web2,web3,web4,web5"},
			"unreadable":      {1, ".jsonl:21: not an event"},
			"paused":          {4, "did not finish"},
			"torn last line":  {4, "did not finish"},
			"unfinished at *": {4, "did not finish: finish it with relctl resume"},
		}},
		{"rollback", func(e *Env) (*Prepared, error) { return e.PlanRollback(ctx) }, map[string]answer{
			"none":            {2, "no run to roll back"},
			"finished":        {0, "rollback web1"},
			"unreadable":      {1, ".jsonl:21: not an event"},
			"paused":          {2, "use relctl resume --rollback"},
			"torn last line":  {2, "use relctl resume --rollback"},
			"unfinished at *": {2, "use relctl resume --rollback"},
		}},
		{"downgrade", func(e *Env) (*Prepared, error) { return e.PlanDowngrade(ctx, "1.3.2", "500s") }, map[string]answer{
			"none":            {0, "nothing to do: every host runs 1.3.2"},
			"finished":        {0, "downgrade web1"},
			"unreadable":      {1, ".jsonl:21: not an event"},
			"paused":          {4, "did not finish"},
			"torn last line":  {4, "did not finish"},
			"unfinished at *": {4, "did not finish"},
		}},
		{"repair", func(e *Env) (*Prepared, error) { return e.PlanRepair(ctx, []string{"web2"}) }, map[string]answer{
			"none":            {0, "repair web2"},
			"finished":        {0, "repair web2"},
			"unreadable":      {1, ".jsonl:21: not an event"},
			"paused":          {4, "did not finish"},
			"torn last line":  {4, "did not finish"},
			"unfinished at *": {4, "did not finish"},
		}},
		{"apply --plan", func(e *Env) (*Prepared, error) {
			saved, err := e.PlanUpgrade(ctx, UpgradeOptions{To: "1.4.0", Preview: true})
			if err != nil {
				return nil, err
			}
			data, err := plan.MarshalJSONIndent(saved.Plan)
			if err != nil {
				return nil, err
			}
			return e.LoadPlan(ctx, data, "plan.json")
		}, map[string]answer{
			"none":            {0, "upgrade web1,web2,web3,web4,web5"},
			"finished":        {0, "upgrade web2,web3,web4,web5"},
			"unreadable":      {1, ".jsonl:21: not an event"},
			"paused":          {4, "did not finish"},
			"torn last line":  {4, "did not finish"},
			"unfinished at *": {4, "did not finish"},
		}},
		{"resume", func(e *Env) (*Prepared, error) { return e.PlanResume(ctx, false) }, map[string]answer{
			"none":            {0, "no unfinished run"},
			"finished":        {0, "no unfinished run"},
			"unreadable":      {1, ".jsonl:21: not an event"},
			"paused":          {0, "resume upgrade web1,web2,web3,web4,web5"},
			"torn last line":  {0, "resume upgrade web1,web2,web3,web4,web5"},
			"unfinished at *": {0, "resume upgrade web1,web2,web3,web4,web5"},
		}},
		{"resume --rollback", func(e *Env) (*Prepared, error) { return e.PlanResume(ctx, true) }, map[string]answer{
			"none":                       {0, "no unfinished run"},
			"finished":                   {0, "no unfinished run"},
			"unreadable":                 {1, ".jsonl:21: not an event"},
			"paused":                     {0, "rollback of unfinished web1"},
			"torn last line":             {0, "rollback of unfinished web1"},
			"unfinished at lock":         {0, "nothing to roll back"},
			"unfinished at stage":        {0, "nothing to roll back"},
			"unfinished at migrate":      {0, "nothing to roll back"},
			"unfinished at deploy":       {0, "rollback of unfinished web1"},
			"unfinished at gate":         {0, "rollback of unfinished web1"},
			"unfinished at post-migrate": {2, "past the point of no return"},
			"unfinished at cleanup":      {2, "past the point of no return"},
		}},
	}
	for _, fl := range flows {
		for _, st := range states {
			t.Run(fl.name+"/"+st.name, func(t *testing.T) {
				f := newFixture(t)
				st.make(f)
				want, ok := fl.want[st.name]
				if !ok {
					want = fl.want["unfinished at *"]
				}
				code, got := describe(fl.op(f.env))
				if code != want.code || !strings.Contains(got, want.want) {
					t.Errorf("exit %d %q; want exit %d and %q", code, got, want.code, want.want)
				}
			})
		}
	}
}

// An unreadable journal is named, file and line, never "no unfinished run".
func TestUnreadableJournalIsNamed(t *testing.T) {
	f := newFixture(t)
	path := f.journalState(f.upgrade(), plan.StepGate, "")
	f.appendRaw(path, "not json\n")
	_, err := f.env.PlanResume(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), path+":") {
		t.Fatalf("err %v; want it to name %s", err, path)
	}
}

// resume is refused (exit 4) while the run's process lives, and while
// another run holds the lock; a dead process's lock is taken over by the
// rollback; a lock that cannot be read stops resume.
func TestResumeAndTheLock(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		lock     func(run string) *rollout.LockInfo
		lockErr  error
		rollback bool
		code     int
		want     string
		takeOver bool
	}{
		{"alive", liveLock, nil, false, 4, "this process holds it", false},
		{"alive, rollback", liveLock, nil, true, 4, "resume refused while it runs", false},
		{"another run", func(string) *rollout.LockInfo { return liveLock("20260101T000000Z-other") }, nil, false, 4, "another run holds the lock", false},
		{"unreadable lock", func(string) *rollout.LockInfo { return nil }, errors.New("ssh: connection refused"), false, 1, "whether run", false},
		{"dead, resume", deadLock, nil, false, 0, "", false},
		{"dead, rollback", deadLock, nil, true, 0, "", true},
		{"free", func(string) *rollout.LockInfo { return nil }, nil, true, 0, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			id := runID(f.journalState(f.upgrade(), plan.StepGate, ""))
			f.lock, f.lockErr = c.lock(id), c.lockErr
			pr, err := f.env.PlanResume(ctx, c.rollback)
			if code := Code(err); code != c.code || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("exit %d, err %v; want exit %d and %q", code, err, c.code, c.want)
			}
			if err == nil && (pr.TakeOver != nil) != c.takeOver {
				t.Errorf("take over %v, want %v", pr.TakeOver, c.takeOver)
			}
		})
	}
}

// Refusing the confirmation changes nothing: planning the rollback of an
// unfinished run leaves it resumable. Settling a run with nothing to roll
// back closes it.
func TestRollbackOfUnfinishedChangesNothingUntilStarted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id := runID(f.journalState(f.upgrade(), plan.StepDeploy, ""))
	pr, err := f.env.PlanResume(ctx, true)
	if err != nil || pr.Supersedes == nil {
		t.Fatalf("%v %+v", err, pr)
	}
	r, err := journal.Unfinished(f.env.JournalDir)
	if err != nil || r == nil || r.ID != id {
		t.Fatalf("after planning the rollback the run is no longer resumable: %v %v", r, err)
	}

	g := newFixture(t)
	runID(g.journalState(g.upgrade(), plan.StepMigrate, ""))
	// What the migration wrapper recorded on its host: first a live
	// migration, then none (it never started).
	record := "pid=4242 alive=yes"
	g.env.RemoteOutput = func(_ context.Context, _, script string) (string, error) {
		if strings.Contains(script, "/.relctl/migrations/") {
			return record + "\n", nil
		}
		return "", nil
	}
	pr, err = g.env.PlanResume(ctx, true)
	if err != nil || pr.Settle == nil {
		t.Fatalf("%v %+v", err, pr)
	}
	// While the migration runs the run is not closed: the next run could
	// start a second one beside it.
	if err := g.env.Settle(ctx, pr); Code(err) != view.ExitLocked || !strings.Contains(fmt.Sprint(err), "still running on web1 (pid 4242)") {
		t.Fatalf("settle beside a running migration: exit %d, %v", Code(err), err)
	}
	if r, err := journal.Unfinished(g.env.JournalDir); err != nil || r == nil {
		t.Fatalf("the refused settle closed the run: %v, %v", r, err)
	}
	record = "none"
	if pr, err = g.env.PlanResume(ctx, true); err != nil || pr.Settle == nil {
		t.Fatalf("%v %+v", err, pr)
	}
	if err := g.env.Settle(ctx, pr); err != nil {
		t.Fatal(err)
	}
	if r, err := journal.Unfinished(g.env.JournalDir); err != nil || r != nil {
		t.Fatalf("after settling, unfinished = %v, %v", r, err)
	}
}

// A host whose step was in flight when the run died is in the rollback
// even though it still runs the old version: it may be drained or stopped.
func TestRollbackKeepsTheHostInFlight(t *testing.T) {
	f := newFixture(t)
	p := f.upgrade()
	f.journalState(p, plan.StepGate, "")
	// web2's deploy (second batch) started, not finished; it still runs 1.3.2.
	w, err := journal.Open(filepath.Join(f.env.JournalDir, mustLatest(t, f.env.JournalDir)+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus("x", nil, w)
	bus.Emit(event.Event{Type: event.StepFinished, Step: "gate/canary", Status: event.StatusOK})
	bus.Emit(event.Event{Type: event.StepStarted, Step: "deploy/web2", Host: "web2"})
	w.Close()
	pr, err := f.env.PlanResume(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pr.Plan.DeployHosts(), ","); got != "web2,web1" {
		t.Errorf("rollback hosts %s, want web2,web1", got)
	}
}

func mustLatest(t *testing.T, dir string) string {
	r, err := journal.Latest(dir)
	if err != nil || r == nil {
		t.Fatal(err)
	}
	return r.ID
}

// A version rebuilt under the same number is refused, never "nothing to
// do": the sha256 a host recorded for its release differs from the local
// artifact's.
func TestImmutableRelease(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		remote string // the host's releases/1.4.0/.relctl-sha256 ("" = none)
		same   bool   // remote is the local artifact's sha256
		code   int
		want   string
	}{
		{"rebuilt", "0000000000000000000000000000000000000000000000000000000000000000", false, 2,
			"1.4.0 on web1 differs from dist/shop-1.4.0.tar.gz: a release version is immutable — build 1.4.1"},
		{"same artifact", "", true, 0, "nothing to do: every host runs 1.4.0"},
		{"deployed by other means", "", false, 0, "nothing to do: every host runs 1.4.0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			dist := filepath.Join(filepath.Dir(f.env.Inv.File), "dist")
			if err := os.MkdirAll(dist, 0o700); err != nil {
				t.Fatal(err)
			}
			art := filepath.Join(dist, "shop-1.4.0.tar.gz")
			if err := os.WriteFile(art, []byte("release 1.4.0, rebuilt"), 0o600); err != nil {
				t.Fatal(err)
			}
			local, _ := SHA256File(art)
			remote := c.remote
			if c.same {
				remote = local
			}
			var asked []string
			f.env.RemoteOutput = func(_ context.Context, host, script string) (string, error) {
				if strings.Contains(script, "releases/1.4.0/.relctl-sha256") {
					asked = append(asked, host)
				}
				return remote + "\n", nil
			}
			for h := range f.versions {
				f.versions[h] = "1.4.0"
			}
			code, got := describe(f.env.PlanUpgrade(ctx, UpgradeOptions{To: "1.4.0"}))
			if code != c.code || !strings.Contains(got, c.want) {
				t.Fatalf("exit %d %q; want exit %d and %q", code, got, c.code, c.want)
			}
			if len(asked) != 5 {
				t.Errorf("read the recorded sha256 on %v, want every host", asked)
			}
		})
	}
}

// The rollback of a dead run that itself died before it held that run's
// lock is resumed as the rollback: it takes the original's lock over and
// closes the original once it holds it.
func TestResumeOfARollbackThatDiedBeforeTheLock(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	orig := runID(f.journalState(f.upgrade(), plan.StepGate, ""))
	pr, err := f.env.PlanResume(ctx, true)
	if err != nil || pr.Supersedes == nil {
		t.Fatalf("%v %+v", err, pr)
	}
	if pr.Plan.RollsBack != orig {
		t.Fatalf("rollback plan rolls back %q, want %q", pr.Plan.RollsBack, orig)
	}
	// The rollback run starts, and dies in its preflight.
	id := journal.NewRunID(time.Now().Add(time.Hour))
	w, err := journal.Create(f.env.JournalDir, id)
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus(id, nil, w)
	bus.Emit(event.Event{Type: event.RunStarted, Plan: pr.Plan, Owner: "op@box"})
	bus.Emit(event.Event{Type: event.StepStarted, Step: "preflight"})
	w.Close()
	f.lock = deadLock(orig)
	for _, rollback := range []bool{false, true} {
		pr, err := f.env.PlanResume(ctx, rollback)
		if err != nil {
			t.Fatal(err)
		}
		if pr.Resume == nil || pr.Resume.ID != id || pr.TakeOver == nil || pr.TakeOver.RunID != orig || pr.Supersedes == nil || pr.Supersedes.ID != orig {
			t.Fatalf("rollback %v: resume %v, take over %v, supersedes %v", rollback, pr.Resume, pr.TakeOver, pr.Supersedes)
		}
	}
	// While the original's process lives, it is refused.
	f.lock = liveLock(orig)
	if _, err := f.env.PlanResume(ctx, false); Code(err) != view.ExitLocked {
		t.Fatalf("with the original alive: %v", err)
	}
}

func TestNextPatch(t *testing.T) {
	for v, want := range map[string]string{"1.1.0": "1.1.1", "2.0.9": "2.0.10", "1.4.0-rc1": "1.4.1", "7": "8", "v1.x": "a new version"} {
		if got := nextPatch(v); got != want {
			t.Errorf("nextPatch(%s) = %s, want %s", v, got, want)
		}
	}
}
