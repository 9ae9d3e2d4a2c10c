package lb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

// adminState is server's srv_admin_state as the process behind p's unix
// socket reports it, read around relctl (8 = drained, 1 = maint).
func adminState(t *testing.T, p *haproxyProc, server string) int {
	t.Helper()
	reply, err := p.raw("unix", p.Socket, "show servers state shop")
	if err != nil {
		t.Fatalf("show servers state: %v", err)
	}
	for _, line := range strings.Split(reply, "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && f[1] == "shop" && f[3] == server {
			n, err := strconv.Atoi(f[6])
			if err != nil {
				t.Fatalf("srv_admin_state %q: %v", f[6], err)
			}
			return n
		}
	}
	t.Fatalf("show servers state does not list %s:\n%s", server, reply)
	return 0
}

func newHAProxyLB(t *testing.T, eps ...lb.Endpoint) lb.Balancer {
	t.Helper()
	bal, err := lb.New(lb.Config{Kind: "haproxy", Backend: "shop", DrainTimeout: 15 * time.Second,
		PollInterval: 20 * time.Millisecond, Endpoints: eps}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	return bal
}

// Issue 12: a HAProxy reload while a host is drained put it back in
// rotation; relctl stopped its app and requests failed. Now the reload is
// noticed (new pid), the server drained again before EnsureOut returns,
// and the app can stop with traffic running: not one request fails.
func TestHAProxyReloadUnderLoad(t *testing.T) {
	lbtest.RequireBinary(t, haproxyBin)
	t.Parallel()
	bs := startBackends(t, 3)
	web1 := bs[0]
	p := startHAProxy(t, bs)
	bal := newHAProxyLB(t, lb.Endpoint{Socket: p.Socket})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, b := range bs {
		lbtest.Eventually(t, 15*time.Second, b.Name+" UP", func() (bool, string) {
			err := bal.Verify(ctx, b.Name)
			return err == nil, fmt.Sprint(err)
		})
	}
	if err := bal.Preflight(ctx, []string{"web1", "web2", "web3"}, false); err != nil {
		t.Fatal(err)
	}

	load := lbtest.StartLoad(t, "http://"+p.Front+"/", 4, 80*time.Second, 500_000)
	load.WaitOK(t, 200, 30*time.Second)
	if res, err := bal.Drain(ctx, "web1"); err != nil || !res.Idle {
		t.Fatalf("Drain = %+v, %v", res, err)
	}
	load.WaitOK(t, 100, 30*time.Second)

	oldPid, newPid := p.reload(t)
	// The new process forgot the drain: web1 is in rotation and serving.
	if adm := adminState(t, p, "web1"); adm != 0 {
		t.Fatalf("after the reload web1's admin state is %d, want 0 (drain forgotten); the test would prove nothing", adm)
	}
	hits := web1.Hits.Load()
	lbtest.Eventually(t, 15*time.Second, "web1 serving again after the reload", func() (bool, string) {
		return web1.Hits.Load() > hits+10, fmt.Sprintf("%d new hits", web1.Hits.Load()-hits)
	})

	// Right before the app stops.
	start := time.Now()
	note, err := bal.EnsureOut(ctx, "web1")
	if err != nil {
		t.Fatalf("EnsureOut after a reload: %v", err)
	}
	t.Logf("EnsureOut after %s: %s", time.Since(start).Round(time.Millisecond), note)
	if want := fmt.Sprintf("haproxy %s reloaded (pid %d → %d) and forgot that web1 was drained: drained it again", p.Socket, oldPid, newPid); !strings.Contains(note, want) {
		t.Fatalf("EnsureOut note = %q, want it to contain %q", note, want)
	}
	if adm := adminState(t, p, "web1"); adm&8 == 0 {
		t.Fatalf("web1's admin state after EnsureOut = %d, want drained (8)", adm)
	}
	if n := web1.Inflight.Load(); n != 0 {
		t.Fatalf("EnsureOut returned with %d request(s) on web1", n)
	}

	// web1's app stops, as the executor does next; traffic goes on.
	web1.Stop()
	load.WaitOK(t, 2000, 60*time.Second)
	if f := load.Failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed: %q\nhaproxy log:\n%s", f, f+load.OK.Load(), load.Failures(), p.log())
	}
	t.Logf("%d requests across the drain, the reload, the re-drain and web1's stop; 0 failed", load.OK.Load())
	if err := bal.Verify(ctx, "web1"); !errors.Is(err, lb.ErrNotUp) {
		t.Fatalf("Verify of stopped web1 = %v, want ErrNotUp", err)
	}

	// Control: the load counts failures. Stopping a server still in
	// rotation (its checks off, so HAProxy keeps sending it traffic) fails
	// requests at once.
	p.mustRaw(t, "disable health shop/web2")
	bs[1].Stop()
	lbtest.Eventually(t, 30*time.Second, "the control sees failed requests", func() (bool, string) {
		return load.Failed.Load() > 0, fmt.Sprintf("%d answered, 0 failed", load.OK.Load())
	})
	load.Stop()
	t.Logf("control: stopping web2 in rotation failed %d requests, e.g. %q", load.Failed.Load(), load.Failures()[0])
}

