package lb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

// A server HAProxy's own check holds DOWN, on real HAProxy: preflight
// refuses it without force and names it DOWN; with force it passes (the
// host is out of service anyway), and the server can be drained, but
// Enable never puts it back while its check fails; once the app answers
// again, Enable brings it back UP.
func TestHAProxyForceTakesADownServerButNeverEnablesItUnhealthy(t *testing.T) {
	lbtest.RequireBinary(t, haproxyBin)
	backends := startBackends(t, 3)
	p := startHAProxy(t, backends)
	bal, err := lb.New(lb.Config{Kind: "haproxy", Backend: "shop", DrainTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond,
		Endpoints: []lb.Endpoint{{Socket: p.Socket}}}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	names := []string{"web1", "web2", "web3"}
	status := func(server string) (lb.ServerState, string) {
		sts, err := bal.States(ctx)
		if err != nil {
			return lb.ServerState{}, err.Error()
		}
		for _, s := range sts {
			if s.Server == server {
				return s, fmt.Sprintf("%s is %s (admin %s, check %s)", server, s.Status, s.Admin, s.CheckStatus)
			}
		}
		return lb.ServerState{}, server + " not listed"
	}
	for _, n := range names {
		lbtest.Eventually(t, 30*time.Second, n+" UP", func() (bool, string) { s, msg := status(n); return s.Status == lb.StatusUp, msg })
	}
	backends[1].Healthy.Store(false)
	lbtest.Eventually(t, 30*time.Second, "web2 DOWN by its check", func() (bool, string) { s, msg := status("web2"); return s.Status == lb.StatusDown, msg })

	err = bal.Preflight(ctx, names, false)
	if !errors.Is(err, lb.ErrNotUp) || !strings.Contains(err.Error(), "web2 is DOWN") || !strings.Contains(err.Error(), "or force to upgrade it as it is") {
		t.Fatalf("Preflight with web2 DOWN = %v, want ErrNotUp naming web2 DOWN and what force does", err)
	}
	if strings.Contains(err.Error(), "web1") || strings.Contains(err.Error(), "web3") {
		t.Errorf("Preflight names healthy servers: %v", err)
	}
	if err := bal.Preflight(ctx, names, true); err != nil {
		t.Fatalf("Preflight force with web2 DOWN = %v, want nil: the host is out of service anyway", err)
	}
	if _, err := bal.Drain(ctx, "web2"); err != nil {
		t.Fatalf("Drain of a DOWN server: %v", err)
	}
	// The app still fails its check: Enable refuses, and the server stays
	// out of rotation (held by the drain), never "ready".
	if err := bal.Enable(ctx, "web2", time.Second); !errors.Is(err, lb.ErrNotUp) {
		t.Fatalf("Enable of an unhealthy server = %v, want ErrNotUp", err)
	}
	if s, msg := status("web2"); !s.OutOfRotation() {
		t.Fatalf("after a refused Enable: %s, want it held out of rotation", msg)
	}
	if err := bal.Verify(ctx, "web2"); err == nil {
		t.Fatal("Verify of a DOWN server = nil")
	}
	// The app answers again (the upgrade fixed it): Enable brings it UP.
	backends[1].Healthy.Store(true)
	if err := bal.Enable(ctx, "web2", 30*time.Second); err != nil {
		t.Fatalf("Enable once healthy: %v", err)
	}
	if err := bal.Verify(ctx, "web2"); err != nil {
		t.Fatalf("Verify after Enable: %v", err)
	}
	if err := bal.Preflight(ctx, names, false); err != nil {
		t.Fatalf("final Preflight: %v", err)
	}
}
