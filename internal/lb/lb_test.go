package lb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	conn := LocalConnector{}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"no kind", Config{}, "balancer.kind is required"},
		{"unknown kind", Config{Kind: "f5"}, `balancer.kind "f5" is unknown`},
		{"none", Config{Kind: "none"}, ""},
		{"haproxy ok", Config{Kind: "haproxy", Backend: "shop", Endpoints: []Endpoint{{TCP: "127.0.0.1:9999"}, {SSH: "lb1", Socket: "/run/haproxy/admin.sock"}}}, ""},
		{"haproxy no backend", Config{Kind: "haproxy", Endpoints: []Endpoint{{TCP: "127.0.0.1:9999"}}}, "balancer.backend is required"},
		{"haproxy bad backend", Config{Kind: "haproxy", Backend: "shop;show stat", Endpoints: []Endpoint{{TCP: "127.0.0.1:9999"}}}, "balancer.backend"},
		{"haproxy no endpoints", Config{Kind: "haproxy", Backend: "shop"}, "balancer.endpoints"},
		{"haproxy empty endpoint", Config{Kind: "haproxy", Backend: "shop", Endpoints: []Endpoint{{TCP: "127.0.0.1:1"}, {SSH: "lb1"}}}, "balancer.endpoints[1]: socket or tcp is required"},
		{"haproxy both", Config{Kind: "haproxy", Backend: "shop", Endpoints: []Endpoint{{TCP: "127.0.0.1:1", Socket: "/a"}}}, "not both"},
		{"haproxy relative socket", Config{Kind: "haproxy", Backend: "shop", Endpoints: []Endpoint{{Socket: "admin.sock"}}}, "balancer.endpoints[0].socket"},
		{"haproxy bad tcp", Config{Kind: "haproxy", Backend: "shop", Endpoints: []Endpoint{{TCP: "9999"}}}, "balancer.endpoints[0].tcp"},
		{"nginx ok", Config{Kind: "nginx", Backend: "shop", UpstreamFile: "/etc/nginx/conf.d/shop.conf"}, ""},
		{"nginx no file", Config{Kind: "nginx", Backend: "shop"}, "balancer.upstream_file is required"},
		{"nginx no backend", Config{Kind: "nginx", UpstreamFile: "/etc/nginx/x.conf"}, "balancer.backend is required"},
		{"nginx socket endpoint", Config{Kind: "nginx", Backend: "shop", UpstreamFile: "/x", Endpoints: []Endpoint{{Socket: "/a"}}}, "balancer.endpoints[0]"},
		{"nginx bad idle check", Config{Kind: "nginx", Backend: "shop", UpstreamFile: "/x", IdleCheck: "{{.Nope}}"}, "balancer.idle_check"},
		{"exec ok", Config{Kind: "exec", Exec: ExecCommands{Drain: "lbctl drain {{.Server}}", Enable: "lbctl enable {{.Server}}"}}, ""},
		{"exec no drain", Config{Kind: "exec", Exec: ExecCommands{Enable: "x"}}, "balancer.exec.drain is required"},
		{"exec no enable", Config{Kind: "exec", Exec: ExecCommands{Drain: "x"}}, "balancer.exec.enable is required"},
		{"exec bad template", Config{Kind: "exec", Exec: ExecCommands{Drain: "x {{.Server", Enable: "y"}}, "balancer.exec.drain"},
		{"exec unknown field", Config{Kind: "exec", Exec: ExecCommands{Drain: "x", Enable: "y", State: "{{.Host}}"}}, "balancer.exec.state"},
		{"negative drain", Config{Kind: "none", DrainTimeout: -time.Second}, "balancer.drain_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, conn)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestNone(t *testing.T) {
	b, err := New(Config{Kind: "none"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if b.Kind() != "none" || !strings.Contains(b.Describe(), "no-ops") {
		t.Errorf("Kind/Describe = %q %q", b.Kind(), b.Describe())
	}
	res, err := b.Drain(ctx, "web1")
	if err != nil || res != (DrainResult{Idle: true}) {
		t.Errorf("Drain = %+v, %v", res, err)
	}
	if err := b.Enable(ctx, "web1", time.Second); err != nil {
		t.Error(err)
	}
	if err := b.Preflight(ctx, []string{"web1"}, false); err != nil {
		t.Error(err)
	}
	if err := b.Restore(ctx, []string{"web1"}); err != nil {
		t.Error(err)
	}
}

func TestHAProxyUnreachable(t *testing.T) {
	b, err := New(Config{Kind: "haproxy", Backend: "shop", Endpoints: []Endpoint{{Socket: t.TempDir() + "/missing.sock"}}}, LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = b.Preflight(ctx, []string{"web1"}, false)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "missing.sock") {
		t.Errorf("Preflight = %v, want ErrUnreachable naming the socket", err)
	}
	_, err = b.Drain(ctx, "web1")
	if !errors.Is(err, ErrUnreachable) || !strings.HasPrefix(err.Error(), "drain web1 on haproxy ") {
		t.Errorf("Drain = %v, want ErrUnreachable prefixed with the operation", err)
	}
	if _, err := b.Drain(ctx, "web1\nset server shop/web2 state maint"); !errors.Is(err, ErrUnknownServer) {
		t.Errorf("Drain with an injected command = %v, want refusal", err)
	}
}

func TestEndpointString(t *testing.T) {
	for ep, want := range map[Endpoint]string{
		{}:                                  "local",
		{SSH: "lb1"}:                        "lb1",
		{TCP: "127.0.0.1:9999"}:             "127.0.0.1:9999",
		{SSH: "lb1", Socket: "/run/a.sock"}: "lb1:/run/a.sock",
	} {
		if got := ep.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", ep, got, want)
		}
	}
}
