package lb_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

// TestHAProxyServerStatsReal sends known traffic through a real HAProxy to
// one server that answers 500 and one that answers 200, and checks each
// server's counters; then reloads HAProxy and checks that the sample names
// a new process and that the counters started again from zero.
func TestHAProxyServerStatsReal(t *testing.T) {
	bad := lbtest.StartBackend(t, "web1", "127.0.0.1")
	good := lbtest.StartBackend(t, "web2", "127.0.0.1")
	bad.Fail5xx.Store(true)
	p := startHAProxy(t, []*lbtest.Backend{bad, good})
	bal, err := lb.New(lb.Config{Kind: lb.KindHAProxy, Backend: "shop", Endpoints: []lb.Endpoint{{Socket: p.Socket}, {TCP: p.TCP}}}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	ctr, ok := bal.(lb.Counters)
	if !ok {
		t.Fatal("the haproxy driver does not implement lb.Counters")
	}
	ctx := context.Background()
	lbtest.Eventually(t, 10*time.Second, "both servers UP", func() (bool, string) {
		states, err := bal.States(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range states {
			if s.Status != lb.StatusUp {
				return false, s.Server + " is " + string(s.Status)
			}
		}
		return true, ""
	})
	before, err := ctr.ServerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 || before[0].Endpoint != p.Socket || before[1].Endpoint != p.TCP {
		t.Fatalf("want one sample per endpoint (%s, %s), got %+v", p.Socket, p.TCP, before)
	}
	if before[0].Process == "" || before[0].Process != before[1].Process {
		t.Fatalf("both endpoints are one process and must name it: %q vs %q", before[0].Process, before[1].Process)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	codes := map[int]int{}
	const n = 40
	for i := 0; i < n; i++ {
		code, _, err := lbtest.Get(ctx, client, "http://"+p.Front+"/x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		codes[code]++
	}
	after, err := ctr.ServerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("RELCTL_DUMP_SHOW_STAT"); out != "" {
		// Records the testdata of the parser's unit tests.
		reply, err := p.raw("unix", p.Socket, "show stat")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, []byte(reply), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := func(server string) (req, e5 int64) {
		a, b := after[0].Servers[server], before[0].Servers[server]
		return a.Requests - b.Requests, a.Resp5xx - b.Resp5xx
	}
	req1, e1 := d("web1")
	req2, e2 := d("web2")
	if req1+req2 != n || req1 != int64(codes[500]) || e1 != req1 || e2 != 0 || req2 != int64(codes[200]) {
		t.Fatalf("counters: web1 %d requests %d 5xx, web2 %d requests %d 5xx; clients saw %v", req1, e1, req2, e2, codes)
	}
	if got := after[0].Servers["web1"].RespTimeMs; got < 0 {
		t.Fatalf("rtime not read: %d", got)
	}
	if after[0].Servers["web1"] != after[1].Servers["web1"] {
		t.Fatalf("the two admin sockets of one process disagree: %+v vs %+v", after[0].Servers["web1"], after[1].Servers["web1"])
	}

	_, newPid := p.reload(t)
	var reloaded []lb.CounterSample
	lbtest.Eventually(t, 10*time.Second, "both endpoints answer from the new process", func() (bool, string) {
		reloaded, err = ctr.ServerStats(ctx)
		if err != nil {
			return false, err.Error()
		}
		return reloaded[0].Process != after[0].Process && reloaded[1].Process == reloaded[0].Process, reloaded[0].Process + " / " + reloaded[1].Process
	})
	if reloaded[0].Servers["web1"].Requests >= after[0].Servers["web1"].Requests {
		t.Fatalf("after the reload (pid %d) web1's counter did not start again: %d then %d", newPid, after[0].Servers["web1"].Requests, reloaded[0].Servers["web1"].Requests)
	}
}
