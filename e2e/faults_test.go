package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/testkit/testfleet"
)

// The executor's faults on real parts: OpenSSH sshd hosts, real HAProxy,
// the relctl binary, and steady load through the balancer.

// inService checks, from HAProxy itself, that every server but the named
// ones is UP, and that every named one is not.
func inService(t *testing.T, s *stage, notUp ...string) {
	t.Helper()
	if err := s.f.LB.WaitAllUp(serversBut(s, notUp), 20*time.Second); err != nil {
		st, _ := s.f.LB.ServerStatus()
		t.Errorf("balancer: %v (%v)", err, st)
	}
	st, err := s.f.LB.ServerStatus()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range notUp {
		if strings.HasPrefix(st[h], "UP") {
			t.Errorf("%s is %s in HAProxy, but relctl named it out of rotation", h, st[h])
		}
	}
}

func serversBut(s *stage, but []string) []string {
	var out []string
	for _, h := range s.f.Hosts {
		skip := false
		for _, b := range but {
			skip = skip || h.Name == b
		}
		if !skip {
			out = append(out, h.Name)
		}
	}
	return out
}

// (a) HAProxy is reloaded (a new process with -sf, as a config change or a
// certificate renewal does) while web2 is drained, under load. The reload
// forgets the drain; relctl re-checks right before stopping web2's app,
// drains it again, says so, and no request fails.
func TestHAProxyReloadWhileDrained(t *testing.T) {
	s := newStage(t, 3, "haproxy", "rollout:\n  batches: [1]\n  pause_after_canary: false\n  on_failure: rollback\n", nil)
	l := startLoad(t, s, "12. HAProxy reloaded while a host is drained")
	c, buf := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	// Keep web2 busy so that its drain waits: slow requests through the
	// balancer, sent once web1 is out of rotation, so round robin puts
	// them on web2 and web3 only.
	s.waitJournal(func(e event.Event) bool {
		return e.Type == event.ActionDone && e.Step == "deploy/web1" && e.Action == "wait-idle"
	}, 2*time.Minute)
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		var ws []chan struct{}
		for i := 0; i < 6; i++ {
			d := make(chan struct{})
			ws = append(ws, d)
			go func() {
				defer close(d)
				resp, err := http.Get(s.f.LB.Frontend + "/slow?ms=12000")
				if err == nil {
					resp.Body.Close()
				}
			}()
		}
		for _, d := range ws {
			<-d
		}
	}()
	s.waitJournal(func(e event.Event) bool {
		return e.Type == event.ActionStarted && e.Step == "deploy/web2" && e.Action == "drain"
	}, 2*time.Minute)
	// web2 is out of rotation now (its drain is waiting for the slow
	// requests): reload HAProxy.
	reloadHAProxy(t, s)
	if err := c.Wait(); err != nil && c.ProcessState.ExitCode() != 0 {
		t.Logf("apply: %v", err)
	}
	<-slowDone
	st := l.stop(true)
	out := buf.String()
	if code := c.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("apply exit %d\n%s", code, out)
	}
	s.wantAll("1.1.0")
	said := regexp.MustCompile(`web2\s+WARNING\s+.*(drained again|re-?drain|reload).*`).FindString(out)
	if said == "" {
		t.Errorf("relctl did not say it drained web2 again after the reload:\n%s", out)
	}
	t.Logf("relctl said: %s", said)
	inService(t, s)
	t.Logf("requests during the reload scenario: %d, failed %d", st.Requests, st.Non2xx+st.Errors)
}

