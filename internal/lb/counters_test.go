package lb

import (
	"errors"
	"strings"
	"testing"
)

// show-stat-5xx.csv was recorded from HAProxy 2.6.12 on this machine by
// TestHAProxyServerStatsReal (RELCTL_DUMP_SHOW_STAT=path): 40 requests
// round-robin over web1, which answers 500, and web2, which answers 200.
func TestParseServerCountersRecorded(t *testing.T) {
	got, err := parseServerCounters(readTestdata(t, "show-stat-5xx.csv"), "shop")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Stats{
		"web1": {Requests: 20, Resp5xx: 20, ConnErrors: 0, RespErrors: 0, RespTimeMs: 0},
		"web2": {Requests: 20, Resp5xx: 0, ConnErrors: 0, RespErrors: 0, RespTimeMs: 0},
	}
	if len(got) != len(want) || got["web1"] != want["web1"] || got["web2"] != want["web2"] {
		t.Fatalf("got %+v, want %+v (FRONTEND and BACKEND rows must be skipped)", got, want)
	}
	// The older sample has no 5xx but the same columns.
	got, err = parseServerCounters(readTestdata(t, "show-stat-sessions.csv"), "shop")
	if err != nil || got["web1"].Requests != 1 || got["web4"].Requests != 1 {
		t.Fatalf("show-stat-sessions.csv: %+v %v", got, err)
	}
}

func TestParseServerCountersByName(t *testing.T) {
	// Other column order, other extra columns, empty econ/rtime (as
	// HAProxy leaves columns that do not apply): parsed by name.
	reply := "# svname,rtime,hrsp_5xx,pxname,foo,stot,eresp,econ\n" +
		"web1,12,3,shop,x,100,1,2\n" +
		"web2,,0,shop,y,50,,\n" +
		"web9,7,7,other,z,7,7,7\n" +
		"BACKEND,0,3,shop,,150,1,2\n\n"
	got, err := parseServerCounters(reply, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if w := (Stats{Requests: 100, Resp5xx: 3, ConnErrors: 2, RespErrors: 1, RespTimeMs: 12}); got["web1"] != w {
		t.Fatalf("web1: got %+v want %+v", got["web1"], w)
	}
	if w := (Stats{Requests: 50, RespTimeMs: -1}); got["web2"] != w {
		t.Fatalf("web2: got %+v want %+v", got["web2"], w)
	}
	if len(got) != 2 {
		t.Fatalf("other backends and aggregate rows must be skipped: %+v", got)
	}
}

func TestParseServerCountersErrors(t *testing.T) {
	tests := []struct {
		name, reply, want string
		is                error
	}{
		{"no such proxy", "No such proxy.\n\n", "No such proxy", ErrUnknownBackend},
		{"not csv", "Unknown command\n", "unexpected reply", nil},
		{"no 5xx column", "# pxname,svname,stot\nshop,web1,3\n", `no "hrsp_5xx" column`, nil},
		{"garbage count", "# pxname,svname,stot,hrsp_5xx\nshop,web1,3,lots\n", `hrsp_5xx of shop/web1 (row 2): "lots" is not a count`, nil},
		{"negative count", "# pxname,svname,stot,hrsp_5xx\nshop,web1,-3,0\n", `stot of shop/web1 (row 2): "-3"`, nil},
		{"no servers", "# pxname,svname,stot,hrsp_5xx\nshop,BACKEND,3,0\n", `has no servers`, ErrUnknownBackend},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServerCounters(tt.reply, "shop")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("%v does not wrap %v", err, tt.is)
			}
		})
	}
}

// Only balancers with per-server counters implement Counters: nginx open
// source has none, and neither have exec or none.
func TestCountersOnlyWhereAvailable(t *testing.T) {
	for _, cfg := range []Config{
		{Kind: KindNginx, Backend: "shop", UpstreamFile: "/etc/nginx/up.conf"},
		{Kind: KindExec, Exec: ExecCommands{Drain: "true", Enable: "true"}},
		{Kind: KindNone},
	} {
		b, err := New(cfg, LocalConnector{})
		if err != nil {
			t.Fatalf("%s: %v", cfg.Kind, err)
		}
		if _, ok := b.(Counters); ok {
			t.Fatalf("%s claims per-server counters", cfg.Kind)
		}
	}
	b, err := New(Config{Kind: KindHAProxy, Backend: "shop", Endpoints: []Endpoint{{TCP: "127.0.0.1:1"}}}, LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(Counters); !ok {
		t.Fatal("haproxy must implement Counters")
	}
}
