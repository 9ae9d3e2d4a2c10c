package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/testkit/testfleet"
)

// newRolesStage is a real fleet of 3 web hosts behind HAProxy and 2
// workers (work1, work2) outside it, all on 1.0.0, in one inventory:
// role web, and role worker with balancer: none.
func newRolesStage(t *testing.T, extra string) *stage {
	t.Helper()
	testfleet.Require(t, "haproxy")
	f := testfleet.Start(t, testfleet.Options{Hosts: 5, Workers: 2, Balancer: "haproxy"})
	f.Seed("1.0.0", f.Artifact("1.0.0", nil))
	f.Artifact("1.1.0", nil)
	s := &stage{t: t, f: f, dir: t.TempDir()}
	s.fleetFile = filepath.Join(s.dir, "fleet.yaml")
	s.state = filepath.Join(s.dir, "state")
	s.writeInventory(releasesTable+extra, nil)
	return s
}

// balancerActions are the per-host actions that talk to the balancer.
var balancerActions = map[string]bool{"drain": true, "wait-idle": true, "enable": true, "verify": true}

// 13. Roles: 3 web hosts behind HAProxy and 2 workers with balancer: none,
// upgraded in one run from one inventory under load: zero failed
// requests, every host on the target, the workers never touched in
// HAProxy, migrations once for the fleet around both roles.
func TestLoadRolesWebAndWorkers(t *testing.T) {
	s := newRolesStage(t, "rollout:\n  batches: [1, 2]\n  pause_after_canary: false\n  role_order: [web, worker]\n")
	code, out, errs := s.relctl("plan", "--to", "1.1.0")
	if code != 0 {
		t.Fatalf("plan exit %d\n%s", code, errs)
	}
	for _, want := range []string{"┄┄ role web: 3 hosts, behind the balancer ┄┄", "┄┄ role worker: 2 hosts, not behind the balancer", "Each worker host: stop → switch current → start"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	l := startLoad(t, s, "22. roles: 3 web behind HAProxy + 2 workers, one run")
	code, out, errs = s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	l.stop(true)
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.1.0")
	migrationOrder(t, s, "1.1.0")
	evs := journalEvents(t, s)
	var lastWorkerDone, post, lastWebDone time.Time
	locks := 0
	for _, e := range evs {
		worker := strings.HasPrefix(e.Host, "work")
		if worker && (e.Type == event.ActionStarted || e.Type == event.ActionDone) && balancerActions[string(e.Action)] {
			t.Errorf("worker %s: %s %s: a worker was touched in the balancer", e.Host, e.Type, e.Action)
		}
		if e.Type == event.StepFinished && e.Status == event.StatusOK {
			switch {
			case strings.HasPrefix(e.Step, "deploy/work"):
				lastWorkerDone = e.Time
			case strings.HasPrefix(e.Step, "deploy/web"):
				lastWebDone = e.Time
			case e.Step == "post-migrate":
				post = e.Time
			case e.Step == "lock":
				locks++
			}
		}
	}
	if lastWorkerDone.IsZero() || post.IsZero() || post.Before(lastWorkerDone) || lastWorkerDone.Before(lastWebDone) {
		t.Errorf("order: web done %s, workers done %s, post-migrate %s: want web, then workers, then post-migrate", lastWebDone, lastWorkerDone, post)
	}
	if locks != 1 {
		t.Errorf("%d locks, want one for the fleet", locks)
	}
	if !strings.Contains(out, "upgraded:\tweb1, web2, web3, work1, work2") {
		t.Errorf("summary:\n%s", out)
	}
	// What HAProxy says after the run: the 3 web servers UP; the workers
	// are in no backend, and status says so.
	code, st, _ := s.relctl("status")
	if code != 0 {
		t.Fatalf("status exit %d\n%s", code, st)
	}
	t.Logf("status:\n%s", st)
	rows := 0
	for _, line := range strings.Split(st, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "w") {
			continue
		}
		rows++
		switch {
		case strings.HasPrefix(f[0], "web") && (f[1] != "1.1.0" || !strings.HasPrefix(f[3], "UP")):
			t.Errorf("web host after the run: %q", line)
		case strings.HasPrefix(f[0], "work") && (f[1] != "1.1.0" || f[3] != "(none)"):
			t.Errorf("worker after the run: %q", line)
		}
	}
	if rows != 5 {
		t.Errorf("status shows %d hosts, want 5:\n%s", rows, st)
	}
	// status --roles worker: the workers only.
	code, st, _ = s.relctl("status", "--roles", "worker")
	if code != 0 || strings.Contains(st, "web1") || !strings.Contains(st, "work1") || !strings.Contains(st, "work2") {
		t.Errorf("status --roles worker: exit %d\n%s", code, st)
	}
}

