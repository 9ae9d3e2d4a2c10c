package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/view"
)

// actionsDone lists host's ActionDone events as "action:status".
func (h *harness) actionsDone(host string) []string {
	var out []string
	for _, e := range h.eventsOf(event.ActionDone) {
		if e.Host == host {
			out = append(out, fmt.Sprintf("%s:%s", e.Action, e.Status))
		}
	}
	return out
}

// The executor runs exactly the plan's action list: wait-idle is its own
// action with its own result, verify reads the balancer back, and the
// event stream lists the actions in the plan's order.
func TestExecutorRunsThePlansActions(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [3], pause_after_canary: false}")
	h.fake.verify = true
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	want := []string{"drain:ok", "wait-idle:ok", "stop:ok", "switch:ok", "start:ok", "health:ok", "enable:ok", "verify:ok"}
	if got := h.actionsDone("web2"); !slices.Equal(got, want) {
		t.Errorf("web2 actions %v\nwant %v", got, want)
	}
	for _, e := range h.eventsOf(event.ActionDone) {
		if e.Action == plan.ActionWaitIdle && !strings.HasPrefix(e.Message, "idle after") {
			t.Errorf("wait-idle result %q", e.Message)
		}
	}
	if !slices.Contains(h.fake.log, "lb verify web3") || !slices.Contains(h.fake.log, "lb ensure-out web3") {
		t.Errorf("verify/ensure-out not asked of the balancer:\n%s", strings.Join(h.fake.log, "\n"))
	}
	// Without a balancer that can read back, the plan lists no verify and
	// nothing claims one ran.
	h = newHarness(t, "rollout: {batches: [3], pause_after_canary: false}")
	res = h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	for _, e := range h.eventsOf(event.ActionDone) {
		if e.Action == plan.ActionVerify {
			t.Errorf("verify reported for a balancer that cannot verify: %+v", e)
		}
	}
}