// reloadHAProxy starts a new HAProxy from the same config with -sf <old
// pid>, as `systemctl reload` does; the test stops the new process itself.
func reloadHAProxy(t *testing.T, s *stage) {
	t.Helper()
	old := haproxyPIDs(s.f.LB.ConfigFile)
	if len(old) == 0 {
		t.Fatal("no haproxy process for this stage")
	}
	args := []string{"-f", s.f.LB.ConfigFile, "-db", "-sf"}
	for _, p := range old {
		args = append(args, strconv.Itoa(p))
	}
	cmd := exec.Command(testfleet.HAProxyPath, args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "haproxy-reloaded.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	// The reload is done when the new process answers on the admin socket
	// and the old ones have let go of their listeners.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := s.f.LB.Admin("show info")
		if err == nil && strings.Contains(out, fmt.Sprintf("Pid: %d", cmd.Process.Pid)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the reloaded HAProxy (pid %d) never answered", cmd.Process.Pid)
}

// haproxyPIDs lists the live haproxy processes started with config.
func haproxyPIDs(config string) []int {
	var out []int
	for _, l := range liveProcessesMentioning(config) {
		f := strings.Fields(l)
		if len(f) > 1 && strings.HasSuffix(f[1], "haproxy") {
			if pid, err := strconv.Atoi(f[0]); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// (b) web2's sshd dies while its app is being stopped, with on_failure:
// rollback: web2 cannot be reached to go back and is named LEFT DRAINED;
// every other switched host (web1) goes back; exit 6.
func TestSSHDDiesDuringStopRollsBackTheOthers(t *testing.T) {
	s := newStage(t, 3, "haproxy", "rollout:\n  batches: [1]\n  pause_after_canary: false\n  on_failure: rollback\n",
		wrapCommand(t, "stop", "sleep 3; "))
	l := startLoad(t, s, "13. sshd dies during stop, on_failure: rollback")
	c, buf := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	s.waitJournal(func(e event.Event) bool {
		return e.Type == event.ActionStarted && e.Step == "deploy/web2" && e.Action == "stop"
	}, 2*time.Minute)
	s.f.StopSSHD(1)
	_ = c.Wait()
	l.stop(true)
	out := buf.String()
	if code := c.ProcessState.ExitCode(); code != 6 {
		t.Fatalf("apply exit %d, want 6\n%s", code, out)
	}
	if !strings.Contains(out, "LEFT DRAINED:\tweb2") || !strings.Contains(out, "web2 is LEFT DRAINED") {
		t.Errorf("web2 not named:\n%s", out)
	}
	if got := s.versions(); got[0] != "1.0.0" || got[2] != "1.0.0" {
		t.Errorf("versions %v: web1 must be back on 1.0.0, web3 untouched", got)
	}
	if strings.Contains(out, "rollback/web2") {
		t.Errorf("web2 never switched but is in the rollback plan:\n%s", out)
	}
	inService(t, s, "web2")
	s.f.StartSSHD(1)
	if v := s.f.CurrentVersion(1); v != "1.0.0" {
		t.Errorf("web2 runs %s: it was switched", v)
	}
	// The next apply does not skip past the host left out: preflight
	// names it and the command that repairs it, and touches nothing.
	code, out2, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 1 || !strings.Contains(errs, "relctl repair web2") {
		t.Fatalf("apply with web2 left drained: exit %d\n%s\n%s", code, out2, errs)
	}
	s.wantAll("1.0.0")
	code, out2, errs = s.relctl("repair", "web2", "--yes", "--plain")
	if code != 0 {
		t.Fatalf("repair exit %d\n%s\n%s", code, out2, errs)
	}
	inService(t, s)
}

// (c) The new release's version check hangs, and nobody is at the
// keyboard: timeouts.version cuts it, web1 goes back by itself, the run
// ends rolled back, and no request fails.
func TestHungVersionCheckIsCutAndRolledBack(t *testing.T) {
	s := newStage(t, 3, "haproxy", "timeouts:\n  version: 3s\n",
		wrapCommand(t, "version", "if [ {{.Version}} = 1.1.0 ]; then sleep 600; fi; "))
	l := startLoad(t, s, "14. hung version check, deadline, rollback")
	start := time.Now()
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	took := time.Since(start)
	l.stop(true)
	if code != 3 {
		t.Fatalf("apply exit %d, want 3 (rolled back)\n%s\n%s", code, out, errs)
	}
	if took > 2*time.Minute {
		t.Errorf("the run took %s", took)
	}
	if !strings.Contains(errs, "version") || !strings.Contains(errs, "timed out") && !strings.Contains(errs, "timeout") {
		t.Errorf("the deadline is not what ended the check:\n%s", errs)
	}
	s.wantAll("1.0.0")
	inService(t, s)
}

// (d) Ctrl-C twice during a command that hangs with no deadline in sight:
// relctl exits within 30 s of the second, with the journal settled, the
// lock released or stated, and every host not in service named.
func TestCtrlCTwiceDuringAHungCommand(t *testing.T) {
	s := newStage(t, 3, "haproxy", "timeouts:\n  version: 20m\n",
		wrapCommand(t, "version", "if [ {{.Version}} = 1.1.0 ]; then sleep 1200; fi; "))
	l := startLoad(t, s, "15. Ctrl-C twice during a hung command")
	c, buf := s.background("apply", "--to", "1.1.0", "--yes", "--plain")
	s.waitJournal(func(e event.Event) bool {
		return e.Type == event.ActionStarted && e.Step == "deploy/web1" && e.Action == "version"
	}, 2*time.Minute)
	_ = c.Process.Signal(syscall.SIGINT)
	// The first interrupt finishes the host in flight: the version check
	// still hangs, so nothing ends by itself.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(buf.String(), "interrupt again to force") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(buf.String(), "interrupt again to force") {
		t.Fatalf("the first Ctrl-C was not acknowledged:\n%s", buf.String())
	}
	_ = c.Process.Signal(syscall.SIGINT)
	forced := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("relctl still running 30s after the second Ctrl-C\n%s", buf.String())
	}
	t.Logf("exited %s after the second Ctrl-C", time.Since(forced).Round(time.Millisecond))
	l.stop(false)
	out := buf.String()
	code := c.ProcessState.ExitCode()
	r := s.latestRun()
	if !r.Finished {
		t.Errorf("journal not settled: no run_finished")
	}
	if !strings.Contains(out, "forced") {
		t.Errorf("the summary does not say the run was forced:\n%s", out)
	}
	// Nothing hidden: web1 is in service on a version, or named.
	named := strings.Contains(out, "web1 is LEFT DRAINED")
	switch {
	case code == 6 && named:
		inService(t, s, "web1")
	case code == 5 && !named:
		inService(t, s)
		if v := s.f.CurrentVersion(0); v != "1.0.0" {
			t.Errorf("web1 runs %s after its forced revert", v)
		}
	default:
		t.Fatalf("exit %d (web1 named: %v)\n%s", code, named, out)
	}
	if lc, lout, _ := s.relctl("lock"); lc != 0 || !strings.Contains(lout, "free") && !strings.Contains(out, "lock: still held") {
		t.Errorf("the lock is neither released nor stated: %s\n%s", lout, out)
	}
	if strings.Contains(s.f.CurrentVersion(1)+s.f.CurrentVersion(2), "1.1.0") {
		t.Error("a host was started after the interrupt")
	}
}

// (e) One host fails its health check within max_failed_hosts: the run
// finishes, but the fleet is on two versions: exit 7 "partially
// upgraded", web2 named, and post-migrate does not run.
func TestBudgetedHealthFailureIsPartial(t *testing.T) {
	s := newStage(t, 3, "haproxy",
		"rollout:\n  batches: [1]\n  pause_after_canary: false\n  max_failed_hosts: 1\n  on_failure: rollback\nhealth:\n  timeout: 3s\n  interval: 200ms\n  stable_for: 500ms\n",
		wrapCommand(t, "health", "if [ {{.Host}} = web2 ] && [ {{.Version}} = 1.1.0 ]; then exit 1; fi; "))
	l := startLoad(t, s, "16. budgeted health failure")
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	l.stop(true)
	if code == 0 || code != 7 {
		t.Fatalf("apply exit %d, want 7 (partially upgraded)\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "partially upgraded") || !strings.Contains(out, "web2 on 1.0.0") {
		t.Errorf("web2 not named:\n%s", out)
	}
	if got := s.versions(); got[0] != "1.1.0" || got[1] != "1.0.0" || got[2] != "1.1.0" {
		t.Errorf("versions %v", got)
	}
	for _, m := range s.f.Migrations() {
		if m.Phase == "post" {
			t.Errorf("post-migrate ran on a mixed fleet: %+v", m)
		}
	}
	inService(t, s)
}