// 14. A selection run (--hosts web1,web3) under load: only those hosts
// change, post-migrate is refused while the rest still runs 1.0.0 (exit 7,
// naming them and how to finish); the run without --hosts then finishes
// the fleet and runs post-migrate once.
func TestLoadSelectionHoldsPostMigrate(t *testing.T) {
	s := newRolesStage(t, "rollout:\n  batches: [1, 2]\n  pause_after_canary: false\n")
	// Unknown names are refused before anything is touched.
	if code, _, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain", "--hosts", "web1,web9"); code != 2 || !strings.Contains(errs, `"web9" is not a host`) {
		t.Fatalf("unknown host: exit %d: %s", code, errs)
	}
	l := startLoad(t, s, "23. selection --hosts web1,web3, post-migrate held")
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain", "--hosts", "web1,web3")
	l.stop(true)
	const held = "post-migrate skipped: web2, work1, work2 are not selected and still run 1.0.0 — run again without --hosts to finish"
	if code != 7 || !strings.Contains(out+errs, held) {
		t.Fatalf("selected apply: exit %d (want 7, partially upgraded), want %q\n%s\n%s", code, held, out, errs)
	}
	for i, h := range s.f.Hosts {
		want := "1.0.0"
		if h.Name == "web1" || h.Name == "web3" {
			want = "1.1.0"
		}
		if got := s.f.CurrentVersion(i); got != want {
			t.Errorf("%s runs %s, want %s", h.Name, got, want)
		}
		if want == "1.0.0" {
			// Untouched: not even staged.
			if _, err := os.Stat(filepath.Join(h.Path, "releases", "1.1.0")); err == nil {
				t.Errorf("%s was staged though not selected", h.Name)
			}
		}
	}
	var seq []string
	for _, m := range s.f.Migrations() {
		seq = append(seq, m.Phase+" "+m.Version)
	}
	if got := strings.Join(seq, ", "); got != "pre 1.1.0" {
		t.Errorf("migrations after the selected run: %s (want only the pre-deploy one)", got)
	}
	for _, e := range journalEvents(t, s) {
		if e.Host == "web2" || e.Host == "work1" || e.Host == "work2" {
			if e.Type == event.ActionStarted || e.Type == event.StepStarted {
				t.Errorf("left-out host touched: %s %s %s", e.Type, e.Step, e.Action)
			}
		}
	}
	// The whole fleet now: the selected hosts are skipped, the rest goes,
	// and post-migrate runs once the fleet is whole.
	l = startLoad(t, s, "23b. the rest of the fleet, post-migrate")
	code, out, errs = s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	l.stop(true)
	if code != 0 {
		t.Fatalf("finishing apply: exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.1.0")
	seq = nil
	for _, m := range s.f.Migrations() {
		seq = append(seq, m.Phase+" "+m.Version)
	}
	if got := strings.Join(seq, ", "); got != "pre 1.1.0, pre 1.1.0, post 1.1.0" {
		t.Errorf("migrations: %s", got)
	}
}

// 15. A worker fails its health check (its role's own health command
// refuses 1.1.0) after the web hosts went over, under load: the worker is
// taken back without any balancer call, on_failure: rollback sends the web
// hosts back through HAProxy, no request fails, exit 3.
func TestLoadRolesWorkerFailsRollsBack(t *testing.T) {
	s := newRolesStage(t, `rollout:
  batches: [1, 2]
  pause_after_canary: false
  on_failure: rollback
  role_order: [web, worker]
roles:
  web:
    rollout: {batches: [1, 2]}
  worker:
    balancer: none
    commands:
      health: test {{.Version}} != 1.1.0 && {{.Path}}/current/bin/demoapp check --url http://{{.Vars.listen}} --version {{.Version}}
    health: {timeout: 3s, interval: 200ms, stable_for: 0s}
`)
	l := startLoad(t, s, "24. roles: a worker fails its health check, the run rolls back")
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	l.stop(true)
	if code != 3 {
		t.Fatalf("apply exit %d (want 3, rolled back)\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.0.0")
	var failed []string
	for _, e := range journalEvents(t, s) {
		if strings.HasPrefix(e.Host, "work") && (e.Type == event.ActionStarted || e.Type == event.ActionDone) &&
			(balancerActions[string(e.Action)] || balancerActions[strings.TrimPrefix(string(e.Action), "undo-")]) {
			t.Errorf("worker %s: %s %s: a worker was touched in the balancer", e.Host, e.Type, e.Action)
		}
		if e.Type == event.ActionDone && e.Status == event.StatusFailed {
			failed = append(failed, e.Host+" "+string(e.Action))
		}
	}
	if len(failed) != 1 || failed[0] != "work1 health" {
		t.Errorf("failed actions %v, want only work1's health", failed)
	}
	if strings.Contains(out, "LEFT DRAINED") {
		t.Errorf("summary:\n%s", out)
	}
	for _, m := range s.f.Migrations() {
		if m.Phase == "post" {
			t.Errorf("post-migrate ran: %+v", m)
		}
	}
	if st := serverStates(t, s); strings.Count(st, "UP") != 3 || strings.Count(st, "(none)") != 2 {
		t.Errorf("status after the run:\n%s", st)
	}
}
