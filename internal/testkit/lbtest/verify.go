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

// VerifyScenario is a running balancer for RunVerifyScenario.
type VerifyScenario struct {
	Balancer lb.Balancer
	Front    string     // "127.0.0.1:port" the balancer serves HTTP on
	Backends []*Backend // Backends[i].Name is the server name in the balancer
	// Endpoints are the Endpoint.String() of every configured endpoint.
	Endpoints []string
	// PutBack puts server back in rotation behind relctl's back on the
	// first endpoint only, as another operator, a config management run or
	// a reload of one instance does.
	PutBack func(server string)
	// AsyncReload: the balancer applies a change some time after the
	// driver returns (nginx -s reload only signals the master; its old
	// workers accept until the new ones run), so new requests avoid a
	// re-drained server only once that happened.
	AsyncReload bool
}

// RunVerifyScenario proves Verify and EnsureOut on a real balancer: Verify
// passes only while the server is in rotation on every endpoint and names
// the endpoints that disagree; EnsureOut leaves a drained, idle server
// alone, and when the server was put back in rotation and is serving a
// request, drains it again, returns only after that request ended, and
// says so.
func RunVerifyScenario(t *testing.T, s VerifyScenario) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bal := s.Balancer
	web1 := s.Backends[0]
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	base := "http://" + s.Front

	if !bal.CanVerify() {
		t.Fatalf("%s: CanVerify = false", bal.Describe())
	}
	for _, b := range s.Backends {
		Eventually(t, 10*time.Second, "Verify "+b.Name, func() (bool, string) {
			err := bal.Verify(ctx, b.Name)
			return err == nil, fmt.Sprint(err)
		})
	}
	if err := bal.Verify(ctx, "nosuchserver"); err == nil || !strings.Contains(err.Error(), "not reported by "+s.Endpoints[0]) {
		t.Fatalf("Verify of an unknown server = %v, want it named as not reported", err)
	}

	// Drained: Verify names every endpoint, EnsureOut has nothing to do.
	if res, err := bal.Drain(ctx, web1.Name); err != nil || !res.Idle {
		t.Fatalf("Drain %s = %+v, %v", web1.Name, res, err)
	}
	err := bal.Verify(ctx, web1.Name)
	if !errors.Is(err, lb.ErrNotUp) {
		t.Fatalf("Verify of drained %s = %v, want ErrNotUp", web1.Name, err)
	}
	for _, ep := range s.Endpoints {
		if !strings.Contains(err.Error(), ep+": DRAIN") {
			t.Errorf("Verify of drained %s = %v, want it to name %s", web1.Name, err, ep)
		}
	}
	if note, err := bal.EnsureOut(ctx, web1.Name); err != nil || note != "" {
		t.Fatalf("EnsureOut of a drained, idle %s = %q, %v; want nothing to do", web1.Name, note, err)
	}

	// Put back behind relctl's back, and serving a slow request.
	s.PutBack(web1.Name)
	Eventually(t, 10*time.Second, web1.Name+" back in rotation", func() (bool, string) {
		code, body, err := Get(ctx, client, base+"/")
		return err == nil && code == 200 && body == web1.Name, fmt.Sprintf("%d %q %v", code, body, err)
	})
	// A request in flight on web1, held there until the test releases it
	// (however slow the machine, EnsureOut cannot find web1 idle before).
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
	slow := make(chan result, 2*len(s.Backends)+2)
	started := 0
	for started < 2*len(s.Backends)+2 && web1.Inflight.Load() == 0 {
		started++
		go func() {
			code, body, err := Get(ctx, client, base+"/hold")
			slow <- result{code, body, err}
		}()
		want := int64(started)
		Eventually(t, 5*time.Second, "held request started", func() (bool, string) {
			var n int64
			for _, b := range s.Backends {
				n += b.Inflight.Load()
			}
			return n >= want, fmt.Sprintf("%d in flight", n)
		})
	}
	if web1.Inflight.Load() == 0 {
		t.Fatalf("no held request reached %s after it was put back", web1.Name)
	}
	type ensured struct {
		note     string
		err      error
		inflight int64 // on web1, when EnsureOut returned
	}
	ensureDone := make(chan ensured, 1)
	go func() {
		note, err := bal.EnsureOut(ctx, web1.Name)
		ensureDone <- ensured{note, err, web1.Inflight.Load()}
	}()
	// EnsureOut drains web1 again, then waits for its request.
	Eventually(t, 10*time.Second, web1.Name+" drained again on "+s.Endpoints[0], func() (bool, string) {
		sts, err := bal.States(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, st := range sts {
			if st.Server == web1.Name && st.Endpoint == s.Endpoints[0] {
				return st.Status == lb.StatusDrain, fmt.Sprintf("%s on %s", st.Status, st.Endpoint)
			}
		}
		return false, "not reported"
	})
	// A wrong EnsureOut, one that does not wait for the request, gets
	// half a second to return early (on a slow machine this proves less,
	// but never fails a right one).
	select {
	case e := <-ensureDone:
		t.Fatalf("EnsureOut returned (%q, %v) while a request was in flight on %s", e.note, e.err, web1.Name)
	case <-time.After(500 * time.Millisecond):
	}
	release()
	e := <-ensureDone
	if e.err != nil {
		t.Fatalf("EnsureOut of %s back in rotation: %v", web1.Name, e.err)
	}
	note := e.note
	t.Logf("EnsureOut: %s", note)
	if want := web1.Name + " was back in rotation on " + s.Endpoints[0]; !strings.Contains(note, want) || !strings.Contains(note, "drained again") {
		t.Fatalf("EnsureOut note = %q, want it to say %q and that it drained again", note, want)
	}
	if e.inflight != 0 {
		t.Fatalf("EnsureOut returned with %d request(s) still on %s", e.inflight, web1.Name)
	}
	for i := 0; i < started; i++ {
		r := <-slow
		if r.err != nil || r.code != 200 {
			t.Fatalf("held request: %d %q %v", r.code, r.body, r.err)
		}
	}
	if err := bal.Verify(ctx, web1.Name); !errors.Is(err, lb.ErrNotUp) {
		t.Fatalf("Verify after EnsureOut = %v, want ErrNotUp", err)
	}
	avoided := func() (bool, string) {
		hits := web1.Hits.Load()
		for i := 0; i < 2*len(s.Backends); i++ {
			code, body, err := Get(ctx, client, base+"/")
			if err != nil || code != 200 {
				t.Fatalf("request after EnsureOut: %d %q %v", code, body, err)
			}
			if body == web1.Name {
				return false, "a request after EnsureOut reached " + web1.Name
			}
		}
		if n := web1.Hits.Load() - hits; n != 0 {
			return false, fmt.Sprintf("%s served %d request(s) after EnsureOut", web1.Name, n)
		}
		return true, ""
	}
	if s.AsyncReload {
		Eventually(t, 10*time.Second, "the re-drain took effect", avoided)
	}
	if ok, msg := avoided(); !ok {
		t.Fatal(msg)
	}

	// Back in service: Verify passes again.
	if err := bal.Enable(ctx, web1.Name, 10*time.Second); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	if err := bal.Verify(ctx, web1.Name); err != nil {
		t.Fatalf("Verify after Enable: %v", err)
	}
}
