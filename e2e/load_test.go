package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/loadgen"
	"github.com/relctl/relctl/internal/event"
	"go.yaml.in/yaml/v3"
)

// figures collects every scenario's numbers; writeFigures rewrites the
// table after each one when $E2E_FIGURES names a file.
var figures struct {
	sync.Mutex
	rows []string
}

// load is steady traffic through the stage's balancer, bounded in count and
// time, with a no-deploy baseline measured first.
type load struct {
	t        *testing.T
	name     string
	baseline loadgen.Stats
	gen      *loadgen.Gen
}

const loadRate = 100 // requests/s

func startLoad(t *testing.T, s *stage, name string) *load {
	t.Helper()
	url := s.f.LB.Frontend + "/"
	base := runLoad(t, url, 2*time.Second)
	if !base.Clean() {
		t.Fatalf("baseline is not clean: %s", base)
	}
	g, err := loadgen.Start(context.Background(), loadgen.Options{URL: url, Concurrency: 4, Rate: loadRate, MaxRequests: 200000, MaxDuration: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop() })
	return &load{t: t, name: name, baseline: base, gen: g}
}

func runLoad(t *testing.T, url string, d time.Duration) loadgen.Stats {
	t.Helper()
	g, err := loadgen.Start(context.Background(), loadgen.Options{URL: url, Concurrency: 4, Rate: loadRate, MaxRequests: 100000, MaxDuration: d})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := g.Wait(context.Background())
	return st
}

// stop ends the load, prints the figures, and, when zeroFailures, fails the
// test on any non-2xx answer or error.
func (l *load) stop(zeroFailures bool) loadgen.Stats {
	l.t.Helper()
	st := l.gen.Stop()
	row := fmt.Sprintf("| %s | %d | %d | %d | %s / %s | %s / %s |", l.name, st.Requests, st.Non2xx, st.Errors,
		ms(st.P50), ms(st.P99), ms(l.baseline.P50), ms(l.baseline.P99))
	l.t.Logf("figures: requests %d, non-2xx %d, errors %d, p50 %s p99 %s (baseline p50 %s p99 %s)",
		st.Requests, st.Non2xx, st.Errors, ms(st.P50), ms(st.P99), ms(l.baseline.P50), ms(l.baseline.P99))
	figures.Lock()
	figures.rows = append(figures.rows, row)
	figures.Unlock()
	writeFigures(l.t)
	if zeroFailures && (st.Non2xx > 0 || st.Errors > 0) {
		l.t.Errorf("%d requests failed during %s: %v", st.Non2xx+st.Errors, l.name, st.FirstErrors)
	}
	if st.Requests < 50 {
		l.t.Errorf("only %d requests: the load did not run", st.Requests)
	}
	return st
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func writeFigures(t *testing.T) {
	path := os.Getenv("E2E_FIGURES")
	if path == "" {
		return
	}
	figures.Lock()
	defer figures.Unlock()
	body := "| scenario | requests | non-2xx | errors | p50 / p99 during | p50 / p99 baseline |\n|---|---|---|---|---|---|\n" + strings.Join(figures.rows, "\n") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Logf("figures: %v", err)
	}
}

// 1. Rolling upgrade under load, at 5 and 20 hosts, behind HAProxy and nginx.
func TestLoadRollingUpgrade(t *testing.T) {
	for _, c := range []struct {
		hosts int
		lb    string
	}{{5, "haproxy"}, {20, "haproxy"}, {5, "nginx"}} {
		t.Run(fmt.Sprintf("%d hosts %s", c.hosts, c.lb), func(t *testing.T) {
			s := newStage(t, c.hosts, c.lb, "", nil)
			l := startLoad(t, s, fmt.Sprintf("1. rolling upgrade, %d hosts, %s", c.hosts, c.lb))
			code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
			l.stop(true)
			if code != 0 {
				t.Fatalf("apply exit %d\n%s\n%s", code, out, errs)
			}
			s.wantAll("1.1.0")
			migrationOrder(t, s, "1.1.0")
		})
	}
}

