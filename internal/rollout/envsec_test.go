package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
)

// sudoFake plays sudo in front of the fake fleet: it answers preflight's
// `sudo -n -l` checks (refusing what refuse names, "host command"), and
// unwraps become commands for the fake after checking that their
// environment crosses sudo on stdin. It records every command it saw.
type sudoFake struct {
	*fakeFleet
	t       *testing.T
	refuse  map[string]string // "web2 stop-cmd" → sudo's answer
	missing bool              // sudo not installed
	mu      sync.Mutex
	seen    []remote.Command
	hosts   []string
}

var (
	sudoCheckRe = regexp.MustCompile(`sudo -n -l -u root -- /bin/sh -c .* relctl-become (\S+) 2>&1 </dev/null\); then echo "relctl-sudo:(\w+) (\d+) ok"`)
	becomeRe    = regexp.MustCompile(`^printf '%s\\n' "\$\{RELCTL_BECOME_ENV-\}" \| sudo -n -u root -- /bin/sh -c .* relctl-become (\S+)$`)
)

func (s *sudoFake) Run(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	s.mu.Lock()
	s.seen = append(s.seen, c)
	s.hosts = append(s.hosts, host)
	s.mu.Unlock()
	if strings.Contains(c.Script, "sudo -n -l") {
		var out []string
		for _, m := range sudoCheckRe.FindAllStringSubmatch(c.Script, -1) {
			if s.missing {
				out = []string{"relctl-sudo:" + m[2] + " missing"}
				break
			}
			cmd := strings.Trim(m[1], "'")
			if why, ok := s.refuse[host+" "+cmd]; ok {
				out = append(out, fmt.Sprintf("relctl-sudo:%s %s fail 1 %s", m[2], m[3], why))
			} else {
				out = append(out, fmt.Sprintf("relctl-sudo:%s %s ok", m[2], m[3]))
			}
		}
		if len(out) == 0 {
			s.t.Errorf("sudo check without checks: %q", c.Script)
		}
		for _, l := range out {
			c.Stdout(l)
		}
		return remote.Result{}, nil
	}
	if m := becomeRe.FindStringSubmatch(c.Script); m != nil {
		exports := c.Env[fleet.BecomeEnvVar]
		for k, v := range c.Env {
			if k != fleet.BecomeEnvVar && !strings.Contains(exports, "export "+k+"=") {
				s.t.Errorf("%s: %s does not cross sudo (exports %q)", host, k, exports)
			}
			_ = v
		}
		c.Script = strings.Trim(m[1], "'")
	}
	return s.fakeFleet.Run(ctx, host, c)
}

const envsecInventory = `become: {method: sudo, user: root}
env:
  SHOP_MODE: plain
  SHOP_SECRET: {from_env: RELCTL_UNIT_SECRET}
commands: {stop: stop-cmd, start: start-cmd, health: {command: health-cmd, become: {method: none}}, migrate: {command: migrate-cmd, become: {method: none}}, post_migrate: {command: post-cmd, become: {method: none}}}`

func envsecHarness(t *testing.T) (*harness, *sudoFake) {
	h := newHarnessText(t, strings.Replace(fmt.Sprintf(testInventory, envsecInventory),
		"commands: {stop: stop-cmd, start: start-cmd, health: health-cmd, migrate: migrate-cmd, post_migrate: post-cmd}\n", "", 1))
	return h, &sudoFake{fakeFleet: h.fake, t: t, refuse: map[string]string{}}
}

// runWith runs to with hosts in front of the fake fleet.
func (h *harness) runWith(t *testing.T, hosts Hosts, to string) Result {
	t.Helper()
	p := h.plan(t, to)
	bus := event.NewBus("run1", nil, event.SinkFunc(func(e event.Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}))
	arts := map[string]Artifact{}
	for _, hop := range p.Hops {
		arts[hop.To] = Artifact{Path: "/dist/shop-" + hop.To + ".tar.gz", SHA256: "abc"}
	}
	return New(Config{Inventory: h.inv, Plan: p, Hosts: hosts, Balancer: h.fake, Bus: bus, Artifacts: arts, RunID: "run1", Owner: "me@here"}).Run(context.Background())
}

