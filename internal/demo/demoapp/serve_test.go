package demoapp

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startServe runs serve on a loopback port; cancel plays SIGTERM.
func startServe(t *testing.T, o serveOptions) (base string, cancel func(), done <-chan int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelFn := context.WithCancel(context.Background())
	ch := make(chan int, 1)
	finished := make(chan struct{})
	go func() { ch <- serve(ctx, ln, o, io.Discard); close(finished) }()
	t.Cleanup(func() {
		cancelFn()
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
		}
	})
	return "http://" + ln.Addr().String(), cancelFn, ch
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeEndpoints(t *testing.T) {
	base, _, _ := startServe(t, serveOptions{Version: "1.2.3"})
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/health", 200, "ok\n"},
		{"/version", 200, "1.2.3\n"},
		{"/", 200, "shop 1.2.3\n"},
		{"/slow?ms=20", 200, "slept 20 ms\n"},
		{"/slow?ms=x", 400, ""},
		{"/nope", 404, ""},
	} {
		code, body := fetch(t, base+tc.path)
		if code != tc.code || (tc.body != "" && body != tc.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
}

func TestServeStartDelayAndFailHealth(t *testing.T) {
	// Still starting: a delay no machine outruns.
	starting, _, _ := startServe(t, serveOptions{Version: "1", StartDelay: time.Hour})
	if code, body := fetch(t, starting+"/health"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("health while starting = %d %q", code, body)
	}
	// Healthy once the delay has passed, and not before: polled, since a
	// busy machine may take longer than the delay to ask.
	t0 := time.Now()
	base, _, _ := startServe(t, serveOptions{Version: "1", StartDelay: 300 * time.Millisecond})
	for {
		asked := time.Now()
		code, body := fetch(t, base+"/health")
		if code == 200 {
			if took := time.Since(t0); took < 300*time.Millisecond {
				t.Fatalf("healthy %s after start, before the 300ms start delay", took)
			}
			break
		}
		if code != 503 || !strings.Contains(body, "starting") {
			t.Fatalf("health while starting = %d %q", code, body)
		}
		if asked.Sub(t0) > 10*time.Second {
			t.Fatal("still starting 10s after a 300ms start delay")
		}
		time.Sleep(10 * time.Millisecond)
	}
	bad, _, _ := startServe(t, serveOptions{Version: "1", FailHealth: true})
	if code, _ := fetch(t, bad+"/health"); code != 503 {
		t.Fatalf("health with fail-health = %d", code)
	}
	if code, _ := fetch(t, bad+"/"); code != 200 {
		t.Fatalf("/ with fail-health = %d", code)
	}
}

func TestServeDrainsInFlightOnTerm(t *testing.T) {
	// The grace and the slow request leave a busy machine a second to ask
	// /health after SIGTERM, and the request is still in flight when the
	// listener closes at the grace's end.
	base, term, done := startServe(t, serveOptions{Version: "1", DrainGrace: time.Second})
	sent := make(chan struct{})
	var once sync.Once
	slow := make(chan int, 1)
	go func() {
		req, err := http.NewRequest(http.MethodGet, base+"/slow?ms=2000", nil)
		if err != nil {
			slow <- -1
			return
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) }}))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request was never sent")
	}
	term()
	if code, body := fetch(t, base+"/health"); code != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("health while draining = %d %q", code, body)
	}
	if code := <-slow; code != 200 {
		t.Fatalf("in-flight request during drain = %d, want 200", code)
	}
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("serve exit = %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not exit after drain")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 200*time.Millisecond); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}

func TestServeCrashAfter(t *testing.T) {
	_, _, done := startServe(t, serveOptions{Version: "1", CrashAfter: 100 * time.Millisecond})
	select {
	case code := <-done:
		if code != ExitCrashed {
			t.Fatalf("exit = %d, want %d", code, ExitCrashed)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("did not crash")
	}
}

func TestApplyConf(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.conf"), []byte("# faults\nfail_health=true\nstart_delay = 3s\ncrash_after=2s\nfuture_key=1\n"), 0o644)
	o := serveOptions{ReleaseDir: dir, CrashAfter: time.Second}
	if err := o.applyConf(); err != nil {
		t.Fatal(err)
	}
	if !o.FailHealth || o.StartDelay != 3*time.Second || o.CrashAfter != time.Second {
		t.Fatalf("merged = %+v", o)
	}
	os.WriteFile(filepath.Join(dir, "app.conf"), []byte("start_delay=soon\n"), 0o644)
	if err := (&serveOptions{ReleaseDir: dir}).applyConf(); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestUsage(t *testing.T) {
	var out, errb strings.Builder
	if code := Main(nil, &out, &errb); code != ExitUsage {
		t.Fatalf("no args = %d", code)
	}
	if code := Main([]string{"serve"}, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "--listen is required") {
		t.Fatalf("serve without flags = %d %q", code, errb.String())
	}
	if code := Main([]string{"bogus"}, &out, &errb); code != ExitUsage {
		t.Fatalf("bogus = %d", code)
	}
	if code := Main([]string{"migrate", "--log", "x", "--version", "1", "--phase", "during"}, &out, &errb); code != ExitUsage {
		t.Fatalf("bad phase = %d", code)
	}
}

// A release with fail_share answers that share of its requests with 500,
// evenly, while /health (and /version) stay green: only traffic figures
// can tell it is bad.
func TestServeFailShare(t *testing.T) {
	base, _, _ := startServe(t, serveOptions{Version: "2.0.0", FailShare: 0.05})
	fails := 0
	for i := 1; i <= 100; i++ {
		code, body := fetch(t, base+"/")
		if code == 500 {
			fails++
			if i%20 != 0 || !strings.Contains(body, "fail_share 0.05") {
				t.Fatalf("request %d failed (%q): want every 20th", i, body)
			}
		}
		if code, _ := fetch(t, base+"/health"); code != 200 {
			t.Fatalf("health with fail_share = %d", code)
		}
	}
	if fails != 5 {
		t.Fatalf("%d of 100 failed, want 5", fails)
	}
	if code, _ := fetch(t, base+"/version"); code != 200 {
		t.Fatalf("/version with fail_share = %d", code)
	}
}

func TestConfFailShare(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		conf string
		want float64
		err  string
	}{
		{"fail_share=0.1\n", 0.1, ""},
		{"", 0, ""},
		{"fail_share=2\n", 0, `fail_share: "2" is not a share between 0 and 1`},
		{"fail_share=lots\n", 0, "is not a share"},
	} {
		if err := os.WriteFile(filepath.Join(dir, "app.conf"), []byte(tc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		o := serveOptions{ReleaseDir: dir}
		err := o.applyConf()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want %q", tc.conf, err, tc.err)
			}
			continue
		}
		if err != nil || o.FailShare != tc.want {
			t.Errorf("%q: share %g, err %v", tc.conf, o.FailShare, err)
		}
	}
}
