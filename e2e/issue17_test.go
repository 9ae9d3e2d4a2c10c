package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/testkit/testfleet"
	"go.yaml.in/yaml/v3"
)

// This test's own non-root deploy user and sudoers rule, so that a run of
// it beside the envsec tests (another go test process on the machine)
// never grants or takes away their sudo.
const (
	issue17User    = "relctlroles"
	issue17Sudoers = "/etc/sudoers.d/relctl-e2e-roles"
)

// allowSudoFor writes the systemd-case sudoers rule for user into file,
// checked by visudo, and removes it when the test ends.
func allowSudoFor(t *testing.T, user, file string) {
	t.Helper()
	tmp := file + "~" // ignored by sudo until renamed
	if err := os.WriteFile(tmp, []byte(user+" ALL=(root) NOPASSWD: /bin/sh\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("visudo", "-cf", tmp).CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("visudo: %v %s", err, out)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(file) })
}

// 16. Issue 17's whole fleet in one run from one inventory: 3 web hosts
// behind HAProxy and 2 workers with balancer: none (roles), in the staging
// environment (whose overlay sets the role order), a non-root deploy user
// whose commands run as root through sudo -n, and a secret that reaches
// every app's environment and appears nowhere else — under load, with no
// failed request.
func TestLoadIssue17WholeFleet(t *testing.T) {
	testfleet.Require(t, "haproxy")
	if _, err := exec.LookPath("sudo"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("sudo is not installed (.ci/run installs it); CI is set, so this is a failure, not a skip")
		}
		t.Skip("sudo is not installed")
	}
	f := testfleet.Start(t, testfleet.Options{Hosts: 5, Workers: 2, Balancer: "haproxy", User: issue17User})
	f.Seed("1.0.0", f.Artifact("1.0.0", nil))
	f.Artifact("1.1.0", nil)
	s := &stage{t: t, f: f, dir: t.TempDir()}
	s.fleetFile = filepath.Join(s.dir, "fleet.yaml")
	s.state = filepath.Join(s.dir, "state")
	s.writeInventory(releasesTable+`become: {method: sudo, user: root}
env:
  SHOP_SECRET: {from_env: RELCTL_E2E_SECRET}
environments:
  staging:
    rollout: {batches: [1, 2], pause_after_canary: false, on_failure: rollback, role_order: [web, worker]}
`, func(inv string) string {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(inv), &doc); err != nil {
			t.Fatal(err)
		}
		start := mapValue(t, mapValue(t, doc.Content[0], "commands"), "start")
		start.Value = `printf '%s' "$SHOP_SECRET" > {{.Path}}/secret-seen && ` + start.Value
		start.Style = yaml.DoubleQuotedStyle
		out, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	})
	allowSudoFor(t, issue17User, issue17Sudoers)
	secret := canary(t)

	code, out, errs := s.relctlEnv(nil, "plan", "-e", "staging", "--to", "1.1.0")
	if code != 0 || !strings.Contains(out, "shop [staging]") || !strings.Contains(out, "┄┄ role worker: 2 hosts, not behind the balancer") || !strings.Contains(out, "SHOP_SECRET from_env") {
		t.Fatalf("plan exit %d\n%s\n%s", code, out, errs)
	}
	l := startLoad(t, s, "25. issue 17: roles, staging, sudo, a secret, one run")
	ps := samplePS(secret)
	code, out, errs = s.relctlEnv([]string{"RELCTL_E2E_SECRET=" + secret}, "apply", "-e", "staging", "--to", "1.1.0", "--yes", "--json")
	hits, samples := ps.finish()
	l.stop(true)
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s\n%s", code, out, errs, s.f.Logs())
	}
	s.wantAll("1.1.0")
	migrationOrder(t, s, "1.1.0")
	for _, h := range s.f.Hosts {
		if b, err := os.ReadFile(filepath.Join(h.Path, "secret-seen")); err != nil || string(b) != secret {
			t.Errorf("%s: secret-seen = %q, %v", h.Name, b, err)
		}
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s: no app serving", h.Name)
		}
		status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if !strings.Contains(string(status), "\nUid:\t0\t") {
			t.Errorf("%s: app pid %d does not run as root (sudo)", h.Name, pid)
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if !bytes.Contains(environ, []byte("SHOP_SECRET="+secret+"\x00")) {
			t.Errorf("%s: the app's environment lacks SHOP_SECRET", h.Name)
		}
	}
	if strings.Contains(out, secret) || strings.Contains(errs, secret) || len(hits) > 0 {
		t.Errorf("the secret leaked: stdout/stderr, or %d command lines in %d ps samples", len(hits), samples)
	}
	for _, j := range globJournals(s) {
		if b, _ := os.ReadFile(j); bytes.Contains(b, []byte(secret)) {
			t.Errorf("journal %s holds the secret", j)
		}
	}
	locks := 0
	var env string
	for _, e := range journalEvents(t, s) {
		if strings.HasPrefix(e.Host, "work") && (e.Type == event.ActionStarted || e.Type == event.ActionDone) && balancerActions[string(e.Action)] {
			t.Errorf("worker %s: %s %s: a worker was touched in the balancer", e.Host, e.Type, e.Action)
		}
		if e.Type == event.StepFinished && e.Step == "lock" && e.Status == event.StatusOK {
			locks++
		}
		if e.Type == event.RunStarted && e.Plan != nil {
			env = e.Plan.Environment
		}
	}
	if locks != 1 || env != "staging" {
		t.Errorf("locks %d (want one for the fleet), environment %q", locks, env)
	}
}
