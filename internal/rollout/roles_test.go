package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/view"
)

// rolesFleet: web1 and web2 behind the balancer, web3 a worker with
// balancer: none and its own stop/start commands.
const rolesFleet = `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: stop-cmd, start: start-cmd, health: health-cmd, migrate: migrate-cmd, post_migrate: post-cmd}
health: {timeout: 300ms, interval: 10ms, stable_for: 0s}
balancer: {kind: none}
roles:
  web: {}
  worker: {balancer: none, commands: {stop: stop-worker, start: start-worker}}
rollout: {batches: [1], pause_after_canary: false, role_order: %s}
hosts:
  - {name: web1, address: 10.0.0.1, role: web}
  - {name: web2, address: 10.0.0.2, role: web}
  - {name: web3, address: 10.0.0.3, role: worker}
`

// preflightLog records the servers preflight asks the balancer about.
type preflightLog struct {
	*fakeFleet
	servers [][]string
}

func (p *preflightLog) Preflight(ctx context.Context, servers []string, force bool) error {
	p.mu.Lock()
	p.servers = append(p.servers, slices.Clone(servers))
	p.mu.Unlock()
	return p.fakeFleet.Preflight(ctx, servers, force)
}

func rolesHarness(t *testing.T, order string) *harness {
	h := newHarnessText(t, fmt.Sprintf(rolesFleet, order))
	h.fake.verify = true
	// The worker's own commands, logged as the fake logs stop and start.
	h.fake.runHook = func(host, script string) (string, bool) {
		return "", script == "stop-worker" || script == "start-worker"
	}
	return h
}

func (h *harness) runRoles(t *testing.T, opts plan.Options) (Result, *preflightLog) {
	t.Helper()
	obs := plan.Observed{}
	for _, name := range []string{"web1", "web2", "web3"} {
		obs.Hosts = append(obs.Hosts, plan.HostState{Name: name, Version: h.fake.current[name], Reachable: true})
	}
	opts.CanVerify = true
	p, err := plan.Build(h.inv, obs, opts)
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus("run1", nil, event.SinkFunc(func(e event.Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}))
	arts := map[string]Artifact{}
	for _, hop := range p.Hops {
		arts[hop.To] = Artifact{Path: "/dist/shop-" + hop.To + ".tar.gz", SHA256: "abc"}
	}
	bal := &preflightLog{fakeFleet: h.fake}
	e := New(Config{Inventory: h.inv, Plan: p, Hosts: h.fake, Balancer: bal, Bus: bus, Artifacts: arts, RunID: "run1", Owner: "me@here"})
	return e.Run(context.Background()), bal
}

// The worker runs its role's action list: no drain, wait-idle, enable or
// verify, and no balancer call at all; its own stop and start; in the
// role order, one plan, one lock, migrations once around every role.
func TestRolesRunEachHostsActions(t *testing.T) {
	for _, order := range []string{"[web, worker]", "[worker, web]", "together"} {
		t.Run(order, func(t *testing.T) {
			h := rolesHarness(t, order)
			res, bal := h.runRoles(t, plan.Options{To: "1.1.0"})
			if res.Outcome != event.OutcomeSucceeded {
				t.Fatalf("outcome %s: %v\n%s", res.Outcome, res.Err, strings.Join(h.fake.log, "\n"))
			}
			if got, want := h.actionsDone("web3"), []string{"stop:ok", "switch:ok", "start:ok", "health:ok"}; !slices.Equal(got, want) {
				t.Errorf("worker actions %v, want %v", got, want)
			}
			if got, want := h.actionsDone("web1"), []string{"drain:ok", "wait-idle:ok", "stop:ok", "switch:ok", "start:ok", "health:ok", "enable:ok", "verify:ok"}; !slices.Equal(got, want) {
				t.Errorf("web actions %v, want %v", got, want)
			}
			log := h.fake.log
			for _, l := range log {
				if strings.HasPrefix(l, "lb ") && strings.Contains(l, "web3") {
					t.Errorf("the worker was touched in the balancer: %q", l)
				}
			}
			for _, s := range bal.servers {
				if slices.Contains(s, "web3") {
					t.Errorf("preflight asked the balancer about the worker: %v", s)
				}
			}
			// ... and about every web server, the migrations host's (web1) too.
			if len(bal.servers) == 0 || !slices.Contains(bal.servers[0], "web1") || !slices.Contains(bal.servers[0], "web2") {
				t.Errorf("preflight servers %v, want web1 and web2", bal.servers)
			}
			if !slices.Contains(log, "web3 stop-worker") || !slices.Contains(log, "web3 start-worker") || slices.Contains(log, "web3 stop") {
				t.Errorf("worker commands:\n%s", strings.Join(h.hostLog("web3"), "\n"))
			}
			mig, post := index(log, "web1 migrate-cmd 1.1.0"), index(log, "web1 post-cmd 1.1.0")
			w3, w1 := index(log, "web3 switch 1.1.0"), index(log, "web1 switch 1.1.0")
			if mig < 0 || post < 0 || w3 < mig || w1 < mig || w3 > post || w1 > post {
				t.Errorf("migrations must run once, before and after every role:\n%s", strings.Join(log, "\n"))
			}
			switch order {
			case "[web, worker]":
				if w3 < index(log, "web2 switch 1.1.0") {
					t.Errorf("the worker went before the web role")
				}
			case "[worker, web]":
				if w3 > w1 {
					t.Errorf("the worker did not go first")
				}
			}
			locks := 0
			for _, e := range h.eventsOf(event.StepFinished) {
				if e.Step == "lock" && e.Status == event.StatusOK {
					locks++
				}
			}
			if locks != 1 || !slices.Contains(log, "web1 unlock") {
				t.Errorf("%d locks taken, want one for the fleet, released:\n%s", locks, strings.Join(log, "\n"))
			}
			if !slices.Contains(log, "lb restore web1,web2") {
				t.Errorf("restore must name only the servers in the balancer:\n%s", strings.Join(log, "\n"))
			}
			if h.fake.current["web3"] != "1.1.0" || !slices.Equal(res.Summary.Upgraded, []string{"web1", "web2", "web3"}) {
				t.Errorf("summary %+v", res.Summary)
			}
		})
	}
}

