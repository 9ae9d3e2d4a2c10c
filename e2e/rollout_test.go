package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
)

// migrationOrder checks the exactly-once, before/after promise against the
// journal's switch and enable times.
func migrationOrder(t *testing.T, s *stage, version string) {
	t.Helper()
	var pre, post []time.Time
	for _, m := range s.f.Migrations() {
		if m.Version != version {
			continue
		}
		if m.Phase == "pre" {
			pre = append(pre, m.Time)
		} else {
			post = append(post, m.Time)
		}
	}
	if len(pre) != 1 || len(post) != 1 {
		t.Fatalf("%s: pre-migrations %d, post-migrations %d; want exactly one each", version, len(pre), len(post))
	}
	var firstSwitch, lastEnable time.Time
	for _, e := range journalEvents(t, s) {
		if e.Type != event.ActionDone || e.Status != event.StatusOK {
			continue
		}
		if e.Action == "switch" && (firstSwitch.IsZero() || e.Time.Before(firstSwitch)) {
			firstSwitch = e.Time
		}
		if e.Action == "enable" && e.Time.After(lastEnable) {
			lastEnable = e.Time
		}
	}
	if !pre[0].Before(firstSwitch) {
		t.Errorf("pre-deploy migration at %s is not before the first switch at %s", pre[0], firstSwitch)
	}
	if !post[0].After(lastEnable) {
		t.Errorf("post-deploy migration at %s is not after the last host went back in at %s", post[0], lastEnable)
	}
}

func journalEvents(t *testing.T, s *stage) []event.Event {
	t.Helper()
	return readEvents(t, s.latestRun().Path)
}

func TestApplyUpgradesEveryHost(t *testing.T) {
	s := newStage(t, 5, "haproxy", "", nil)
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.1.0")
	migrationOrder(t, s, "1.1.0")
	if !strings.Contains(out, "outcome:\tsucceeded") || !strings.Contains(out, "upgraded:\tweb1, web2, web3, web4, web5") {
		t.Errorf("summary:\n%s", out)
	}
	// Each host's audit record names this run.
	code, hist, _ := s.relctl("history", "--json")
	r := s.latestRun()
	if code != 0 || strings.Count(hist, r.ID) != 5 {
		t.Errorf("history (exit %d) lacks a record per host for run %s:\n%s", code, r.ID, hist)
	}
	// status agrees.
	code, st, _ := s.relctl("status")
	if code != 0 || strings.Count(st, "1.1.0") < 5 || !strings.Contains(st, "lock: free") {
		t.Errorf("status (exit %d):\n%s", code, st)
	}
	// Past the point of no return, rollback is refused with the reason.
	code, _, errs = s.relctl("rollback", "--yes", "--plain")
	if code != 2 || !strings.Contains(errs, "point of no return") {
		t.Errorf("rollback after post-migrate: exit %d: %s", code, errs)
	}
}