// A plan that lists verify for a balancer that cannot verify, or an action
// this relctl does not know, is refused before anything changes.
func TestExecutorRefusesActionsItCannotRun(t *testing.T) {
	h := newHarness(t, "")
	obs := plan.Assume(h.inv, "1.0.0")
	p, err := plan.Build(h.inv, obs, plan.Options{To: "1.1.0", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	res := h.runPlan(t, p, AutoApprove{}, nil)
	if res.Outcome != event.OutcomeFailed || !strings.Contains(fmt.Sprint(res.Err), "cannot read a server's state back") {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	for _, l := range h.fake.log {
		if strings.Contains(l, "drain") || strings.Contains(l, "upload") {
			t.Errorf("touched the fleet: %s", l)
		}
	}
}

// The version check runs only when the plan lists it, and compares the
// first non-empty line of the output (what observe reads).
func TestVersionOnlyWhenListed(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [3], pause_after_canary: false}")
	h.inv.Commands.Version = "" // the template below is what counts
	inv2 := strings.Replace(fmt.Sprintf(testInventory, "rollout: {batches: [3], pause_after_canary: false}"),
		"post_migrate: post-cmd}", "post_migrate: post-cmd, version: version-cmd}", 1)
	h2 := newHarnessText(t, inv2)
	var versions atomic.Int32 // the hook runs on every host at once
	h2.fake.runHook = func(host, script string) (string, bool) {
		if script != "version-cmd" {
			return "", false
		}
		versions.Add(1)
		h2.fake.mu.Lock()
		v := h2.fake.current[host]
		h2.fake.mu.Unlock()
		return "\n  " + v + "  \nbuilt 2026-11-29 by ci\n", true
	}
	obs := plan.Assume(h2.inv, "1.0.0")
	p, err := plan.Build(h2.inv, obs, plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.Actions, plan.ActionVersion) {
		t.Fatalf("plan does not list version: %v", p.Actions)
	}
	res := h2.runPlan(t, p, AutoApprove{}, nil)
	if res.Outcome != event.OutcomeSucceeded || versions.Load() != 3 {
		t.Fatalf("outcome %s (%v), version ran %d times", res.Outcome, res.Err, versions.Load())
	}
	// The same inventory with the action taken out of the plan: the
	// command never runs.
	h3 := newHarnessText(t, inv2)
	versions.Store(0)
	h3.fake.runHook = h2.fake.runHook
	p.Actions = slices.DeleteFunc(slices.Clone(p.Actions), func(a plan.Action) bool { return a == plan.ActionVersion })
	res = h3.runPlan(t, p, AutoApprove{}, nil)
	if res.Outcome != event.OutcomeSucceeded || versions.Load() != 0 {
		t.Fatalf("outcome %s (%v), version ran %d times though the plan does not list it", res.Outcome, res.Err, versions.Load())
	}
}

// A host reporting an invalid version is an error naming the host, never
// text carried into a command.
func TestInvalidReportedVersionNamesHost(t *testing.T) {
	inv := strings.Replace(fmt.Sprintf(testInventory, "rollout: {batches: [1], pause_after_canary: false, on_failure: pause}"),
		"post_migrate: post-cmd}", "post_migrate: post-cmd, version: version-cmd}", 1)
	h := newHarnessText(t, inv)
	h.fake.runHook = func(host, script string) (string, bool) {
		if script != "version-cmd" {
			return "", false
		}
		h.fake.mu.Lock()
		defer h.fake.mu.Unlock()
		if v := h.fake.current[host]; v != "1.1.0" {
			return v, true
		}
		return "1.1.0 $(touch /tmp/x)", true
	}
	res := h.run(t, "1.1.0", AutoApprove{})
	if !strings.Contains(fmt.Sprint(res.Err), "web1 reports an invalid version") {
		t.Fatalf("err %v", res.Err)
	}
	if h.fake.current["web1"] != "1.0.0" || !h.fake.up["web1"] {
		t.Errorf("web1 not back on 1.0.0 in service: %s up=%v", h.fake.current["web1"], h.fake.up["web1"])
	}
}

// Right before stop the balancer is re-checked: a reload that put the
// server back is undone (drained again) and the run says so.
func TestReloadBeforeStopRedrainsAndWarns(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [3], pause_after_canary: false}")
	h.fake.verify = true
	h.fake.hook = func(s string) error {
		if s == "lb ensure-out web2" {
			h.fake.mu.Lock()
			h.fake.up["web2"] = true // a reload forgot the drain
			h.fake.mu.Unlock()
		}
		return nil
	}
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	var warned bool
	for _, e := range h.eventsOf(event.Warning) {
		if e.Host == "web2" && strings.Contains(e.Message, "drained again") {
			warned = true
		}
	}
	if !warned {
		t.Error("no warning that web2 was drained again")
	}
	log := h.fake.log
	if i, j := index(log, "lb ensure-out web2"), index(log, "web2 stop"); i < 0 || j < i || index(log[i:j], "lb drain web2") < 0 {
		t.Errorf("web2 not drained again between the re-check and the stop:\n%s", strings.Join(log, "\n"))
	}
}

// A verify that finds the server not UP unwinds every action that changed
// something, in reverse: the host goes back to its release, in service.
func TestVerifyFailureUnwindsInReverse(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false, on_failure: pause}")
	h.fake.verify = true
	h.fake.failOn["lb verify web1"] = errors.New("verify web1: not UP on fake")
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomePaused {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	want := []string{"drain:ok", "wait-idle:ok", "stop:ok", "switch:ok", "start:ok", "health:ok", "enable:ok", "verify:failed",
		"undo-enable:ok", "undo-start:ok", "undo-switch:ok", "undo-stop:ok", "undo-drain:ok"}
	if got := h.actionsDone("web1"); !slices.Equal(got, want) {
		t.Errorf("web1 actions %v\nwant %v", got, want)
	}
	if h.fake.current["web1"] != "1.0.0" || !h.fake.up["web1"] {
		t.Errorf("web1: runs %s, up %v", h.fake.current["web1"], h.fake.up["web1"])
	}
}

// A failure before the switch unwinds only what completed: no switch back
// is attempted, and the host is back in service on its release.
func TestStopFailureUndoesOnlyWhatRan(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false, on_failure: pause}")
	h.fake.failOn["web1 stop"] = errors.New("exit status 1")
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomePaused {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	want := []string{"drain:ok", "wait-idle:ok", "stop:failed", "undo-stop:ok", "undo-drain:ok"}
	if got := h.actionsDone("web1"); !slices.Equal(got, want) {
		t.Errorf("web1 actions %v\nwant %v", got, want)
	}
	if slices.ContainsFunc(h.hostLog("web1"), func(s string) bool { return strings.HasPrefix(s, "switch") }) {
		t.Errorf("a host that never switched was switched: %v", h.hostLog("web1"))
	}
}

// The failure budget lets the run go on, but the fleet is then on two
// versions: the outcome says "partially upgraded" naming the host, and
// post-migrate does not run on a mixed fleet.
func TestBudgetedFailureIsPartialAndSkipsPostMigrate(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false, max_failed_hosts: 1}")
	h.fake.failOn["web2 health 1.1.0"] = errors.New("exit status 1")
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomePartial {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	if !strings.Contains(fmt.Sprint(res.Err), "web2 not on 1.1.0") {
		t.Errorf("err %v does not name web2", res.Err)
	}
	if slices.Contains(h.fake.log, "web1 post-cmd 1.1.0") {
		t.Error("post-migrate ran on a mixed fleet")
	}
	if h.fake.current["web2"] != "1.0.0" || !h.fake.up["web2"] || h.fake.current["web3"] != "1.1.0" {
		t.Errorf("fleet %v up %v", h.fake.current, h.fake.up)
	}
	if !slices.Equal(res.Summary.RolledBack, []string{"web2"}) || !slices.Equal(res.Summary.Upgraded, []string{"web1", "web3"}) {
		t.Errorf("summary %+v", res.Summary)
	}
}

// on_failure: rollback with a host whose sshd died during stop: the dead
// host never switched, so it is not in the rollback plan; every switched
// host still goes back; the dead one is named LEFT DRAINED.
func TestRollbackGoesAsFarAsItCan(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false}")
	lost := fmt.Errorf("web3: %w", remote.ErrConnectionLost)
	h.fake.failOn["web3 stop"] = lost
	h.fake.failOn["web3 start"] = lost // its compensation cannot reach it either
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	for _, host := range []string{"web1", "web2"} {
		if h.fake.current[host] != "1.0.0" || !h.fake.up[host] {
			t.Errorf("%s: runs %s, up %v; want back on 1.0.0 in service", host, h.fake.current[host], h.fake.up[host])
		}
	}
	if _, ok := res.Summary.LeftDrained["web3"]; !ok {
		t.Errorf("web3 not named LEFT DRAINED: %+v", res.Summary)
	}
	for _, e := range h.eventsOf(event.PlanChanged) {
		if slices.Contains(e.Plan.DeployHosts(), "web3") {
			t.Errorf("web3 never switched but is in the rollback plan %v", e.Plan.DeployHosts())
		}
	}
	if slices.ContainsFunc(h.hostLog("web3"), func(s string) bool { return strings.HasPrefix(s, "switch") }) {
		t.Errorf("web3 was switched: %v", h.hostLog("web3"))
	}
}

