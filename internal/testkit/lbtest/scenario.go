package lbtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
)

// Scenario is a running balancer in front of Backends, as the drain/enable
// scenario needs it.
type Scenario struct {
	Balancer lb.Balancer
	Backend  string     // backend name, for Raw commands
	Front    string     // "127.0.0.1:port" the balancer serves HTTP on
	Backends []*Backend // Backends[i].Name is the server name in the balancer
	// Endpoints is how many endpoints the balancer was configured with;
	// States must report each server that many times.
	Endpoints int
	// Raw sends one runtime API command to every endpoint (for setting MAINT
	// behind relctl's back). Nil skips the MAINT part.
	Raw func(cmd string)
}

// states returns server → the states reported for it by every endpoint.
func (s *Scenario) states(t testing.TB, ctx context.Context) map[string][]lb.ServerState {
	t.Helper()
	sts, err := s.Balancer.States(ctx)
	if err != nil {
		t.Fatalf("States: %v", err)
	}
	out := map[string][]lb.ServerState{}
	for _, st := range sts {
		out[st.Server] = append(out[st.Server], st)
	}
	return out
}

// allStatus reports whether server has status on every endpoint.
func (s *Scenario) allStatus(t testing.TB, ctx context.Context, server string, status lb.Status) (bool, string) {
	t.Helper()
	sts := s.states(t, ctx)[server]
	if len(sts) != s.Endpoints {
		return false, fmt.Sprintf("%s reported by %d endpoints, want %d", server, len(sts), s.Endpoints)
	}
	for _, st := range sts {
		if st.Status != status {
			return false, fmt.Sprintf("%s is %s on %s (check %s)", server, st.Status, st.Endpoint, st.CheckStatus)
		}
	}
	return true, ""
}