func TestInterruptThenRollback(t *testing.T) {
	s := newStage(t, 4, "haproxy", "rollout:\n  batches: [1]\n  pause_after_canary: false\n  on_failure: rollback\n", nil)
	c, buf := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	s.waitJournal(func(e event.Event) bool { return e.Type == event.StepStarted && e.Step == "deploy/web2" }, 2*time.Minute)
	_ = c.Process.Signal(syscall.SIGINT)
	err := c.Wait()
	code := c.ProcessState.ExitCode()
	if code != 5 {
		t.Fatalf("interrupted apply: exit %d (%v)\n%s", code, err, buf.String())
	}
	v := s.versions()
	if v[0] != "1.1.0" || v[1] != "1.1.0" || v[2] != "1.0.0" || v[3] != "1.0.0" {
		t.Fatalf("after Ctrl-C during web2: versions %v (web2 must finish, web3 must not start)", v)
	}
	if !strings.Contains(buf.String(), "in service on 1.1.0") {
		t.Errorf("output:\n%s", buf.String())
	}
	code, out, errs := s.relctl("rollback", "--yes", "--plain")
	if code != 0 {
		t.Fatalf("rollback exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.0.0")
	if !strings.Contains(out, "rolled back:\tweb1, web2") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestResumeAfterSIGKILL(t *testing.T) {
	s := newStage(t, 4, "haproxy", "rollout:\n  batches: [1]\n  pause_after_canary: false\n  on_failure: rollback\n", nil)
	c, _ := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	s.waitJournal(func(e event.Event) bool {
		return e.Type == event.ActionStarted && e.Step == "deploy/web2" && e.Action == "start"
	}, 2*time.Minute)
	// Kill relctl mid-host: web2 is switched but not yet back in.
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	_ = c.Wait()
	run := s.latestRun()
	if !run.Resumable() {
		t.Fatal("the killed run is not resumable")
	}
	// A new apply on this machine is refused: the journal holds the
	// unfinished run, and says how to go on.
	code, _, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 4 || !strings.Contains(errs, "did not finish") || !strings.Contains(errs, run.ID) {
		t.Errorf("second apply: exit %d: %s", code, errs)
	}
	// So is another operator (another state directory) by the dead run's
	// live lease on the lock host.
	other := *s
	other.state = t.TempDir()
	code, _, errs = other.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 4 || !strings.Contains(errs, "held by") || !strings.Contains(errs, run.ID) {
		t.Errorf("other operator: exit %d: %s", code, errs)
	}
	code, out, errs := s.relctl("resume", "--yes", "--plain")
	if code != 0 {
		t.Fatalf("resume exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.1.0")
	migrationOrder(t, s, "1.1.0")
	// The journal and the hosts' history agree: one record per host, this
	// run, and one for the resume taking the dead process's lock over.
	code, hist, _ := s.relctl("history", "--json")
	if code != 0 || strings.Count(hist, `"run":"`+run.ID+`"`) != 5 || strings.Count(hist, `"outcome":"succeeded"`) != 4 || strings.Count(hist, `"kind":"lock-takeover"`) != 1 {
		t.Errorf("history:\n%s", hist)
	}
	if r := s.latestRun(); r.ID != run.ID || r.Resumable() || r.Outcome != event.OutcomeSucceeded {
		t.Errorf("journal after resume: id %s outcome %s", r.ID, r.Outcome)
	}
	code, lock, _ := s.relctl("lock")
	if code != 0 || !strings.HasPrefix(lock, "free") {
		t.Errorf("lock after resume: %s", lock)
	}
}

func TestSecondOperatorRefusedDuringRun(t *testing.T) {
	s := newStage(t, 3, "haproxy", "rollout:\n  batches: [1]\n  pause_after_canary: false\n  on_failure: rollback\n", nil)
	c, buf := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	s.waitJournal(func(e event.Event) bool { return e.Type == event.StepFinished && e.Step == "lock" }, time.Minute)
	// The second operator works from another machine: their own journal.
	other := *s
	other.state = t.TempDir()
	code, _, errs := other.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 4 || !strings.Contains(errs, "fleet is locked: held by") {
		t.Errorf("second operator: exit %d: %s", code, errs)
	}
	code, _, errs = other.relctl("lock", "break")
	if code != 4 || !strings.Contains(errs, "lease is live") {
		t.Errorf("lock break of a live lease: exit %d: %s", code, errs)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("first apply: %v\n%s", err, buf.String())
	}
	s.wantAll("1.1.0")
}

func TestChangedHostKeyStopsBeforeAnything(t *testing.T) {
	s := newStage(t, 3, "haproxy", "", nil)
	s.f.RotateHostKey(2)
	code, _, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code == 0 || !strings.Contains(errs, "web3") || !strings.Contains(errs, "host key mismatch") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	s.wantAll("1.0.0")
	if len(s.f.Migrations()) != 0 {
		t.Error("a migration ran")
	}
	if files := globJournals(s); len(files) != 0 {
		t.Errorf("a run started: %v", files)
	}
}