// A host the rollback cannot take back is named and skipped; the hosts
// after it in the rollback plan still go back.
func TestRollbackSkipsAHostItCannotUndo(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false}")
	h.fake.failOn["web3 health 1.1.0"] = errors.New("exit status 1")
	// web2's old release no longer comes up: its rollback fails.
	h.fake.failOn["web2 health 1.0.0"] = errors.New("exit status 1")
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeFailed {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	if h.fake.current["web1"] != "1.0.0" || !h.fake.up["web1"] {
		t.Errorf("web1 not sent back after web2's rollback failed: runs %s up %v", h.fake.current["web1"], h.fake.up["web1"])
	}
	if h.fake.current["web3"] != "1.0.0" || !h.fake.up["web3"] {
		t.Errorf("web3 (its own compensation) runs %s up %v", h.fake.current["web3"], h.fake.up["web3"])
	}
	if _, ok := res.Summary.LeftDrained["web2"]; !ok || !strings.Contains(fmt.Sprint(res.Err), "web2") {
		t.Errorf("web2 not named: err %v, summary %+v", res.Err, res.Summary)
	}
	// The rollback never switched web2 forward again.
	log := h.hostLog("web2")
	if last := log[len(log)-1]; slices.Contains(log[slices.Index(log, "switch 1.0.0"):], "switch 1.1.0") {
		t.Errorf("web2 was moved forward by the rollback: %v (last %s)", log, last)
	}
}

