// Package lbtest holds test helpers shared by the lb drivers' integration
// tests and the sandbox balancer's tests: small HTTP backends with /health
// and /slow, process helpers, and the drain/enable scenario every
// HAProxy-speaking balancer must pass. It is imported only from tests.
package lbtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/demo/proc"
)

// Backend is an application server for tests. Paths:
//
//	/health      200 while Healthy, else 503
//	/slow?ms=N   sleeps N ms, then answers its name
//	/hold        waits until Release (or the client gives up), then answers its name
//	/inflight    the number of requests in flight (not counting itself)
//	anything     answers its name (500 while Fail5xx is set)
//
// A test that needs a request in flight while it drains uses /hold, not
// /slow: on a busy machine any fixed N can end before the balancer acted.
type Backend struct {
	Name     string
	Addr     string // "127.0.0.11:34567"
	Healthy  atomic.Bool
	Inflight atomic.Int64
	Hits     atomic.Int64 // non-health requests started
	Fail5xx  atomic.Bool  // answer every non-health request with 500 (health stays green)
	srv      *httptest.Server

	releaseOnce sync.Once
	released    chan struct{}
}

// Release lets every /hold request, present and future, answer.
func (b *Backend) Release() { b.releaseOnce.Do(func() { close(b.released) }) }

// StartBackend serves a Backend on ip (a 127.0.0.0/8 address) and a free port.
func StartBackend(t testing.TB, name, ip string) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	b := &Backend{Name: name, Addr: ln.Addr().String(), released: make(chan struct{})}
	b.Healthy.Store(true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	b.srv = srv
	t.Cleanup(srv.Close)
	t.Cleanup(b.Release) // runs first: Close waits for the requests in flight
	return b
}

func (b *Backend) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/health":
		if b.Healthy.Load() {
			io.WriteString(w, "ok\n")
		} else {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
		}
		return
	case "/inflight":
		fmt.Fprintf(w, "%d\n", b.Inflight.Load())
		return
	}
	b.Hits.Add(1)
	b.Inflight.Add(1)
	defer b.Inflight.Add(-1)
	switch r.URL.Path {
	case "/slow":
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	case "/hold":
		select {
		case <-b.released:
		case <-r.Context().Done():
			return
		}
	}
	if b.Fail5xx.Load() {
		http.Error(w, b.Name+": injected 500", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, b.Name)
}

// FreeAddr returns "ip:port" with a port that was free a moment ago. Bound
// later by another process (haproxy, nginx), the port can be taken in
// between by anything that binds on ip (another test's FreeAddr, an
// httptest server): give such a port an ip of its own, OwnLoopbackIP.
func FreeAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// OwnLoopbackIP returns a random address in 127.100.0.0–127.254.255.254,
// away from the 127.0.0.x the test fleets and backends use. All of
// 127.0.0.0/8 is local on Linux, and no other test binds on an address no
// one else picks, so a port FreeAddr found free there stays free until the
// process it is meant for binds it.
func OwnLoopbackIP() string {
	return fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(155), rand.IntN(256), 1+rand.IntN(254))
}

// RequireBinary skips the test when path is missing, unless CI is set, in
// which case it fails: CI must run the real-server tests.
func RequireBinary(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", path, err)
		}
		t.Skipf("%s not installed (set CI=1 to make this a failure): %v", path, err)
	}
}

// ShortTempDir is a temp dir with a short path (unix socket paths are
// limited to 108 bytes), removed at cleanup.
func ShortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// StartProcess starts cmd's Path with its Args and Env through package
// proc, output captured to a file in dir, and stops it by PID at cleanup:
// SIGTERM (nginx's master then stops its workers), SIGKILL of its process
// group after 5s. It returns a function that reads the output so far.
// cmd itself is not started (cmd.Process stays nil): use StartProc for the pid.
func StartProcess(t testing.TB, dir, name string, cmd *exec.Cmd) func() string {
	t.Helper()
	_, log := StartProc(t, dir, name, cmd)
	return log
}

// StartProc is StartProcess that also returns the started process.
func StartProc(t testing.TB, dir, name string, cmd *exec.Cmd) (*proc.Proc, func() string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	p, err := proc.Start(proc.Spec{Name: name, Log: logPath, Env: cmd.Env,
		Argv: append([]string{cmd.Path}, cmd.Args[1:]...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Logf("lbtest: %v", err)
		}
	})
	return p, func() string { return proc.Tail(logPath, 1<<20) }
}

// Eventually polls cond every 10ms until it returns true or timeout passes,
// then fails with cond's last message.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Get fetches url with c and returns status and trimmed body: demoapp.Get,
// which the backends here answer as the demo app does.
func Get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	return demoapp.Get(ctx, c, url)
}

// Stop stops the backend as a stopped app would: the listener closes (new
// connections are refused) once the requests in flight have ended.
func (b *Backend) Stop() { b.srv.Close() }

// Load is a small, bounded HTTP load on loopback: Workers goroutines, each
// with its own keep-alive client, GET the same URL back to back until Stop,
// a deadline, or MaxRequests in all.
type Load struct {
	OK, Failed atomic.Int64
	mu         sync.Mutex
	samples    []string // the first failures, for the test's message
	stop       chan struct{}
	done       sync.WaitGroup
}

// StartLoad starts workers clients on url for at most d or max requests.
// A request fails on a transport error or any status but 200.
func StartLoad(t testing.TB, url string, workers int, d time.Duration, max int64) *Load {
	t.Helper()
	l := &Load{stop: make(chan struct{})}
	deadline := time.Now().Add(d)
	var sent atomic.Int64
	for i := 0; i < workers; i++ {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for time.Now().Before(deadline) && sent.Add(1) <= max {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := Get(context.Background(), c, url)
				if err == nil && code == http.StatusOK {
					l.OK.Add(1)
					continue
				}
				l.Failed.Add(1)
				l.mu.Lock()
				if len(l.samples) < 5 {
					l.samples = append(l.samples, fmt.Sprintf("%s: %d %q %v", time.Now().Format(time.StampMilli), code, body, err))
				}
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(l.Stop)
	return l
}

// WaitOK waits until at least n more requests than now have succeeded.
func (l *Load) WaitOK(t testing.TB, n int64, timeout time.Duration) {
	t.Helper()
	want := l.OK.Load() + n
	Eventually(t, timeout, fmt.Sprintf("%d more requests answered", n), func() (bool, string) {
		return l.OK.Load() >= want, fmt.Sprintf("%d of %d answered, %d failed", l.OK.Load(), want, l.Failed.Load())
	})
}

// Stop ends the load and waits for the workers (idempotent).
func (l *Load) Stop() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	l.done.Wait()
}

// Failures returns the first failures seen.
func (l *Load) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.samples...)
}