// A worker that fails its health check is taken back with its own undo
// list: start, switch and stop undone, never a balancer call; the failure
// policy then rolls the web hosts back as always.
func TestRolesWorkerFailureCompensatesWithoutBalancer(t *testing.T) {
	h := rolesHarness(t, "[web, worker]")
	h.fake.failOn["web3 health 1.1.0"] = errors.New("exit status 1")
	res, _ := h.runRoles(t, plan.Options{To: "1.1.0"})
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	want := []string{"stop:ok", "switch:ok", "start:ok", "health:failed", "undo-start:ok", "undo-switch:ok", "undo-stop:ok"}
	if got := h.actionsDone("web3"); !slices.Equal(got, want) {
		t.Errorf("worker %v\nwant %v", got, want)
	}
	for _, l := range h.fake.log {
		if strings.HasPrefix(l, "lb ") && strings.Contains(l, "web3") {
			t.Errorf("the worker was touched in the balancer: %q", l)
		}
	}
	for _, host := range []string{"web1", "web2", "web3"} {
		if h.fake.current[host] != "1.0.0" || (host != "web3" && !h.fake.up[host]) {
			t.Errorf("%s: runs %s, up %v", host, h.fake.current[host], h.fake.up[host])
		}
	}
	if slices.Contains(h.fake.log, "web1 post-cmd 1.1.0") {
		t.Error("post-migrate ran")
	}
}

// A selection leaves the rest untouched and holds post-migrate back: the
// run ends partially upgraded (exit 7), saying what is left and how to
// finish.
func TestSelectionRunHoldsPostMigrate(t *testing.T) {
	h := rolesHarness(t, "[web, worker]")
	res, _ := h.runRoles(t, plan.Options{To: "1.1.0", Select: fleet.Selection{Hosts: []string{"web1"}}})
	if res.Outcome != event.OutcomePartial {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	const msg = "post-migrate skipped: web2, web3 are not selected and still run 1.0.0 — run again without --hosts to finish"
	if res.Err == nil || res.Err.Error() != msg {
		t.Errorf("err %v\nwant %s", res.Err, msg)
	}
	if slices.Contains(h.fake.log, "web1 post-cmd 1.1.0") || !slices.Contains(h.fake.log, "web1 migrate-cmd 1.1.0") {
		t.Errorf("migrations:\n%s", strings.Join(h.fake.log, "\n"))
	}
	for _, host := range []string{"web2", "web3"} {
		if got := h.hostLog(host); len(got) > 0 {
			t.Errorf("%s was touched: %v", host, got)
		}
		if h.fake.current[host] != "1.0.0" {
			t.Errorf("%s runs %s", host, h.fake.current[host])
		}
	}
	if h.fake.current["web1"] != "1.1.0" || !h.fake.up["web1"] {
		t.Errorf("web1 runs %s up %v", h.fake.current["web1"], h.fake.up["web1"])
	}
	code, lines := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary})
	if code != view.ExitPartial || !strings.Contains(strings.Join(lines, "\n"), msg) {
		t.Errorf("verdict %d %v", code, lines)
	}
	// The whole fleet afterwards: web1 is skipped, post-migrate runs, and
	// the run succeeds.
	res, _ = h.runRoles(t, plan.Options{To: "1.1.0"})
	if res.Outcome != event.OutcomeSucceeded || !res.Summary.PostMigrated {
		t.Fatalf("finishing run: %s %v %+v", res.Outcome, res.Err, res.Summary)
	}
}

// The sudo preflight (become) asks about the command a host really runs:
// its role's own stop, not the fleet's.
func TestBecomeChecksTheRolesOwnCommands(t *testing.T) {
	src := strings.Replace(fmt.Sprintf(rolesFleet, "[web, worker]"), "balancer: {kind: none}", "balancer: {kind: none}\nbecome: {method: sudo, user: root}", 1)
	h := newHarnessText(t, src)
	p, err := plan.Build(h.inv, plan.Assume(h.inv, "1.0.0"), plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{Inventory: h.inv, Plan: p, Hosts: h.fake, Balancer: h.fake, Bus: event.NewBus("run1", nil), RunID: "run1", Owner: "o"})
	for host, want := range map[string][]string{"web3": {"stop-worker", "start-worker", "health-cmd"}, "web2": {"stop-cmd", "start-cmd", "health-cmd"}} {
		_, scripts, err := e.becomeCommands(host, e.hostValues(e.host(host), "1.0.0", "1.1.0"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(scripts, want) {
			t.Errorf("%s: sudo is asked about %v, want %v", host, scripts, want)
		}
	}
}
