package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/testkit/testfleet"
	"go.yaml.in/yaml/v3"
)

// The deploy user of these tests: a dedicated non-root account, so that the
// sudo rule the test writes never changes what other tests' "deploy" user
// may do.
const envsecUser = "relctldeploy"

// sudoersFile is the rule the tests write: the systemd-case line of
// fleet.example.yaml, for this user. sudo ignores files in sudoers.d whose
// name has a dot.
const sudoersFile = "/etc/sudoers.d/relctl-e2e-envsec"

// envsecStage starts 3 hosts behind HAProxy logged into as envsecUser,
// seeded with 1.0.0, with an inventory whose stop and start run as root
// through sudo -n, whose env carries a secret from relctl's environment
// (SHOP_SECRET from $RELCTL_E2E_SECRET) that the start command writes to
// <path>/secret-seen, and with a staging environment.
func envsecStage(t *testing.T, stopPrefix string) *stage {
	t.Helper()
	testfleet.Require(t, "haproxy")
	if _, err := exec.LookPath("sudo"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("sudo is not installed (.ci/run installs it); CI is set, so this is a failure, not a skip")
		}
		t.Skip("sudo is not installed")
	}
	f := testfleet.Start(t, testfleet.Options{Hosts: 3, Balancer: "haproxy", User: envsecUser})
	f.Seed("1.0.0", f.Artifact("1.0.0", nil))
	f.Artifact("1.1.0", nil)
	s := &stage{t: t, f: f, dir: t.TempDir()}
	s.fleetFile = filepath.Join(s.dir, "fleet.yaml")
	s.state = filepath.Join(s.dir, "state")
	extra := releasesTable + `env:
  SHOP_MODE: plain-value
  SHOP_SECRET: {from_env: RELCTL_E2E_SECRET}
environments:
  staging:
    env: {SHOP_MODE: staging-value}
    rollout: {batches: [1, 2], pause_after_canary: false, on_failure: rollback}
`
	s.writeInventory(extra, func(inv string) string {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(inv), &doc); err != nil {
			t.Fatal(err)
		}
		cmds := mapValue(t, doc.Content[0], "commands")
		for _, name := range []string{"stop", "start"} {
			n := mapValue(t, cmds, name)
			script := n.Value
			if name == "stop" {
				script = stopPrefix + script
			}
			if name == "start" {
				// What the start command's environment holds, for the test to
				// check: never printed.
				script = `printf '%s' "$SHOP_SECRET" > {{.Path}}/secret-seen && printf '%s' "$SHOP_MODE" > {{.Path}}/mode-seen && ` + script
			}
			*n = yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Value: "command"}, {Kind: yaml.ScalarNode, Value: script, Style: yaml.DoubleQuotedStyle},
				{Kind: yaml.ScalarNode, Value: "become"}, {Kind: yaml.MappingNode, Style: yaml.FlowStyle, Content: []*yaml.Node{
					{Kind: yaml.ScalarNode, Value: "method"}, {Kind: yaml.ScalarNode, Value: "sudo"},
					{Kind: yaml.ScalarNode, Value: "user"}, {Kind: yaml.ScalarNode, Value: "root"},
				}},
			}}
		}
		out, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	})
	return s
}

func mapValue(t *testing.T, m *yaml.Node, key string) *yaml.Node {
	t.Helper()
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	t.Fatalf("inventory lacks %s", key)
	return nil
}

// allowSudo writes the sudoers rule for envsecUser, checked by visudo, and
// removes it when the test ends.
func allowSudo(t *testing.T) {
	t.Helper()
	rule := envsecUser + " ALL=(root) NOPASSWD: /bin/sh\n"
	tmp := sudoersFile + "~" // ignored by sudo until renamed
	if err := os.WriteFile(tmp, []byte(rule), 0o440); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("visudo", "-cf", tmp).CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("visudo: %v %s", err, out)
	}
	if err := os.Rename(tmp, sudoersFile); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sudoersFile) })
}