// A rollback never moves a host forward and never touches a host that runs
// something it did not expect.
func TestRollbackRefusesAHostOnAnotherVersion(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false}")
	p, err := plan.Build(h.inv, plan.Assume(h.inv, "1.0.0"), plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	prog := plan.Progress{Started: map[string]bool{"deploy/web1": true, "deploy/web2": true}, Finished: map[string]bool{"deploy/web1": true, "deploy/web2": true}}
	rb, err := plan.Rollback(h.inv, p, prog)
	if err != nil {
		t.Fatal(err)
	}
	h.fake.current["web1"], h.fake.current["web2"] = "1.1.0", "1.2.0" // someone moved web2 on
	res := h.runPlan(t, rb, AutoApprove{}, nil)
	if res.Outcome != event.OutcomeFailed || !strings.Contains(fmt.Sprint(res.Err), "web2") {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	if h.fake.current["web2"] != "1.2.0" || slices.Contains(h.hostLog("web2"), "drain") {
		t.Errorf("web2 touched: %v", h.hostLog("web2"))
	}
	if h.fake.current["web1"] != "1.0.0" {
		t.Errorf("web1 not rolled back after web2 was skipped: %s", h.fake.current["web1"])
	}
}

// Preflight refuses, naming the host, when the release a rollback needs is
// gone, when current points outside releases/, and when a host the plan
// skips is out of rotation; nothing is touched.
func TestPreflightRefusals(t *testing.T) {
	cases := []struct {
		name string
		set  func(f *fakeFleet)
		want string
	}{
		{"rollback target missing", func(f *fakeFleet) { f.missing["web3 1.0.0"] = true }, "cannot roll back web3: releases/1.0.0 missing"},
		{"current outside releases", func(f *fakeFleet) { f.outside["web2"] = "/tmp/hotfix" }, "web2: current points to /tmp/hotfix, outside /srv/shop/releases"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, "")
			c.set(h.fake)
			res := h.run(t, "1.1.0", AutoApprove{})
			if res.Outcome != event.OutcomeFailed || !strings.Contains(fmt.Sprint(res.Err), c.want) {
				t.Fatalf("outcome %s: %v\nwant %q", res.Outcome, res.Err, c.want)
			}
			for _, l := range h.fake.log {
				if strings.Contains(l, "upload") || strings.Contains(l, "drain") {
					t.Errorf("touched the fleet: %s", l)
				}
			}
		})
	}
	t.Run("host to deploy out of rotation", func(t *testing.T) {
		h := newHarness(t, "")
		h.fake.failOn["lb preflight"] = fmt.Errorf("preflight web2 on fake: web2 is DRAIN (set by an operator or an earlier run): %w", lb.ErrNotUp)
		res := h.run(t, "1.1.0", AutoApprove{})
		msg := fmt.Sprint(res.Err)
		if res.Outcome != event.OutcomeFailed || !strings.Contains(msg, "web2 not in service") || !strings.Contains(msg, "relctl repair web2") {
			t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
		}
	})
	t.Run("skipped host out of rotation", func(t *testing.T) {
		h := newHarness(t, "")
		h.fake.current["web3"] = "1.1.0" // skipped: already on the target
		h.fake.failOn["lb preflight web3"] = errors.New("server web3 is DRAIN on fake")
		res := h.run(t, "1.1.0", AutoApprove{})
		msg := fmt.Sprint(res.Err)
		if res.Outcome != event.OutcomeFailed || !strings.Contains(msg, "web3") || !strings.Contains(msg, "relctl repair web3") {
			t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
		}
	})
}

