package minilb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/minilb"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

func start(t *testing.T, interval time.Duration, backends ...*lbtest.Backend) *minilb.LB {
	t.Helper()
	cfg := minilb.Config{Backend: "shop", CheckInterval: interval}
	for _, b := range backends {
		cfg.Servers = append(cfg.Servers, minilb.Server{Name: b.Name, Addr: b.Addr})
	}
	l, err := minilb.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func backends(t *testing.T, n int) []*lbtest.Backend {
	bs := make([]*lbtest.Backend, n)
	for i := range bs {
		bs[i] = lbtest.StartBackend(t, fmt.Sprintf("web%d", i+1), fmt.Sprintf("127.0.0.%d", 21+i))
	}
	return bs
}

// admin sends one line to the admin socket like socat and returns the reply.
func admin(t *testing.T, addr, line string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The haproxy driver, unchanged, drives minilb through the scenario real
// HAProxy passes.
func TestHAProxyDriverDrivesMinilb(t *testing.T) {
	t.Parallel()
	bs := backends(t, 3)
	l := start(t, 50*time.Millisecond, bs...)
	bal, err := lb.New(lb.Config{Kind: "haproxy", Backend: "shop", DrainTimeout: 10 * time.Second,
		PollInterval: 20 * time.Millisecond, Endpoints: []lb.Endpoint{{TCP: l.AdminAddr()}}}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	lbtest.RunDrainScenario(t, lbtest.Scenario{
		Balancer: bal, Backend: "shop", Front: l.Addr(), Backends: bs, Endpoints: 1,
		Raw: func(cmd string) {
			if reply := admin(t, l.AdminAddr(), cmd); strings.TrimSpace(reply) != "" {
				t.Fatalf("%s: %q", cmd, reply)
			}
		},
	})
}

func TestRetryAnotherServerForIdempotentRequests(t *testing.T) {
	t.Parallel()
	bs := backends(t, 2)
	dead := lbtest.FreeAddr(t, "127.0.0.23") // nothing listens here
	l, err := minilb.Start(minilb.Config{Backend: "shop", CheckInterval: time.Hour, Servers: []minilb.Server{
		{Name: "web1", Addr: bs[0].Addr}, {Name: "web2", Addr: bs[1].Addr}, {Name: "ghost", Addr: dead},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The first check saw ghost fail once; with fall 2 it is still UP and
	// picked, so requests to it meet a transport error.
	if st := admin(t, l.AdminAddr(), "show stat shop 4 3"); !strings.Contains(st, ",UP,") || !strings.Contains(st, "L4CON") {
		t.Fatalf("ghost should be UP with a failed check:\n%s", st)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	base := "http://" + l.Addr()
	for i := 0; i < 9; i++ {
		code, body, err := lbtest.Get(context.Background(), client, base+"/")
		if err != nil || code != 200 || (body != "web1" && body != "web2") {
			t.Fatalf("GET %d: %d %q %v (a GET must be retried on another server)", i, code, body, err)
		}
	}
	// A POST is not retried: its failure is reported, never dropped.
	saw502 := false
	for i := 0; i < 6; i++ {
		resp, err := client.Post(base+"/", "text/plain", strings.NewReader("order"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
		case 502:
			saw502 = true
			if !strings.Contains(string(b), "ghost") {
				t.Errorf("502 body %q does not name the server", b)
			}
		default:
			t.Fatalf("POST: %d %s", resp.StatusCode, b)
		}
	}
	if !saw502 {
		t.Error("no POST reached the dead server; expected one 502 in six")
	}
}

func TestNoServerAvailable(t *testing.T) {
	t.Parallel()
	bs := backends(t, 1)
	l := start(t, 20*time.Millisecond, bs...)
	if r := admin(t, l.AdminAddr(), "set server shop/web1 state maint"); strings.TrimSpace(r) != "" {
		t.Fatal(r)
	}
	code, body, err := lbtest.Get(context.Background(), http.DefaultClient, "http://"+l.Addr()+"/")
	if err != nil || code != 503 {
		t.Fatalf("GET with every server in maint = %d %q %v, want 503", code, body, err)
	}
}

func TestWeightZeroTakesNoNewRequests(t *testing.T) {
	t.Parallel()
	bs := backends(t, 2)
	l := start(t, 20*time.Millisecond, bs...)
	if r := admin(t, l.AdminAddr(), "set server shop/web1 weight 0"); strings.TrimSpace(r) != "" {
		t.Fatal(r)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 6; i++ {
		if _, body, _ := lbtest.Get(context.Background(), client, "http://"+l.Addr()+"/"); body != "web2" {
			t.Fatalf("request %d went to %q with web1 at weight 0", i, body)
		}
	}
	if r := admin(t, l.AdminAddr(), "set server shop/web1 weight 3"); strings.TrimSpace(r) != "" {
		t.Fatal(r)
	}
	got := map[string]int{}
	for i := 0; i < 8; i++ {
		_, body, _ := lbtest.Get(context.Background(), client, "http://"+l.Addr()+"/")
		got[body]++
	}
	if got["web1"] != 6 || got["web2"] != 2 {
		t.Fatalf("weights 3:1 over 8 requests gave %v", got)
	}
}

func TestAdminReplies(t *testing.T) {
	t.Parallel()
	bs := backends(t, 2)
	l := start(t, 20*time.Millisecond, bs...)
	tests := []struct{ cmd, want string }{
		{"set server shop/web1 state drain", "\n"},
		{"set server shop/nope state drain", "No such server.\n\n"},
		{"set server nope/web1 state drain", "No such backend.\n\n"},
		{"set server web1 state drain", "Require 'backend/server'.\n\n"},
		{"set server shop/web1 state bogus", "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"},
		{"set server shop/web1 weight 999", "Weight must be an integer between 0 and 256 (minilb has no relative weights).\n\n"},
		{"show servers state nope", "Can't find backend.\n\n"},
		{"show stat nope 4 -1", "No such proxy.\n\n"},
		{"set server shop/web1 state ready;set server shop/web2 state ready", "\n\n"},
	}
	for _, tt := range tests {
		if got := admin(t, l.AdminAddr(), tt.cmd); got != tt.want {
			t.Errorf("%q answered %q, want %q", tt.cmd, got, tt.want)
		}
	}
	if got := admin(t, l.AdminAddr(), "bogus command"); !strings.HasPrefix(got, "Unknown command, but maybe one of the following ones is a better match:\n") {
		t.Errorf("unknown command answered %q", got)
	}
	st := admin(t, l.AdminAddr(), "show stat")
	for _, want := range []string{"# pxname,svname,qcur,qmax,scur,", "\nfe,FRONTEND,", "\nshop,web1,", "\nshop,BACKEND,"} {
		if !strings.Contains(st, want) {
			t.Errorf("show stat lacks %q:\n%s", want, st)
		}
	}
	ss := admin(t, l.AdminAddr(), "show servers state shop")
	if !strings.HasPrefix(ss, "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ") ||
		!strings.Contains(ss, "\n3 shop 1 web1 127.0.0.21 2 0 1 1 ") {
		t.Errorf("show servers state:\n%s", ss)
	}
}

func TestStartValidation(t *testing.T) {
	for _, cfg := range []minilb.Config{
		{},
		{Backend: "shop"},
		{Backend: "shop", Servers: []minilb.Server{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "a", Addr: "127.0.0.1:2"}}},
		{Backend: "shop", Servers: []minilb.Server{{Name: "a"}}},
	} {
		if l, err := minilb.Start(cfg); err == nil {
			l.Close()
			t.Errorf("Start(%+v) = nil error", cfg)
		}
	}
}