// denySudo makes sure no rule lets envsecUser use sudo.
func denySudo(t *testing.T) {
	t.Helper()
	if err := os.Remove(sudoersFile); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// relctlEnv runs relctl with extra environment variables and returns its
// exit code, stdout and stderr.
func (s *stage) relctlEnv(env []string, args ...string) (int, string, string) {
	s.t.Helper()
	c := s.cmd(args...)
	c.Env = append(c.Env, env...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := c.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = c.Process.Kill()
		<-done
		s.t.Fatalf("relctl %v did not finish in 4m\n%s", args, errb.String())
	}
	s.t.Logf("relctl %s → exit %d", strings.Join(args, " "), c.ProcessState.ExitCode())
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

// psSampler polls `ps -eo args` until stopped, keeping every line that
// holds needle, and counting the samples taken.
type psSampler struct {
	mu      sync.Mutex
	hits    []string
	samples int
	stop    chan struct{}
	done    chan struct{}
}

func samplePS(needle string) *psSampler {
	p := &psSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			out, err := exec.Command("ps", "-eo", "args").Output()
			p.mu.Lock()
			if err == nil {
				p.samples++
				for _, l := range strings.Split(string(out), "\n") {
					if strings.Contains(l, needle) {
						p.hits = append(p.hits, l)
					}
				}
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *psSampler) finish() ([]string, int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits, p.samples
}

func canary(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "relctl-canary-" + hex.EncodeToString(b)
}

// TestSudoBecomeAndSecret: a non-root SSH user whose stop and start run as
// root through sudo -n (with the sudoers rule the test writes) upgrades
// every host in the staging environment; the secret reaches the start
// command's environment and the app's, and appears nowhere else: not in
// the journal, the --json events, stdout or stderr, `ps -eo args` sampled
// on the hosts during the run, or the hosts' relctl files.
func TestSudoBecomeAndSecret(t *testing.T) {
	s := envsecStage(t, "")
	allowSudo(t)
	secret := canary(t)

	// plan: resolves nothing, names the secret and the environment.
	code, out, errs := s.relctlEnv(nil, "plan", "-e", "staging", "--to", "1.1.0")
	if code != 0 || !strings.Contains(out, "shop [staging]: upgrade 1.0.0 → 1.1.0") || !strings.Contains(out, "SHOP_SECRET from_env") {
		t.Fatalf("plan exit %d\n%s\n%s", code, out, errs)
	}
	// ...and says why stop and start need /bin/sh under sudo here: the
	// env: values must reach them.
	for _, c := range []string{"stop", "start"} {
		if !strings.Contains(out, "commands."+c+" (") || !strings.Contains(out, "runs as root through /bin/sh under sudo because env: values must reach it") {
			t.Errorf("plan does not say commands.%s needs /bin/sh:\n%s", c, out)
		}
	}

	ps := samplePS(secret)
	code, out, errs = s.relctlEnv([]string{"RELCTL_E2E_SECRET=" + secret}, "apply", "-e", "staging", "--to", "1.1.0", "--yes", "--json")
	hits, samples := ps.finish()
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s\n%s", code, out, errs, s.f.Logs())
	}
	s.wantAll("1.1.0")
	for i, h := range s.f.Hosts {
		// The start command saw the secret and the staging value...
		if b, err := os.ReadFile(filepath.Join(h.Path, "secret-seen")); err != nil || string(b) != secret {
			t.Errorf("%s: secret-seen = %q, %v", h.Name, b, err)
		}
		if b, _ := os.ReadFile(filepath.Join(h.Path, "mode-seen")); string(b) != "staging-value" {
			t.Errorf("%s: mode-seen = %q, want the staging environment's value", h.Name, b)
		}
		// ...and the app it started runs as root (through sudo), with
		// the secret in its environment.
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s: no app serving", h.Name)
		}
		status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if !strings.Contains(string(status), "\nUid:\t0\t") {
			t.Errorf("%s: app pid %d does not run as root:\n%s", h.Name, pid, status)
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if !bytes.Contains(environ, []byte("SHOP_SECRET="+secret+"\x00")) {
			t.Errorf("%s: the app's environment lacks SHOP_SECRET", h.Name)
		}
		_ = i
	}
	// Nowhere else.
	if strings.Contains(out, secret) || strings.Contains(errs, secret) {
		t.Error("the secret is in relctl's stdout or stderr")
	}
	if !strings.Contains(out, `"type":"run_finished"`) {
		t.Errorf("no --json events on stdout:\n%s", out)
	}
	if len(hits) > 0 {
		t.Errorf("the secret is in a command line (ps -eo args, %d samples): %q", samples, hits)
	}
	if samples < 5 {
		t.Errorf("only %d ps samples during the run", samples)
	}
	t.Logf("ps -eo args sampled %d times during the run: no command line held the secret", samples)
	for _, j := range globJournals(s) {
		b, _ := os.ReadFile(j)
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("journal %s holds the secret", j)
		}
	}
	for _, h := range s.f.Hosts {
		_ = filepath.Walk(filepath.Join(h.Path, ".relctl"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s holds the secret", p)
				}
			}
			return nil
		})
	}
	// The journal records the environment.
	r := s.latestRun()
	var env string
	for _, e := range readEvents(t, r.Path) {
		if e.Type == event.RunStarted && e.Plan != nil {
			env = e.Plan.Environment
		}
	}
	if env != "staging" {
		t.Errorf("journal run_started plan environment = %q", env)
	}
}

