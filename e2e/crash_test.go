package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/view"
)

// crashRollout: 3 hosts one at a time, no canary pause, and 1.1.0's
// migrations each take 3 s, so that relctl can be killed inside one.
const crashRollout = "rollout:\n  batches: [1]\n  pause_after_canary: false\n  on_failure: rollback\n"

func newCrashStage(t *testing.T) *stage {
	s := newStage(t, 3, "haproxy", crashRollout, nil)
	s.f.Artifact("1.1.0", map[string]string{demoapp.ConfMigrateDelay: "3s"})
	return s
}

// migrations counts the runs of version's migration phase the app recorded.
func migrations(s *stage, version, phase string) int {
	n := 0
	for _, m := range s.f.Migrations() {
		if m.Version == version && m.Phase == phase {
			n++
		}
	}
	return n
}

// waitMigrationStarted waits until the migration wrapper on the lock host
// (web1) recorded the pid of the migration of step (it runs on the host).
func waitMigrationStarted(t *testing.T, s *stage, step string) {
	t.Helper()
	pattern := filepath.Join(s.f.Hosts[0].Path, ".relctl", "migrations", "*."+step, "pid")
	deadline := time.Now().Add(time.Minute)
	for {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no migration wrapper pid at %s", pattern)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killAt starts apply and SIGKILLs relctl (its process group) at a point.
func killAt(t *testing.T, s *stage, point string) string {
	t.Helper()
	c, _ := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	switch point {
	case "stage":
		s.waitJournal(func(e event.Event) bool { return e.Type == event.StepStarted && e.Step == "stage/web2" }, 2*time.Minute)
	case "migrate":
		s.waitJournal(func(e event.Event) bool { return e.Type == event.StepStarted && e.Step == "migrate" }, 2*time.Minute)
		waitMigrationStarted(t, s, "migrate")
	case "mid-switch":
		s.waitJournal(func(e event.Event) bool {
			return e.Type == event.ActionDone && e.Step == "deploy/web2" && e.Action == "switch"
		}, 2*time.Minute)
	case "post-migrate":
		s.waitJournal(func(e event.Event) bool { return e.Type == event.StepStarted && e.Step == "post-migrate" }, 2*time.Minute)
		waitMigrationStarted(t, s, "post-migrate")
	default:
		t.Fatalf("kill point %q", point)
	}
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	_ = c.Wait()
	run := s.latestRun()
	if !run.Resumable() {
		t.Fatalf("the run killed at %s is not resumable", point)
	}
	return run.ID
}

func lockFree(t *testing.T, s *stage) {
	t.Helper()
	code, out, errs := s.relctl("lock")
	if code != 0 || !strings.HasPrefix(out, "free") {
		t.Errorf("lock: exit %d: %s%s", code, out, errs)
	}
}

// eventually polls for the count of a migration (one still running on the
// host after relctl gave up on the run finishes on its own).
func eventually(t *testing.T, what string, want int, got func() int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for got() != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := got(); n != want {
		t.Errorf("%s: %d, want %d", what, n, want)
	}
}

// SIGKILL relctl at each step kind, then resume: every host on 1.1.0 and in
// rotation, each migration once (the one killed half-way is waited for,
// not started again), the lock free.
func TestCrashThenResume(t *testing.T) {
	for _, point := range []string{"stage", "migrate", "mid-switch", "post-migrate"} {
		t.Run(point, func(t *testing.T) {
			s := newCrashStage(t)
			id := killAt(t, s, point)
			if point == "stage" {
				// A kill mid-write leaves a torn last line: resume repairs
				// it and tells the operator.
				f, err := os.OpenFile(s.latestRun().Path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = f.WriteString(`{"v":1,"type":"step_fin`)
				f.Close()
			}
			code, out, errs := s.relctl("resume", "--yes", "--plain")
			if code != 0 {
				t.Fatalf("resume exit %d\n%s\n%s", code, out, errs)
			}
			if point == "stage" && !strings.Contains(errs, "repaired: dropped a torn last line") {
				t.Errorf("resume did not tell the journal's repair:\n%s", errs)
			}
			s.wantAll("1.1.0")
			inService(t, s)
			if pre, post := migrations(s, "1.1.0", "pre"), migrations(s, "1.1.0", "post"); pre != 1 || post != 1 {
				t.Errorf("migrations pre %d post %d, want 1 and 1", pre, post)
			}
			// The summary covers the whole run, hosts done before the kill too.
			if !strings.Contains(out, "upgraded:\tweb1, web2, web3") {
				t.Errorf("summary after resume:\n%s", out)
			}
			if point == "migrate" || point == "post-migrate" {
				if !strings.Contains(errs, "still running: waiting for it") && !strings.Contains(errs, "already ran in this run") {
					t.Errorf("resume did not say it waited for the running migration:\n%s", errs)
				}
			}
			if r := s.latestRun(); r.ID != id || r.Resumable() {
				t.Errorf("journal after resume: run %s resumable %v", r.ID, r.Resumable())
			}
			lockFree(t, s)
		})
	}
}

// SIGKILL relctl at each step kind, then resume --rollback: before any
// switch there is nothing to roll back (exit 0, the run closed, its lock
// freed); after a switch every host goes back to 1.0.0, in rotation, under
// the dead run's lock (taken over, audited with both run ids); past the
// post-deploy migration it is refused (exit 2) and resume still finishes.
func TestCrashThenResumeRollback(t *testing.T) {
	cases := []struct {
		point     string
		code      int
		want      string
		versionTo string
		pre, post int
	}{
		{"stage", 0, "nothing to roll back", "1.0.0", 0, 0},
		{"migrate", 0, "nothing to roll back", "1.0.0", 1, 0},
		{"mid-switch", 0, "rolled back:\tweb1, web2", "1.0.0", 1, 0},
		{"post-migrate", 2, "point of no return", "1.1.0", 1, 1},
	}
	for _, c := range cases {
		t.Run(c.point, func(t *testing.T) {
			s := newCrashStage(t)
			id := killAt(t, s, c.point)
			code, out, errs := s.relctl("resume", "--rollback", "--yes", "--plain")
			// Killed during the pre-deploy migration: while it still runs
			// on its host the run stays unfinished and keeps its lock
			// (exit 4, naming it); asked again once it has ended, the run
			// is closed.
			for deadline := time.Now().Add(2 * time.Minute); c.point == "migrate" && code == view.ExitLocked; {
				if !strings.Contains(errs, "still running on web1 (pid") || !strings.Contains(errs, "stays unfinished") {
					t.Fatalf("resume --rollback during the migration: exit %d\n%s\n%s", code, out, errs)
				}
				if r := s.latestRun(); r.ID != id || !r.Resumable() {
					t.Fatalf("the refused settle closed run %s", id)
				}
				if time.Now().After(deadline) {
					t.Fatalf("the migration never ended: %s", errs)
				}
				time.Sleep(200 * time.Millisecond)
				code, out, errs = s.relctl("resume", "--rollback", "--yes", "--plain")
			}
			if code != c.code || !strings.Contains(out+errs, c.want) {
				t.Fatalf("resume --rollback: exit %d, want %d and %q\n%s\n%s", code, c.code, c.want, out, errs)
			}
			if c.code == 2 {
				// Refused: nothing changed; the run is still resumable and
				// resume finishes it.
				if r := s.latestRun(); r.ID != id || !r.Resumable() {
					t.Fatalf("after the refused rollback the run is not resumable")
				}
				if code, out, errs := s.relctl("resume", "--yes", "--plain"); code != 0 {
					t.Fatalf("resume after the refused rollback: exit %d\n%s\n%s", code, out, errs)
				}
			}
			s.wantAll(c.versionTo)
			inService(t, s)
			eventually(t, "pre-deploy migrations", c.pre, func() int { return migrations(s, "1.1.0", "pre") })
			eventually(t, "post-deploy migrations", c.post, func() int { return migrations(s, "1.1.0", "post") })
			lockFree(t, s)
			// No unfinished run is left: resume says so.
			if code, out, _ := s.relctl("resume", "--yes", "--plain"); code != 0 || !strings.Contains(out, "no unfinished run") {
				t.Errorf("resume afterwards: exit %d: %s", code, out)
			}
			if c.point == "mid-switch" {
				code, hist, _ := s.relctl("history", "--json")
				if code != 0 || !strings.Contains(hist, `"kind":"lock-takeover"`) || !strings.Contains(hist, `"prev_run":"`+id+`"`) {
					t.Errorf("history lacks the takeover of run %s's lock:\n%s", id, hist)
				}
			}
		})
	}
}

// Refusing the rollback's confirmation (no --yes without a terminal)
// changes nothing: the run stays resumable and resume finishes it.
func TestRollbackNotConfirmedChangesNothing(t *testing.T) {
	s := newCrashStage(t)
	id := killAt(t, s, "mid-switch")
	code, _, errs := s.relctl("resume", "--rollback", "--plain")
	if code != 2 || !strings.Contains(errs, "--yes required") {
		t.Fatalf("resume --rollback without --yes: exit %d: %s", code, errs)
	}
	if r := s.latestRun(); r.ID != id || !r.Resumable() {
		t.Fatalf("the run is no longer resumable after a refused confirmation")
	}
	if code, out, errs := s.relctl("resume", "--yes", "--plain"); code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.1.0")
	lockFree(t, s)
}

// resume while the original relctl still runs is refused (exit 4), before
// the journal is touched; the original finishes alone, once.
func TestResumeRefusedWhileOriginalRuns(t *testing.T) {
	s := newCrashStage(t)
	c, buf := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	s.waitJournal(func(e event.Event) bool { return e.Type == event.StepStarted && e.Step == "migrate" }, 2*time.Minute)
	run := s.latestRun()
	code, _, errs := s.relctl("resume", "--yes", "--plain")
	if code != 4 || !strings.Contains(errs, "still running") || !strings.Contains(errs, run.ID) {
		t.Errorf("resume during the run: exit %d: %s", code, errs)
	}
	code, _, errs = s.relctl("resume", "--rollback", "--yes", "--plain")
	if code != 4 {
		t.Errorf("resume --rollback during the run: exit %d: %s", code, errs)
	}
	// status says the run is going on, not "unfinished".
	if _, st, _ := s.relctl("status"); !strings.Contains(st, "running: "+run.ID) {
		t.Errorf("status during the run:\n%s", st)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("the original run: %v\n%s", err, buf.String())
	}
	s.wantAll("1.1.0")
	if pre := migrations(s, "1.1.0", "pre"); pre != 1 {
		t.Errorf("pre-deploy migration ran %d times", pre)
	}
	finished := 0
	for _, e := range readEvents(t, run.Path) {
		if e.Type == event.RunFinished {
			finished++
		}
	}
	if finished != 1 {
		t.Errorf("the journal has %d run_finished records, want 1", finished)
	}
	lockFree(t, s)
}

// A saved plan is rebuilt from its inputs before it runs: with its migrate
// step deleted, its lock step deleted or its target changed it is refused
// (exit 2, naming the step), and nothing changes; unedited, it runs.
func TestEditedPlanFileIsRefused(t *testing.T) {
	s := newStage(t, 3, "haproxy", crashRollout, nil)
	file := filepath.Join(s.dir, "plan.json")
	if code, _, errs := s.relctl("plan", "--to", "1.1.0", "--format", "json", "-o", file); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(p map[string]any)) string {
		var p map[string]any
		if err := json.Unmarshal(orig, &p); err != nil {
			t.Fatal(err)
		}
		f(p)
		b, _ := json.Marshal(p)
		path := filepath.Join(s.dir, "edited.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	without := func(id string) func(p map[string]any) {
		return func(p map[string]any) {
			var keep []any
			for _, st := range p["steps"].([]any) {
				if st.(map[string]any)["id"] != id {
					keep = append(keep, st)
				}
			}
			p["steps"] = keep
		}
	}
	cases := []struct {
		name string
		edit func(p map[string]any)
		want string
	}{
		{"migrate deleted", without("migrate"), `"migrate" (migrate 1.1.0 on web1) when rebuilt`},
		{"lock deleted", without("lock"), `"lock" (lock the fleet (on web1)) when rebuilt`},
		{"target changed", func(p map[string]any) { p["to"] = "2.0.0" }, `to is "2.0.0" in the file, "1.1.0" when rebuilt`},
	}
	for _, c := range cases {
		code, out, errs := s.relctl("apply", "--plan", edit(c.edit), "--yes", "--plain")
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, want 2 and %q\n%s%s", c.name, code, c.want, out, errs)
		}
	}
	s.wantAll("1.0.0")
	if files, _ := filepath.Glob(filepath.Join(s.journalDir(), "*.jsonl")); len(files) != 0 {
		t.Errorf("refused plans wrote journals: %v", files)
	}
	code, out, errs := s.relctl("apply", "--plan", file, "--yes", "--plain")
	if code != 0 {
		t.Fatalf("the unedited plan: exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.1.0")
}

// A run paused after a failure (on_failure: pause, nobody at the keyboard)
// is rolled back by resume --rollback under its lock: web1, switched, goes
// back; web2, reverted by its own compensation, is not touched again.
// Resuming it instead (after the cause is fixed) finishes it.
func TestPausedRunResumedOrRolledBack(t *testing.T) {
	for _, rollback := range []bool{true, false} {
		name := "resume"
		if rollback {
			name = "resume --rollback"
		}
		t.Run(name, func(t *testing.T) {
			s := newStage(t, 3, "haproxy",
				"rollout:\n  batches: [1]\n  pause_after_canary: false\n  on_failure: pause\nhealth:\n  timeout: 3s\n  interval: 200ms\n  stable_for: 500ms\n",
				wrapCommand(t, "health", "if [ {{.Host}} = web2 ] && [ {{.Version}} = 1.1.0 ] && [ ! -f {{.Path}}/fixed ]; then exit 1; fi; "))
			code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
			if code != 6 || !strings.Contains(out, "paused") {
				t.Fatalf("apply: exit %d, want 6 (paused)\n%s\n%s", code, out, errs)
			}
			paused := s.latestRun()
			if got := s.versions(); got[0] != "1.1.0" || got[1] != "1.0.0" || got[2] != "1.0.0" {
				t.Fatalf("paused with versions %v", got)
			}
			if rollback {
				code, out, errs = s.relctl("resume", "--rollback", "--yes", "--plain")
				if code != 0 || !strings.Contains(out, "rolled back:\tweb1") {
					t.Fatalf("resume --rollback: exit %d\n%s\n%s", code, out, errs)
				}
				s.wantAll("1.0.0")
				if r := s.latestRun(); r.ID == paused.ID || r.Plan.Kind != "rollback" {
					t.Errorf("the rollback ran as %s (%s)", r.ID, r.Plan.Kind)
				}
			} else {
				// The operator fixed the cause on web2.
				if err := os.WriteFile(filepath.Join(s.f.Hosts[1].Path, "fixed"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				code, out, errs = s.relctl("resume", "--yes", "--plain")
				if code != 0 || !strings.Contains(out, "upgraded:\tweb1, web2, web3") {
					t.Fatalf("resume: exit %d\n%s\n%s", code, out, errs)
				}
				s.wantAll("1.1.0")
			}
			inService(t, s)
			lockFree(t, s)
			if code, out, _ := s.relctl("resume", "--yes", "--plain"); code != 0 || !strings.Contains(out, "no unfinished run") {
				t.Errorf("resume afterwards: exit %d: %s", code, out)
			}
		})
	}
}

// lock break refuses a live lease (exit 4), breaks it with --force, audited
// with the broken run's id; the dead run is then closed by resume
// --rollback (nothing switched yet), exit 0.
func TestLockBreakThenRollbackOfTheDeadRun(t *testing.T) {
	s := newCrashStage(t)
	id := killAt(t, s, "stage")
	code, _, errs := s.relctl("lock", "break")
	if code != 4 || !strings.Contains(errs, "lease is live") {
		t.Fatalf("lock break of a live lease: exit %d: %s", code, errs)
	}
	code, out, errs := s.relctl("lock", "break", "--force")
	if code != 0 || !strings.Contains(out, "broke the lock") || !strings.Contains(out, id) {
		t.Fatalf("lock break --force: exit %d: %s%s", code, out, errs)
	}
	lockFree(t, s)
	code, hist, _ := s.relctl("history", "--json")
	if code != 0 || !strings.Contains(hist, `"kind":"lock-break"`) || !strings.Contains(hist, `"prev_run":"`+id+`"`) {
		t.Errorf("history lacks the break of run %s's lock:\n%s", id, hist)
	}
	code, out, errs = s.relctl("resume", "--rollback", "--yes", "--plain")
	if code != 0 || !strings.Contains(out, "nothing to roll back") {
		t.Fatalf("resume --rollback: exit %d: %s%s", code, out, errs)
	}
	s.wantAll("1.0.0")
	inService(t, s)
	lockFree(t, s)
	if code, _, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain"); code != 0 {
		t.Fatalf("apply after the dead run was closed: exit %d: %s", code, errs)
	}
	s.wantAll("1.1.0")
}
