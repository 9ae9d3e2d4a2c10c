package demoapp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/proc"
)

// freeAddr is a port free a moment ago, for a demoapp process to bind. Its
// address is a random one in 127.0.0.0/8 (all local on Linux) that no other
// test binds on, so nothing can take the port before the app binds it (on
// 127.0.0.1 any test's listener or client could).
func freeAddr(t *testing.T) string {
	t.Helper()
	ip := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(155), rand.IntN(256), 1+rand.IntN(254))
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// acceptQueue is how many connections wait in the accept queue of the
// socket listening on addr (an IPv4 "ip:port"): /proc/net/tcp's rx_queue of
// a LISTEN socket.
func acceptQueue(t *testing.T, addr string) int64 {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(host).To4()
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		t.Fatalf("not an IPv4 ip:port: %q", addr)
	}
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], p)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == local && f[3] == "0A" { // 0A: LISTEN
			_, rx, _ := strings.Cut(f[4], ":")
			n, err := strconv.ParseInt(rx, 16, 64)
			if err != nil {
				t.Fatalf("/proc/net/tcp: %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("nothing listens on %s in /proc/net/tcp", addr)
	return 0
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// hostWithRelease makes a host path with releases/<v> unpacked from an artifact
// and current pointing at it; stop runs in cleanup.
func hostWithRelease(t *testing.T, o ArtifactOptions) string {
	t.Helper()
	host := t.TempDir()
	if o.AppBinary == "" && o.Wrapper == "" {
		o.Wrapper = testBinary(t) // embedding the race-built test binary is slow
	}
	art, _, err := BuildArtifact(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	switchTo(t, host, art, o.Version)
	t.Cleanup(func() { run(t, "stop", "--dir", host, "--timeout", "5s") })
	return host
}

func switchTo(t *testing.T, host, art, version string) {
	t.Helper()
	rel := filepath.Join(host, "releases", version)
	if err := Unpack(art, rel); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(host, "current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(host, "current")); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := Main(args, &out, &out)
	return code, out.String()
}

func TestStartCheckStopLifecycle(t *testing.T) {
	host := hostWithRelease(t, ArtifactOptions{Version: "1.0.0"})
	addr := freeAddr(t)
	url := "http://" + addr

	if code, out := run(t, "stop", "--dir", host); code != 0 || !strings.Contains(out, "not running") {
		t.Fatalf("stop before start = %d %q", code, out)
	}
	if code, out := run(t, "check", "--url", url); code != 1 || !strings.Contains(out, "unhealthy") {
		t.Fatalf("check before start = %d %q", code, out)
	}
	if code, out := run(t, "start", "--dir", host, "--listen", addr); code != 0 {
		t.Fatalf("start = %d %q", code, out)
	}
	pid, ok := ServingPid(host)
	if !ok {
		t.Fatal("no serving pid after start")
	}
	if code, out := run(t, "start", "--dir", host, "--listen", addr); code != 0 || !strings.Contains(out, "already running") {
		t.Fatalf("second start = %d %q", code, out)
	}
	if p, _ := ServingPid(host); p != pid {
		t.Fatalf("second start replaced pid %d with %d", pid, p)
	}
	if code, out := run(t, "check", "--url", url, "--version", "1.0.0"); code != 0 {
		t.Fatalf("check = %d %q", code, out)
	}
	if code, out := run(t, "check", "--url", addr, "--version", "2.0.0"); code != 1 || !strings.Contains(out, "running version 1.0.0, want 2.0.0") {
		t.Fatalf("check wrong version = %d %q", code, out)
	}
	if code, out := run(t, "version", "--dir", host); code != 0 || out != "1.0.0\n" {
		t.Fatalf("version = %d %q", code, out)
	}

	// Switching current without stopping must not silently keep the old version.
	art2, _, err := BuildArtifact(t.TempDir(), ArtifactOptions{Version: "1.1.0", Wrapper: testBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	switchTo(t, host, art2, "1.1.0")
	if code, out := run(t, "start", "--dir", host, "--listen", addr); code != 1 || !strings.Contains(out, "stop it first") {
		t.Fatalf("start over a different running version = %d %q", code, out)
	}

	// An in-flight request survives stop (SIGTERM drains). stop goes out
	// once the request is written (not after a fixed wait, which a busy
	// machine can outlast before the request even left).
	slow := make(chan string, 1)
	sent := make(chan struct{})
	var once sync.Once
	go func() {
		req, err := http.NewRequest(http.MethodGet, url+"/slow?ms=700", nil)
		if err != nil {
			slow <- err.Error()
			return
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) }}))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- fmt.Sprint(resp.StatusCode, " ", strings.TrimSpace(string(b)))
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request was never sent")
	}
	// In flight means accepted: a connection still in the listen backlog
	// when SIGTERM closes the listener is reset (the client reads EOF),
	// which no graceful stop promises to avoid.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n := acceptQueue(t, addr)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app never accepted the slow request (%d in its accept queue)", n)
		}
	}
	if code, out := run(t, "stop", "--dir", host); code != 0 || !strings.Contains(out, "SIGTERM") {
		t.Fatalf("stop = %d %q", code, out)
	}
	if got := <-slow; got != "200 slept 700 ms" {
		t.Fatalf("in-flight request across stop: %s", got)
	}
	if proc.Alive(pid) {
		t.Fatalf("pid %d alive after stop", pid)
	}
	if _, err := os.Stat(filepath.Join(host, StateDir, PidFile)); !os.IsNotExist(err) {
		t.Fatalf("pidfile left after stop: %v", err)
	}
	if code, _ := run(t, "stop", "--dir", host); code != 0 {
		t.Fatalf("second stop = %d", code)
	}

	// Now the new release starts.
	if code, out := run(t, "start", "--dir", host, "--listen", addr); code != 0 {
		t.Fatalf("start 1.1.0 = %d %q", code, out)
	}
	if code, out := run(t, "check", "--url", url, "--version", "1.1.0"); code != 0 {
		t.Fatalf("check 1.1.0 = %d %q", code, out)
	}
	log, _ := os.ReadFile(filepath.Join(host, LogFile))
	if !strings.Contains(string(log), "stopped after finishing in-flight requests") {
		t.Fatalf("app.log lacks the drain line:\n%s", log)
	}
}

func TestStartStalePidfile(t *testing.T) {
	host := hostWithRelease(t, ArtifactOptions{Version: "1.0.0"})
	os.MkdirAll(filepath.Join(host, StateDir), 0o755)
	// Our own pid is alive but is not a demoapp server: it must never be signalled.
	os.WriteFile(filepath.Join(host, StateDir, PidFile), []byte(fmt.Sprint(os.Getpid())), 0o644)
	if code, out := run(t, "stop", "--dir", host); code != 0 || !strings.Contains(out, "stale") {
		t.Fatalf("stop with stale pidfile = %d %q", code, out)
	}
	addr := freeAddr(t)
	os.WriteFile(filepath.Join(host, StateDir, PidFile), []byte("999999999"), 0o644)
	if code, out := run(t, "start", "--dir", host, "--listen", addr); code != 0 {
		t.Fatalf("start over stale pidfile = %d %q", code, out)
	}
}

func TestStartFailures(t *testing.T) {
	// The port is taken: serve exits, start reports the log tail.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	host := hostWithRelease(t, ArtifactOptions{Version: "1.0.0"})
	code, out := run(t, "start", "--dir", host, "--listen", busy.Addr().String(), "--wait", "3s")
	if code != 1 || !strings.Contains(out, "address already in use") {
		t.Fatalf("start on busy port = %d %q", code, out)
	}
	if _, ok := ServingPid(host); ok {
		t.Fatal("pidfile left after failed start")
	}
	// No current release.
	if code, out := run(t, "start", "--dir", t.TempDir(), "--listen", freeAddr(t)); code != 1 || !strings.Contains(out, "current") {
		t.Fatalf("start without current = %d %q", code, out)
	}
}

func TestFaultFromAppConf(t *testing.T) {
	host := hostWithRelease(t, ArtifactOptions{Version: "2.0.0", AppBinary: testBinary(t), AppConf: map[string]string{ConfFailHealth: "true"}})
	addr := freeAddr(t)
	if code, out := run(t, "start", "--dir", host, "--listen", addr); code != 0 {
		t.Fatalf("start = %d %q", code, out)
	}
	if code, out := run(t, "check", "--url", "http://"+addr, "--version", "2.0.0"); code != 1 || !strings.Contains(out, "503") {
		t.Fatalf("check of a failing release = %d %q", code, out)
	}
}

func TestWrapperArtifact(t *testing.T) {
	host := hostWithRelease(t, ArtifactOptions{Version: "3.0.0", Wrapper: testBinary(t), AppConf: map[string]string{ConfFailMigrate: "true"}})
	addr := freeAddr(t)
	if code, out := run(t, "start", "--dir", host, "--listen", addr); code != 0 {
		t.Fatalf("start = %d %q", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if v, err := Check(ctx, addr, "3.0.0"); err != nil || v != "3.0.0" {
		t.Fatalf("Check = %q, %v", v, err)
	}
	// The wrapped binary finds its release's app.conf through $DEMOAPP_BIN.
	log := filepath.Join(t.TempDir(), "migrations.log")
	var stderr bytes.Buffer
	cmd := execCommand(filepath.Join(host, "current", "bin", "demoapp"), "migrate", "--log", log, "--version", "3.0.0", "--phase", "pre")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("migrate with fail_migrate=true succeeded")
	}
	recs, err := ReadMigrations(log)
	if err != nil || len(recs) != 1 || !recs[0].Failed {
		t.Fatalf("records = %+v, %v (stderr %s)", recs, err, stderr.String())
	}
}

func TestMigrateConcurrentAppends(t *testing.T) {
	log := filepath.Join(t.TempDir(), "migrations.log")
	t.Setenv("RELCTL_HOST", "web9")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			phase := []string{"pre", "post"}[i%2]
			var out bytes.Buffer
			if code := Main([]string{"migrate", "--log", log, "--version", "1.4.0", "--phase", phase, "--release-dir", t.TempDir()}, &out, &out); code != 0 {
				t.Errorf("migrate = %d %s", code, out.String())
			}
		}()
	}
	wg.Wait()
	recs, err := ReadMigrations(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 20 {
		t.Fatalf("%d records, want 20", len(recs))
	}
	for _, r := range recs {
		if r.Host != "web9" || r.Version != "1.4.0" || r.Failed || (r.Phase != "pre" && r.Phase != "post") {
			t.Fatalf("bad record %+v", r)
		}
	}
	var out bytes.Buffer
	if code := Main([]string{"migrate", "--log", log, "--version", "1.4.0", "--phase", "pre", "--fail"}, &out, &out); code != 1 {
		t.Fatalf("--fail = %d", code)
	}
	recs, _ = ReadMigrations(log)
	if len(recs) != 21 || !recs[20].Failed {
		t.Fatalf("failed run not recorded: %+v", recs[len(recs)-1])
	}
}