// 2. Rollback mid-run, after the canary batch, under load.
func TestLoadRollbackMidRun(t *testing.T) {
	s := newStage(t, 5, "haproxy", "rollout:\n  batches: [1, 1]\n  pause_after_canary: false\n  on_failure: rollback\n", nil)
	l := startLoad(t, s, "2. rollback mid-run")
	c, buf := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	s.waitJournal(func(e event.Event) bool { return e.Type == event.StepFinished && e.Step == "deploy/web2" }, 2*time.Minute)
	_ = c.Process.Signal(syscall.SIGINT)
	_ = c.Wait()
	if code := c.ProcessState.ExitCode(); code != 5 {
		t.Fatalf("interrupted apply: exit %d\n%s", code, buf.String())
	}
	code, out, errs := s.relctl("rollback", "--yes", "--plain")
	l.stop(true)
	if code != 0 {
		t.Fatalf("rollback exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.0.0")
}

// 3. Across a required stop: 1.0.0 → 2.0.0 through 1.1.0, each hop's
// migrations in order.
func TestLoadRequiredStop(t *testing.T) {
	s := newStage(t, 5, "haproxy", "", nil)
	l := startLoad(t, s, "3. upgrade across a required stop")
	code, out, errs := s.relctl("apply", "--to", "2.0.0", "--yes", "--plain")
	l.stop(true)
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("2.0.0")
	var seq []string
	for _, m := range s.f.Migrations() {
		seq = append(seq, m.Phase+" "+m.Version)
	}
	if got := strings.Join(seq, ", "); got != "pre 1.1.0, post 1.1.0, pre 2.0.0, post 2.0.0" {
		t.Errorf("migrations ran as: %s", got)
	}
}

// 4. The new release fails its health check on the canary.
func TestLoadCanaryFailsHealth(t *testing.T) {
	s := newStage(t, 5, "haproxy", "", nil)
	s.f.Artifact("1.1.0", map[string]string{"fail_health": "true"})
	s.writeInventory(releasesTable+"health:\n  timeout: 4s\n  interval: 200ms\n  stable_for: 500ms\n", nil)
	l := startLoad(t, s, "4. canary fails its health check")
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	l.stop(true)
	if code != 3 {
		t.Fatalf("apply exit %d (want 3, rolled back)\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.0.0")
	if !strings.Contains(out, "rolled back:\tweb1") || strings.Contains(out, "LEFT DRAINED") {
		t.Errorf("summary:\n%s", out)
	}
	if st := serverStates(t, s); strings.Count(st, "UP") != 5 {
		t.Errorf("balancer after the run: %s", st)
	}
}

func serverStates(t *testing.T, s *stage) string {
	t.Helper()
	code, out, _ := s.relctl("status")
	if code != 0 {
		t.Errorf("status exit %d:\n%s", code, out)
	}
	return out
}

// 5. A pre-deploy migration fails: no host is touched, no server drained.
func TestMigrationFails(t *testing.T) {
	s := newStage(t, 3, "haproxy", "", nil)
	s.f.Artifact("1.1.0", map[string]string{"fail_migrate": "true"})
	l := startLoad(t, s, "5. pre-deploy migration fails")
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	l.stop(true)
	if code != 1 || !strings.Contains(errs, "migrate 1.1.0") {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.0.0")
	for _, e := range journalEvents(t, s) {
		if e.Type == event.ActionStarted && e.Action == "drain" {
			t.Errorf("%s was drained", e.Host)
		}
	}
}

// 6. A host's sshd is killed mid-switch: the run stops naming the host,
// reports it left drained; after sshd is back, resume completes.
func TestSSHDKilledMidSwitch(t *testing.T) {
	s := newStage(t, 4, "haproxy", "rollout:\n  batches: [1]\n  pause_after_canary: false\n  on_failure: pause\n", nil)
	l := startLoad(t, s, "6. sshd killed mid-switch, then resume")
	c, buf := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	s.waitJournal(func(e event.Event) bool {
		return e.Type == event.ActionStarted && e.Step == "deploy/web2" && e.Action == "switch"
	}, 2*time.Minute)
	s.f.StopSSHD(1)
	_ = c.Wait()
	code := c.ProcessState.ExitCode()
	out := buf.String()
	if code != 6 || !strings.Contains(out, "LEFT DRAINED:\tweb2") {
		t.Fatalf("apply exit %d (want 6, paused with web2 left drained)\n%s", code, out)
	}
	s.f.StartSSHD(1)
	rcode, rout, rerrs := s.relctl("resume", "--yes", "--plain")
	l.stop(true)
	if rcode != 0 {
		t.Fatalf("resume exit %d\n%s\n%s", rcode, rout, rerrs)
	}
	s.wantAll("1.1.0")
	migrationOrder(t, s, "1.1.0")
}

// 9. The balancer's admin socket is unreachable at preflight.
func TestBalancerUnreachable(t *testing.T) {
	s := newStage(t, 3, "haproxy", "", editNode(t, func(n *yaml.Node) { n.Value = "127.0.0.1:1" }, "balancer", "endpoints", "0", "tcp"))
	code, _, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 1 || !strings.Contains(errs, "balancer") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	s.wantAll("1.0.0")
	if len(s.f.Migrations()) != 0 {
		t.Error("a migration ran")
	}
}

// 11. Emergency downgrade under load.
func TestLoadEmergencyDowngrade(t *testing.T) {
	s := newStage(t, 6, "haproxy", "", nil)
	if code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain"); code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errs)
	}
	l := startLoad(t, s, "11. emergency downgrade")
	code, out, errs := s.relctl("downgrade", "--to", "1.0.0", "--reason", "checkout returns 500", "--yes", "--plain")
	l.stop(true)
	if code != 0 {
		t.Fatalf("downgrade exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.0.0")
	if !strings.Contains(errs, "EMERGENCY DOWNGRADE") {
		t.Errorf("the plan did not say what it is:\n%s", errs)
	}
	code, hist, _ := s.relctl("history", "--json")
	if code != 0 || !strings.Contains(hist, "checkout returns 500") {
		t.Errorf("the reason is not in the audit:\n%s", hist)
	}
}