// TestBecomeAndSecretsInARun: become commands run through sudo with the
// environment (secret included) on stdin; relctl's own scripts get no
// secret; no event carries the secret's value.
func TestBecomeAndSecretsInARun(t *testing.T) {
	const secret = "unit-canary-7f3a9c"
	t.Setenv("RELCTL_UNIT_SECRET", secret)
	h, sf := envsecHarness(t)
	res := h.runWith(t, sf, "1.1.0")
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v\n%s", res.Outcome, res.Err, strings.Join(h.fake.log, "\n"))
	}
	var stops, starts, healths int
	for i, c := range sf.seen {
		switch {
		case becomeRe.MatchString(c.Script) && strings.HasSuffix(c.Script, "stop-cmd"):
			stops++
		case becomeRe.MatchString(c.Script) && strings.HasSuffix(c.Script, "start-cmd"):
			starts++
			if c.Env["SHOP_SECRET"] != secret || c.Env["SHOP_MODE"] != "plain" || !strings.Contains(c.Env[fleet.BecomeEnvVar], "export SHOP_SECRET="+secret+"\n") {
				t.Errorf("%s: start env %v", sf.hosts[i], c.Env)
			}
		case strings.Contains(c.Script, "\nrelctl_health "):
			healths++
			if c.Env["SHOP_SECRET"] != secret || c.Env[fleet.BecomeEnvVar] != "" {
				t.Errorf("%s: health (become none) env %v", sf.hosts[i], c.Env)
			}
		case strings.Contains(c.Script, "/.relctl/migrations/"):
			// The migration's wrapper runs migrate-cmd: it carries its env.
			if c.Env["SHOP_SECRET"] != secret {
				t.Errorf("%s: migration env %v", sf.hosts[i], c.Env)
			}
		case strings.Contains(c.Script, "stop-cmd"), strings.Contains(c.Script, "start-cmd"):
			if !strings.Contains(c.Script, "sudo -n -l") {
				t.Errorf("%s: stop/start not through sudo: %q", sf.hosts[i], c.Script)
			}
		default:
			// relctl's own scripts: RELCTL_* at most.
			if _, ok := c.Env["SHOP_SECRET"]; ok {
				t.Errorf("%s: relctl's own script got the secret: %q", sf.hosts[i], c.Script)
			}
		}
		if strings.Contains(c.Script, secret) {
			t.Errorf("%s: the secret is in a command line: %q", sf.hosts[i], c.Script)
		}
	}
	if stops != 3 || starts != 3 || healths < 3 {
		t.Errorf("stops %d starts %d healths %d", stops, starts, healths)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), secret) {
			t.Errorf("event holds the secret: %s", b)
		}
	}
}

// TestBecomePreflightRefusals: sudo that wants a password, or is missing,
// and a secret that is not there, each stop the run at preflight, naming
// the place, with nothing touched.
func TestBecomePreflightRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		set    func(sf *sudoFake)
		secret bool
		want   []string
	}{
		{"password required", func(sf *sudoFake) {
			sf.refuse["web2 stop-cmd"] = "sudo: a password is required"
			sf.refuse["web3 start-cmd"] = "sudo: a password is required"
		}, true, []string{
			`web2: sudo -n -u root -- stop-cmd (commands.stop): sudo refused: a password is required — allow it in sudoers`,
			`web3: sudo -n -u root -- start-cmd (commands.start): sudo refused: a password is required`,
		}},
		{"not allowed", func(sf *sudoFake) { sf.refuse["web1 start-cmd"] = "" }, true,
			[]string{`web1: sudo -n -u root -- start-cmd (commands.start): sudo refused: sudoers does not allow it`}},
		{"sudo missing", func(sf *sudoFake) { sf.missing = true }, true,
			[]string{`sudo refused: sudo is not installed, and commands.start, commands.stop run through sudo -n (become)`}},
		{"secret missing", func(*sudoFake) {}, false,
			[]string{`secret not available: env.SHOP_SECRET (from_env RELCTL_UNIT_SECRET): RELCTL_UNIT_SECRET is not set in relctl's environment`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.secret {
				t.Setenv("RELCTL_UNIT_SECRET", "s")
			} else {
				t.Setenv("RELCTL_UNIT_SECRET", "")
				// LookupEnv finds it set but empty: that is missing too;
				// unset is the message checked here.
				unsetenv(t, "RELCTL_UNIT_SECRET")
			}
			h, sf := envsecHarness(t)
			tc.set(sf)
			res := h.runWith(t, sf, "1.1.0")
			if res.Outcome != event.OutcomeFailed {
				t.Fatalf("outcome %s", res.Outcome)
			}
			for _, w := range tc.want {
				if !strings.Contains(fmt.Sprint(res.Err), w) {
					t.Errorf("error\n%v\nlacks\n%s", res.Err, w)
				}
			}
			for _, l := range h.fake.log {
				if strings.Contains(l, "lock") || strings.Contains(l, "upload") || strings.Contains(l, "unpack") || strings.Contains(l, "drain") || strings.Contains(l, "stop") {
					t.Errorf("touched the fleet: %s", l)
				}
			}
		})
	}
}

// plan builds the upgrade to `to` over the fake fleet as it is.
func (h *harness) plan(t *testing.T, to string) *plan.Plan {
	t.Helper()
	obs := plan.Observed{}
	for _, name := range []string{"web1", "web2", "web3"} {
		obs.Hosts = append(obs.Hosts, plan.HostState{Name: name, Version: h.fake.current[name], Reachable: true})
	}
	p, err := plan.Build(h.inv, obs, plan.Options{To: to, CanVerify: h.fake.verify})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// unsetenv unsets k for the rest of the test (t.Setenv restores it).
func unsetenv(t *testing.T, k string) {
	t.Setenv(k, "")
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

// TestLockRecordsTheEnvironment: the lock file names the run's inventory
// environment, it survives a renewal, and a second operator hears it.
func TestLockRecordsTheEnvironment(t *testing.T) {
	hosts, app := sshHosts(t)
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute}
	a := LockInfo{Owner: "alice@box", RunID: "run-a", Fingerprint: "fp", Environment: "staging"}
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, ok := readLockFile(t, app)
	if !ok || got.Environment != "staging" {
		t.Fatalf("lock %+v, want environment staging", got)
	}
	var le *LockError
	if err := l.Acquire(ctx, LockInfo{Owner: "bob@box", RunID: "run-b"}); !errors.As(err, &le) || !strings.Contains(err.Error(), "environment staging") {
		t.Fatalf("second run: %v", err)
	}
	if err := l.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
}