// TestSudoRefusedAndSecretMissing: without a sudoers rule, preflight names
// the host, the command and why, and nothing is touched; without the
// secret, preflight names its key and source, and nothing is touched.
func TestSudoRefusedAndSecretMissing(t *testing.T) {
	s := envsecStage(t, "")
	denySudo(t)
	pids := map[string]int{}
	for _, h := range s.f.Hosts {
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s: no app serving", h.Name)
		}
		pids[h.Name] = pid
	}
	untouched := func(what string) {
		t.Helper()
		s.wantAll("1.0.0")
		for _, h := range s.f.Hosts {
			if pid, ok := demoapp.ServingPid(h.Path); !ok || pid != pids[h.Name] {
				t.Errorf("%s: %s: the app was restarted or stopped (pid %d, was %d)", what, h.Name, pid, pids[h.Name])
			}
			if _, err := os.Stat(filepath.Join(h.Path, "secret-seen")); err == nil {
				t.Errorf("%s: %s: the start command ran", what, h.Name)
			}
		}
		st, err := s.f.LB.ServerStatus()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range s.f.Hosts {
			if st[h.Name] != "UP" {
				t.Errorf("%s: %s is %s in HAProxy, want UP", what, h.Name, st[h.Name])
			}
		}
		code, out, _ := s.relctl("lock")
		if code != 0 || !strings.Contains(out, "free") {
			t.Errorf("%s: lock (exit %d): %s", what, code, out)
		}
	}

	secret := canary(t)
	code, out, errs := s.relctlEnv([]string{"RELCTL_E2E_SECRET=" + secret}, "apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 1 {
		t.Errorf("apply without sudo: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	for _, h := range s.f.Hosts {
		for _, c := range []string{"stop --dir", "start --dir"} {
			want := h.Name + ": sudo -n -u root -- "
			if !strings.Contains(errs+out, want) || !strings.Contains(errs+out, c) {
				t.Errorf("no refusal for %s %s:\n%s\n%s", h.Name, c, out, errs)
			}
		}
	}
	t.Logf("refused:\n%s", errs)
	if !strings.Contains(errs+out, "a password is required — allow it in sudoers") {
		t.Errorf("the refusal does not say why:\n%s\n%s", out, errs)
	}
	if strings.Contains(errs+out, secret) {
		t.Error("the secret is in relctl's output")
	}
	untouched("sudo refused")

	allowSudo(t)
	code, out, errs = s.relctlEnv(nil, "apply", "--to", "1.1.0", "--yes", "--plain")
	t.Logf("secret missing:\n%s", errs)
	if code != 1 || !strings.Contains(errs+out, "env.SHOP_SECRET (from_env RELCTL_E2E_SECRET): RELCTL_E2E_SECRET is not set in relctl's environment") {
		t.Errorf("apply without the secret: exit %d\n%s\n%s", code, out, errs)
	}
	untouched("secret missing")
}

// TestSudoBecomeTimeoutEndsTheCommand: a stop that hangs while it runs as
// root through sudo is ended at timeouts.stop: the TERM relctl sends the
// command's process group (as the SSH user, who may not signal root's
// processes) reaches everything the command started through the root
// shell's trap, nothing of it is left running, and the run rolls back with
// every host on its release and in rotation.
func TestSudoBecomeTimeoutEndsTheCommand(t *testing.T) {
	const marker = "31337" // sleep 31337: the hung part of the stop command
	s := envsecStage(t, "test {{.Host}} != web2 || sleep "+marker+"; ")
	allowSudo(t)
	extra := "timeouts: {stop: 3s}\n"
	inv, err := os.ReadFile(s.fleetFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.fleetFile, append(inv, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	sleeping := func() []string {
		var out []string
		// /proc/*/cmdline separates arguments with NULs: look for the
		// marker, then for the sleep process itself.
		for _, p := range liveProcessesMentioning(marker) {
			if strings.HasSuffix(p, " sleep "+marker+" ") {
				out = append(out, p)
			}
		}
		return out
	}
	code, out, errs := s.relctlEnv([]string{"RELCTL_E2E_SECRET=x"}, "apply", "-e", "staging", "--to", "1.1.0", "--yes", "--plain")
	if code != 3 {
		t.Errorf("apply exit %d, want 3 (rolled back)\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs+out, "web2") || !strings.Contains(errs+out, "timed out") && !strings.Contains(errs+out, "timeout") {
		t.Errorf("the failure does not name web2's timeout:\n%s\n%s", out, errs)
	}
	// Nothing of the hung command is left: poll, the TERM is asynchronous.
	deadline := time.Now().Add(30 * time.Second)
	for len(sleeping()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := sleeping(); len(left) > 0 {
		t.Errorf("the hung stop is still running as root: %q", left)
	}
	s.wantAll("1.0.0")
	if err := s.f.LB.WaitAllUp([]string{"web1", "web2", "web3"}, 20*time.Second); err != nil {
		t.Errorf("after the rollback: %v", err)
	}
}