// A second interrupt during a hung stop cuts it; the host gets one bounded
// attempt to go back, the run ends soon after, the lock is released and
// every host not in service is named.
func TestForceDuringHungStop(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false}\ntimeouts: {stop: 1h}")
	h.fake.hangOn["web2 stop"] = true
	h.force = make(chan struct{})
	h.grace = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.fake.hook = func(s string) error {
		if s == "web2 stop" {
			go func() {
				cancel() // first Ctrl-C: web2 is finished, not abandoned...
				time.Sleep(50 * time.Millisecond)
				close(h.force) // ...second Ctrl-C: forced
			}()
		}
		return nil
	}
	p, err := plan.Build(h.inv, plan.Assume(h.inv, "1.0.0"), plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := h.runPlan(t, p, AutoApprove{}, ctx)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("forced run took %s", took)
	}
	if res.Outcome != event.OutcomeAborted || !res.Summary.Forced {
		t.Fatalf("outcome %s forced %v: %v", res.Outcome, res.Summary.Forced, res.Err)
	}
	// web2's stop was cut; its one attempt (start 1.0.0, healthy, enable) ran.
	if h.fake.current["web2"] != "1.0.0" || !h.fake.up["web2"] {
		t.Errorf("web2 runs %s up %v", h.fake.current["web2"], h.fake.up["web2"])
	}
	if slices.Contains(h.hostLog("web3"), "drain") {
		t.Error("web3 started after the interrupt")
	}
	if !slices.Contains(h.fake.log, "web1 unlock") || res.Summary.Lock != "" {
		t.Errorf("lock not released: %q", res.Summary.Lock)
	}
}

// When the forced attempt cannot finish within the grace, the host is
// named LEFT DRAINED and the run still ends within the bound.
func TestForceNamesTheHostItCouldNotBringBack(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false}\ntimeouts: {stop: 1h, start: 1h}")
	h.fake.hangOn["web2 stop"] = true
	h.fake.hangOn["web2 start"] = true // its way back hangs too
	h.force = make(chan struct{})
	h.grace = time.Second
	h.fake.hook = func(s string) error {
		if s == "web2 stop" {
			close(h.force)
		}
		return nil
	}
	p, _ := plan.Build(h.inv, plan.Assume(h.inv, "1.0.0"), plan.Options{To: "1.1.0"})
	start := time.Now()
	res := h.runPlan(t, p, AutoApprove{}, nil)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("forced run took %s", took)
	}
	if _, ok := res.Summary.LeftDrained["web2"]; !ok {
		t.Fatalf("web2 not named: outcome %s %+v", res.Outcome, res.Summary)
	}
}