// RunDrainScenario proves the zero-downtime contract on a real balancer:
// a request in flight on a draining server completes, new requests avoid
// it, Drain reports idle only after it ended, Preflight refuses drained and
// maintenance servers unless forced, Enable waits for the balancer's own
// check and puts the server back into service, and Restore re-enables.
func RunDrainScenario(t *testing.T, s Scenario) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	bal := s.Balancer
	names := make([]string, len(s.Backends))
	for i, b := range s.Backends {
		names[i] = b.Name
	}
	web1 := s.Backends[0]
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	base := "http://" + s.Front

	for _, n := range names {
		Eventually(t, 10*time.Second, n+" UP", func() (bool, string) { return s.allStatus(t, ctx, n, lb.StatusUp) })
	}
	if err := bal.Preflight(ctx, names, false); err != nil {
		t.Fatalf("Preflight on a healthy backend: %v", err)
	}
	weightBefore := s.states(t, ctx)[web1.Name][0].Weight

	// A request in flight on web1, held there until the test releases it:
	// however slow the machine, it is still in flight when the drain is
	// seen and while new requests go elsewhere, and the drain cannot be
	// idle before it ends.
	type result struct {
		code int
		body string
		err  error
	}
	release := func() {
		for _, b := range s.Backends {
			b.Release()
		}
	}
	defer release()
	slowDone := make(chan result, len(s.Backends)+1)
	slowOnWeb1 := 0
	for i := 0; i < len(s.Backends)+1 && web1.Inflight.Load() == 0; i++ {
		slowOnWeb1++
		go func() {
			code, body, err := Get(ctx, client, base+"/hold")
			slowDone <- result{code, body, err}
		}()
		Eventually(t, 5*time.Second, "held request started", func() (bool, string) {
			var n int64
			for _, b := range s.Backends {
				n += b.Inflight.Load()
			}
			return n >= int64(i+1), fmt.Sprintf("%d in flight", n)
		})
	}
	if web1.Inflight.Load() == 0 {
		t.Fatalf("could not get a held request onto %s", web1.Name)
	}

	type drained struct {
		res      lb.DrainResult
		err      error
		inflight int64 // on web1, when Drain returned
	}
	drainDone := make(chan drained, 1)
	go func() {
		res, err := bal.Drain(ctx, web1.Name)
		drainDone <- drained{res, err, web1.Inflight.Load()}
	}()
	Eventually(t, 5*time.Second, web1.Name+" DRAIN", func() (bool, string) { return s.allStatus(t, ctx, web1.Name, lb.StatusDrain) })
	if web1.Inflight.Load() == 0 {
		t.Fatalf("the held request on %s ended before it was released", web1.Name)
	}
	// New requests, on the same keep-alive client, avoid the draining server.
	hits := web1.Hits.Load()
	for i := 0; i < 3*len(s.Backends); i++ {
		code, body, err := Get(ctx, client, base+"/")
		if err != nil || code != 200 {
			t.Fatalf("request during drain: %d %q %v", code, body, err)
		}
		if body == web1.Name {
			t.Fatalf("request during drain went to draining %s", web1.Name)
		}
	}
	if got := web1.Hits.Load(); got != hits {
		t.Fatalf("%s got %d new requests while draining", web1.Name, got-hits)
	}
	// A wrong Drain, one that does not wait for the request, gets half a
	// second to return early (on a slow machine this proves less, but
	// never fails a right one).
	select {
	case d := <-drainDone:
		t.Fatalf("Drain returned (%+v, %v) while a request was in flight on %s", d.res, d.err, web1.Name)
	case <-time.After(500 * time.Millisecond):
	}
	release()

	d := <-drainDone
	if d.err != nil {
		t.Fatalf("Drain: %v", d.err)
	}
	t.Logf("Drain %s: %+v", web1.Name, d.res)
	if !d.res.Idle || d.res.Remaining != 0 || d.res.Assumed {
		t.Fatalf("Drain = %+v, want idle and counted", d.res)
	}
	// The drain was reported idle only once web1's request had ended
	// there (its handler counts it out before the balancer sees the end).
	if d.inflight != 0 {
		t.Fatalf("Drain reported idle with %d request(s) still in flight on %s", d.inflight, web1.Name)
	}
	// Every held request completed with 200, including the one on web1.
	sawWeb1 := false
	for i := 0; i < slowOnWeb1; i++ {
		r := <-slowDone
		if r.err != nil || r.code != 200 {
			t.Fatalf("held request: %d %q %v", r.code, r.body, r.err)
		}
		if r.body == web1.Name {
			sawWeb1 = true
		}
	}
	if !sawWeb1 {
		t.Fatalf("no held request answered by %s", web1.Name)
	}
	if web1.Inflight.Load() != 0 {
		t.Fatalf("%s still has requests in flight after an idle drain", web1.Name)
	}

	// States and Preflight see the drain; weights are untouched.
	for _, st := range s.states(t, ctx)[web1.Name] {
		if st.Status != lb.StatusDrain || st.Weight != weightBefore {
			t.Fatalf("after drain %s on %s = %+v, want DRAIN with weight %d", web1.Name, st.Endpoint, st, weightBefore)
		}
	}
	err := bal.Preflight(ctx, names, false)
	if !errors.Is(err, lb.ErrNotUp) || !strings.Contains(err.Error(), web1.Name) || !strings.Contains(err.Error(), "DRAIN") {
		t.Fatalf("Preflight with %s drained = %v, want ErrNotUp naming it and DRAIN", web1.Name, err)
	}
	if err := bal.Preflight(ctx, names, true); err != nil {
		t.Fatalf("Preflight force with %s drained: %v", web1.Name, err)
	}
	if err := bal.Preflight(ctx, []string{"nosuchserver"}, true); !errors.Is(err, lb.ErrUnknownServer) {
		t.Fatalf("Preflight unknown server = %v, want ErrUnknownServer", err)
	}
	if _, err := bal.Drain(ctx, "nosuchserver"); !errors.Is(err, lb.ErrUnknownServer) {
		t.Fatalf("Drain unknown server = %v, want ErrUnknownServer", err)
	}

	// Enable refuses while the balancer's own check fails, leaving web1 out.
	web1.Healthy.Store(false)
	Eventually(t, 5*time.Second, web1.Name+" check failing", func() (bool, string) {
		for _, st := range s.states(t, ctx)[web1.Name] {
			if st.CheckStatus == "L7OK" {
				return false, st.Endpoint + " still L7OK"
			}
		}
		return true, ""
	})
	hits = web1.Hits.Load()
	if err := bal.Enable(ctx, web1.Name, 400*time.Millisecond); !errors.Is(err, lb.ErrNotUp) {
		t.Fatalf("Enable with failing check = %v, want ErrNotUp", err)
	}
	for _, st := range s.states(t, ctx)[web1.Name] {
		if st.Status == lb.StatusUp {
			t.Fatalf("Enable with failing check left %s UP on %s", web1.Name, st.Endpoint)
		}
	}
	for i := 0; i < 2*len(s.Backends); i++ {
		if code, body, err := Get(ctx, client, base+"/"); err != nil || code != 200 || body == web1.Name {
			t.Fatalf("request while %s unhealthy: %d %q %v", web1.Name, code, body, err)
		}
	}
	if web1.Hits.Load() != hits {
		t.Fatalf("%s served while its check failed", web1.Name)
	}

	// Healthy again: Enable waits for the check, sets ready, verifies UP.
	web1.Healthy.Store(true)
	start := time.Now()
	if err := bal.Enable(ctx, web1.Name, 10*time.Second); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	t.Logf("Enable took %s", time.Since(start).Round(time.Millisecond))
	if ok, msg := s.allStatus(t, ctx, web1.Name, lb.StatusUp); !ok {
		t.Fatalf("right after Enable: %s", msg)
	}
	Eventually(t, 5*time.Second, web1.Name+" serving again", func() (bool, string) {
		code, body, err := Get(ctx, client, base+"/")
		return err == nil && code == 200 && body == web1.Name, fmt.Sprintf("%d %q %v", code, body, err)
	})
	if w := s.states(t, ctx)[web1.Name][0].Weight; w != weightBefore {
		t.Fatalf("weight after enable = %d, want %d", w, weightBefore)
	}

	// Restore re-asserts ready for servers relctl touched.
	web2 := s.Backends[1]
	res, err := bal.Drain(ctx, web2.Name)
	if err != nil || !res.Idle {
		t.Fatalf("Drain %s = %+v, %v", web2.Name, res, err)
	}
	if err := bal.Restore(ctx, []string{web2.Name}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	Eventually(t, 5*time.Second, web2.Name+" UP after Restore", func() (bool, string) { return s.allStatus(t, ctx, web2.Name, lb.StatusUp) })

	// MAINT set behind relctl's back: refused unless forced; Enable recovers.
	if s.Raw != nil && len(s.Backends) > 2 {
		web3 := s.Backends[2]
		s.Raw("set server " + s.Backend + "/" + web3.Name + " state maint")
		Eventually(t, 5*time.Second, web3.Name+" MAINT", func() (bool, string) { return s.allStatus(t, ctx, web3.Name, lb.StatusMaint) })
		err := bal.Preflight(ctx, []string{web3.Name}, false)
		if !errors.Is(err, lb.ErrNotUp) || !strings.Contains(err.Error(), "MAINT") {
			t.Fatalf("Preflight with %s in maint = %v, want ErrNotUp naming MAINT", web3.Name, err)
		}
		if err := bal.Preflight(ctx, []string{web3.Name}, true); err != nil {
			t.Fatalf("Preflight force with maint: %v", err)
		}
		if err := bal.Enable(ctx, web3.Name, 10*time.Second); err != nil {
			t.Fatalf("Enable from MAINT: %v", err)
		}
		if ok, msg := s.allStatus(t, ctx, web3.Name, lb.StatusUp); !ok {
			t.Fatalf("after Enable from MAINT: %s", msg)
		}
	}
	if err := bal.Preflight(ctx, names, false); err != nil {
		t.Fatalf("final Preflight: %v", err)
	}
}
