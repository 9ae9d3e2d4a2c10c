package minilb_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

// The demo balancer counts what HAProxy counts, in the same `show stat`
// columns, so lb's haproxy driver reads its per-server counters unchanged:
// requests (stot), 5xx responses (hrsp_5xx), failed connections (econ)
// and the response time (rtime).
func TestServerCountersThroughHAProxyDriver(t *testing.T) {
	bs := backends(t, 2)
	bs[0].Fail5xx.Store(true)
	// Checks every hour: web2 stays UP after it stops, so a request meets a
	// refused connection.
	l := start(t, time.Hour, bs...)
	bal, err := lb.New(lb.Config{Kind: lb.KindHAProxy, Backend: "shop", Endpoints: []lb.Endpoint{{TCP: l.AdminAddr()}}}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := bal.(lb.Counters)
	ctx := context.Background()
	client := &http.Client{Timeout: 5 * time.Second}
	codes := map[int]int{}
	for i := 0; i < 20; i++ {
		code, _, err := lbtest.Get(ctx, client, "http://"+l.Addr()+"/x")
		if err != nil {
			t.Fatal(err)
		}
		codes[code]++
	}
	got, err := ctr.ServerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Process != "" {
		t.Fatalf("one endpoint, no pid (minilb cannot name its process): %+v", got)
	}
	w1, w2 := got[0].Servers["web1"], got[0].Servers["web2"]
	if w1.Requests != 10 || w1.Resp5xx != 10 || w2.Requests != 10 || w2.Resp5xx != 0 || codes[500] != 10 || codes[200] != 10 {
		t.Fatalf("web1 %+v, web2 %+v, clients saw %v", w1, w2, codes)
	}
	if w1.RespTimeMs < 0 || w1.ConnErrors != 0 {
		t.Fatalf("web1 %+v", w1)
	}

	bs[1].Stop()
	bs[0].Fail5xx.Store(false)
	for i := 0; i < 4; i++ {
		code, _, err := lbtest.Get(ctx, client, "http://"+l.Addr()+"/x")
		if err != nil || code != 200 {
			t.Fatalf("a GET is retried on the other server after a refused connection: %d %v", code, err)
		}
	}
	got, err = ctr.ServerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w2 := got[0].Servers["web2"]; w2.ConnErrors == 0 || w2.Resp5xx != 0 {
		t.Fatalf("web2 refused connections but counts %+v", w2)
	}
}