// Cleanup never splits or globs a release name.
func TestCleanupScriptQuotesNames(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	base := t.TempDir()
	rel := filepath.Join(base, "releases")
	names := []string{"a b", "a", "b", "*", "1.0.0", "1.1.0", "0.9.0"}
	for i, n := range names {
		d := filepath.Join(rel, n)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		// Oldest first: "a b" is the oldest, then a, b, *, ...
		mt := time.Now().Add(time.Duration(i-len(names)) * time.Hour)
		if err := os.Chtimes(d, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(rel, ".incoming"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(rel, "1.1.0"), filepath.Join(base, "current")); err != nil {
		t.Fatal(err)
	}
	// keep 3: the three newest (1.1.0, 1.0.0, 0.9.0) plus from/to; "a b"
	// and "*" are pruned as themselves, "a" and "b" as themselves.
	out, err := exec.Command("sh", "-c", cleanupScript(base, 3, "1.0.0", "1.1.0")).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	left, _ := os.ReadDir(rel)
	var got []string
	for _, d := range left {
		got = append(got, d.Name())
	}
	sort.Strings(got)
	want := []string{".incoming", "0.9.0", "1.0.0", "1.1.0"}
	if !slices.Equal(got, want) {
		t.Errorf("left %q, want %q\n%s", got, want, out)
	}
	if !strings.Contains(string(out), "pruned a b\n") {
		t.Errorf("output %q does not prune \"a b\" as one name", out)
	}
}

// The switch script quotes the version: shell text in it never runs.
func TestSwitchScriptQuotesVersion(t *testing.T) {
	base := t.TempDir()
	marker := filepath.Join(base, "pwned")
	evil := "1.0.0 $(touch " + marker + ")`touch " + marker + "`"
	out, err := exec.Command("sh", "-c", switchScript(base, evil)).CombinedOutput()
	if err == nil {
		t.Fatalf("switch to a missing release succeeded: %s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("shell text in the version ran: %s", out)
	}
	if !strings.Contains(string(out), "is not staged") {
		t.Errorf("output %q", out)
	}
}

// relctl repair brings a host an earlier run left drained back on the
// release it runs, through the same executor: start → healthy → enable →
// verify, never a switch; a repair that fails leaves it out, named.
func TestRepair(t *testing.T) {
	h := newHarness(t, "")
	h.fake.verify = true
	h.fake.up["web3"] = false // left drained (and stopped) by an earlier run
	obs := plan.Assume(h.inv, "1.0.0")
	obs.Offline = false
	p, err := plan.Repair(h.inv, obs, []string{"web3"}, true)
	if err != nil {
		t.Fatal(err)
	}
	res := h.runPlan(t, p, AutoApprove{}, nil)
	if res.Outcome != event.OutcomeSucceeded || !h.fake.up["web3"] {
		t.Fatalf("outcome %s (%v), web3 up %v", res.Outcome, res.Err, h.fake.up["web3"])
	}
	if got, want := h.hostLog("web3"), []string{"start", "health 1.0.0", "enable", "audit"}; !slices.Equal(got, want) {
		t.Errorf("web3: %v, want %v", got, want)
	}

	h = newHarness(t, "")
	h.fake.up["web3"] = false
	h.fake.failOn["web3 health 1.0.0"] = errors.New("exit status 1")
	p, _ = plan.Repair(h.inv, obs, []string{"web3"}, false)
	res = h.runPlan(t, p, AutoApprove{}, nil)
	if _, ok := res.Summary.LeftDrained["web3"]; !ok || h.fake.up["web3"] {
		t.Fatalf("failed repair: outcome %s, summary %+v, up %v", res.Outcome, res.Summary, h.fake.up["web3"])
	}
	if !slices.Contains(h.hostLog("web3"), "stop") {
		t.Errorf("the failed start was not stopped again: %v", h.hostLog("web3"))
	}
}

// wait-idle is its own action: it reads the balancer until the server has
// no sessions left, or reports the timeout with how many are left.
func TestWaitIdleReadsSessions(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [3], pause_after_canary: false}")
	h.inv.Balancer.DrainTimeout = 300 * time.Millisecond
	h.fake.verify = true
	h.fake.sessions["web1"] = 3 // closes one per read
	h.fake.sessions["web2"] = 2
	h.fake.stuck["web2"] = true // never closes
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	got := map[string]string{}
	for _, e := range h.eventsOf(event.ActionDone) {
		if e.Action == plan.ActionWaitIdle {
			got[e.Host] = e.Message
		}
	}
	if !strings.HasPrefix(got["web1"], "idle after") {
		t.Errorf("web1 wait-idle: %q", got["web1"])
	}
	if !strings.HasPrefix(got["web2"], "timeout after") || !strings.Contains(got["web2"], "2 session(s) left") {
		t.Errorf("web2 wait-idle: %q", got["web2"])
	}
	if !strings.HasPrefix(got["web3"], "idle after") {
		t.Errorf("web3 wait-idle: %q", got["web3"])
	}
}

// Ctrl-C during staging is an abort (nothing switched), not a failure.
func TestInterruptDuringStagingAborts(t *testing.T) {
	h := newHarness(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.fake.hangOn["web2 upload 1.1.0"] = true
	h.fake.hook = func(s string) error {
		if s == "web2 upload 1.1.0" {
			cancel()
		}
		return nil
	}
	p, _ := plan.Build(h.inv, plan.Assume(h.inv, "1.0.0"), plan.Options{To: "1.1.0"})
	res := h.runPlan(t, p, AutoApprove{}, ctx)
	if res.Outcome != event.OutcomeAborted {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	for _, l := range h.fake.log {
		if strings.HasPrefix(l, "lb drain") {
			t.Errorf("a host was drained after the interrupt: %s", l)
		}
	}
	if !slices.Contains(h.fake.log, "web1 unlock") {
		t.Error("lock not released")
	}
}

// A hop left incomplete by the failure budget does not start the next one:
// the host left behind would skip a required stop.
func TestBudgetedFailureStopsBeforeTheNextHop(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [1], pause_after_canary: false, max_failed_hosts: 1}\nreleases:\n  \"2.0.0\": {upgrade_from: \">=1.1.0\"}\n  \"1.1.0\": {upgrade_from: \">=1.0.0\"}")
	h.fake.failOn["web2 health 1.1.0"] = errors.New("exit status 1")
	res := h.run(t, "2.0.0", AutoApprove{})
	if res.Outcome != event.OutcomePartial || !strings.Contains(fmt.Sprint(res.Err), "web2 not on 1.1.0") {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	for _, l := range h.fake.log {
		if strings.Contains(l, "2.0.0") && !strings.Contains(l, "upload") && !strings.Contains(l, "unpack") {
			t.Errorf("the second hop started: %s", l)
		}
	}
	if h.fake.current["web2"] != "1.0.0" || h.fake.current["web1"] != "1.1.0" || h.fake.current["web3"] != "1.1.0" {
		t.Errorf("fleet %v", h.fake.current)
	}
	if code, _ := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary}); code != view.ExitPartial {
		t.Errorf("exit %d", code)
	}
}

// A rollback goes back in the forward run's batches, reversed, each
// batch's hosts in parallel as they went forward: web1 and web2 (one
// batch) are stopped for the rollback at the same time. Each still gets
// traffic only once healthy: its enable follows its health check.
func TestRollbackGoesBackInParallelBatches(t *testing.T) {
	h := newHarness(t, "rollout: {batches: [2], pause_after_canary: false}")
	h.fake.failOn["web3 health 1.1.0"] = errors.New("exit status 1")
	// Both rollback stops must be in flight together: each waits for the
	// other (a rollback one host at a time would time out here).
	var mu sync.Mutex
	arrived := map[string]bool{}
	both := make(chan struct{})
	h.fake.hook = func(s string) error {
		if s != "web1 stop" && s != "web2 stop" {
			return nil
		}
		h.fake.mu.Lock()
		back := h.fake.current[strings.Fields(s)[0]] == "1.1.0"
		h.fake.mu.Unlock()
		if !back {
			return nil // the forward stop
		}
		mu.Lock()
		arrived[s] = true
		if len(arrived) == 2 {
			close(both)
		}
		mu.Unlock()
		select {
		case <-both:
			return nil
		case <-time.After(20 * time.Second):
			return fmt.Errorf("%s: the other host of its batch did not go back at the same time", s)
		}
	}
	res := h.run(t, "1.1.0", AutoApprove{})
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	for _, host := range []string{"web1", "web2", "web3"} {
		if h.fake.current[host] != "1.0.0" || !h.fake.up[host] {
			t.Errorf("%s runs %s, in rotation %v", host, h.fake.current[host], h.fake.up[host])
		}
		log := h.fake.log
		health := slices.Index(log, host+" health 1.0.0")
		enable := slices.Index(log, "lb enable "+host)
		if host != "web3" {
			// The rollback's enable is the last one of the host.
			for i, l := range log {
				if l == "lb enable "+host {
					enable = i
				}
			}
		}
		if health < 0 || enable < health {
			t.Errorf("%s: back in rotation (log %d) before its health check passed (log %d)", host, enable, health)
		}
	}
	var ids []string
	for _, e := range h.eventsOf(event.PlanChanged) {
		for _, s := range e.Plan.Steps {
			if s.Kind == plan.StepDeploy {
				ids = append(ids, fmt.Sprintf("%d:%s", s.Batch, s.Host))
			}
		}
	}
	if want := []string{"1:web2", "1:web1"}; !slices.Equal(ids, want) {
		t.Errorf("rollback plan %v, want %v", ids, want)
	}
}