// With server-state-file + load-server-state-from-file and the state dumped
// just before the reload, HAProxy keeps the drain itself: the driver notices
// the reload, finds web1 still drained, and says so without re-draining.
func TestHAProxyReloadWithServerStateFile(t *testing.T) {
	lbtest.RequireBinary(t, haproxyBin)
	t.Parallel()
	bs := startBackends(t, 2)
	p := startHAProxyOpts(t, bs, haproxyOpts{stateFile: true})
	bal := newHAProxyLB(t, lb.Endpoint{Socket: p.Socket})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lbtest.Eventually(t, 15*time.Second, "web1 UP", func() (bool, string) {
		err := bal.Verify(ctx, "web1")
		return err == nil, fmt.Sprint(err)
	})
	if res, err := bal.Drain(ctx, "web1"); err != nil || !res.Idle {
		t.Fatalf("Drain = %+v, %v", res, err)
	}
	// What the reload procedure in the docs does: dump, then reload.
	state, err := p.raw("unix", p.Socket, "show servers state")
	if err != nil || !strings.Contains(state, "# be_id") {
		t.Fatalf("show servers state: %q %v", state, err)
	}
	if err := os.WriteFile(p.StateFile, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	oldPid, newPid := p.reload(t)
	if adm := adminState(t, p, "web1"); adm&8 == 0 {
		t.Fatalf("web1's admin state after a reload with a state file = %d, want drained (8)", adm)
	}
	note, err := bal.EnsureOut(ctx, "web1")
	want := fmt.Sprintf("haproxy %s reloaded (pid %d → %d); web1 is still drained there (server state kept across the reload)", p.Socket, oldPid, newPid)
	if err != nil || note != want {
		t.Fatalf("EnsureOut = %q, %v; want %q", note, err, want)
	}
	if err := bal.Enable(ctx, "web1", 15*time.Second); err != nil {
		t.Fatalf("Enable after the reload: %v", err)
	}
	if err := bal.Verify(ctx, "web1"); err != nil {
		t.Fatalf("Verify after Enable: %v", err)
	}
}

// The command a Preflight refusal gives puts the server back when run as
// it is written.
func TestHAProxyPreflightRepairCommandWorks(t *testing.T) {
	lbtest.RequireBinary(t, haproxyBin)
	lbtest.RequireBinary(t, "/usr/bin/socat")
	t.Parallel()
	bs := startBackends(t, 3)
	p := startHAProxy(t, bs)
	for _, ep := range []lb.Endpoint{{Socket: p.Socket}, {TCP: p.TCP}} {
		bal := newHAProxyLB(t, ep)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		lbtest.Eventually(t, 15*time.Second, "all UP", func() (bool, string) {
			err := bal.Preflight(ctx, []string{"web1", "web2", "web3"}, false)
			return err == nil, fmt.Sprint(err)
		})
		p.mustRaw(t, "set server shop/web2 state drain")
		p.mustRaw(t, "set server shop/web3 state maint")
		err := bal.Preflight(ctx, []string{"web1", "web2", "web3"}, false)
		if !errors.Is(err, lb.ErrNotUp) {
			t.Fatalf("Preflight = %v, want ErrNotUp", err)
		}
		msg := err.Error()
		for _, s := range []string{"web2 is DRAIN", "web3 is MAINT"} {
			if !strings.Contains(msg, "on haproxy "+ep.String()+": "+s) {
				t.Errorf("Preflight = %s\nwant it to name the endpoint and say %q", msg, s)
			}
		}
		// Run every command it gives, as written.
		cmds := 0
		for _, part := range strings.Split(msg, "put it back with `")[1:] {
			cmd, _, _ := strings.Cut(part, "`")
			out, err := exec.CommandContext(ctx, "sh", "-c", cmd).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v %s", cmd, err, out)
			}
			cmds++
		}
		if cmds != 2 {
			t.Fatalf("Preflight gave %d repair commands, want 2: %s", cmds, msg)
		}
		lbtest.Eventually(t, 15*time.Second, "Preflight passes after the repair commands", func() (bool, string) {
			err := bal.Preflight(ctx, []string{"web1", "web2", "web3"}, false)
			return err == nil, fmt.Sprint(err)
		})
		cancel()
	}
}

func TestHAProxyVerifyEnsureOut(t *testing.T) {
	lbtest.RequireBinary(t, haproxyBin)
	t.Parallel()
	bs := startBackends(t, 3)
	p, q := startHAProxy(t, bs), startHAProxy(t, bs)
	// An HA pair: one admin socket each.
	eps := []lb.Endpoint{{Socket: p.Socket}, {TCP: q.TCP}}
	bal := newHAProxyLB(t, eps...)
	lbtest.RunVerifyScenario(t, lbtest.VerifyScenario{
		Balancer: bal, Front: p.Front, Backends: bs,
		Endpoints: []string{eps[0].String(), eps[1].String()},
		PutBack:   func(server string) { p.mustRaw(t, "set server shop/"+server+" state ready") },
	})
}
