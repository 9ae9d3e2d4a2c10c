package lb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

const nginxBin = "/usr/sbin/nginx"

type nginxProc struct {
	Dir, Conf, Upstream, Extra, Front string
	Binary                            string // command prefix for lb.Config.NginxBinary
}

// startNginx runs a real nginx (master + 1 worker, foreground) proxying to
// backends through `upstream shop` in its own upstream file.
func startNginx(t *testing.T, backends []*lbtest.Backend) *nginxProc {
	t.Helper()
	lbtest.RequireBinary(t, nginxBin)
	dir := lbtest.ShortTempDir(t, "lbngx")
	p := &nginxProc{
		Dir:      dir,
		Conf:     filepath.Join(dir, "nginx.conf"),
		Upstream: filepath.Join(dir, "upstream.conf"),
		Extra:    filepath.Join(dir, "extra.conf"),
		Front:    lbtest.FreeAddr(t, lbtest.OwnLoopbackIP()),
	}
	errLog := filepath.Join(dir, "error.log")
	p.Binary = fmt.Sprintf("%s -c %s -p %s/ -e %s", nginxBin, p.Conf, dir, errLog)
	var up strings.Builder
	up.WriteString("# managed by the test\nupstream shop {\n")
	for _, b := range backends {
		fmt.Fprintf(&up, "    server %s max_fails=0;   # %s\n", b.Addr, b.Name)
	}
	up.WriteString("}\n")
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[2]s;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[3]s;
    include %[4]s;
    server {
        listen %[5]s;
        location / { proxy_pass http://shop; }
    }
}
`, dir, errLog, p.Upstream, p.Extra, p.Front)
	for path, content := range map[string]string{p.Conf: conf, p.Upstream: up.String(), p.Extra: "# nothing\n"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log := lbtest.StartProcess(t, dir, "nginx",
		exec.Command(nginxBin, "-c", p.Conf, "-p", dir+"/", "-e", errLog, "-g", "daemon off;"))
	client := &http.Client{Timeout: 2 * time.Second}
	lbtest.Eventually(t, 10*time.Second, "nginx serving", func() (bool, string) {
		code, body, err := lbtest.Get(context.Background(), client, "http://"+p.Front+"/")
		if err == nil && code == 200 {
			return true, ""
		}
		b, _ := os.ReadFile(errLog)
		return false, fmt.Sprintf("%d %q %v; log: %s %s", code, body, err, log(), b)
	})
	return p
}

func TestNginxDrainEnable(t *testing.T) {
	lbtest.RequireBinary(t, nginxBin)
	t.Parallel()
	backends := startBackends(t, 3)
	web1, web2, web3 := backends[0], backends[1], backends[2]
	p := startNginx(t, backends)
	addrs := map[string]string{}
	for _, b := range backends {
		addrs[b.Name] = b.Addr
	}
	conn := &viaSSH{}
	cfg := lb.Config{
		Kind: "nginx", Backend: "shop", UpstreamFile: p.Upstream, NginxBinary: p.Binary,
		DrainTimeout: 10 * time.Second, PollInterval: 20 * time.Millisecond,
		Endpoints: []lb.Endpoint{{SSH: "lb1.example.test"}},
		Addresses: addrs,
		// Runs on the balancer host; asks the app how many requests it has.
		IdleCheck: `test "$(curl -fsS http://{{.Address}}/inflight)" = 0`,
	}
	bal, err := lb.New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(bal.Describe())
	if !strings.Contains(bal.Describe(), "idle_check") {
		t.Errorf("Describe = %q, want it to name the idle check", bal.Describe())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + p.Front

	if err := bal.Preflight(ctx, []string{"web1", "web2", "web3"}, false); err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	sts, err := bal.States(ctx)
	if err != nil || len(sts) != 3 || sts[0].Server != "web1" || sts[0].Status != lb.StatusUp || sts[0].Addr != web1.Addr {
		t.Fatalf("States = %+v, %v", sts, err)
	}

	// A request in flight on web1, held there until released: however
	// slow the machine, the drain cannot be idle before.
	release := func() {
		for _, b := range backends {
			b.Release()
		}
	}
	defer release()
	slowDone := make(chan string, 8)
	for i := 0; i < 4 && web1.Inflight.Load() == 0; i++ {
		go func() {
			code, body, err := lbtest.Get(ctx, client, base+"/hold")
			slowDone <- fmt.Sprintf("%d %s %v", code, body, err)
		}()
		lbtest.Eventually(t, 5*time.Second, "slow request started", func() (bool, string) {
			return web1.Inflight.Load()+web2.Inflight.Load()+web3.Inflight.Load() >= int64(i+1), ""
		})
	}
	if web1.Inflight.Load() == 0 {
		t.Fatal("no slow request reached web1")
	}
	type drained struct {
		res      lb.DrainResult
		err      error
		inflight int64 // on web1, when Drain returned
	}
	drainDone := make(chan drained, 1)
	go func() {
		res, err := bal.Drain(ctx, "web1")
		drainDone <- drained{res, err, web1.Inflight.Load()}
	}()
	waitState(t, bal, "web1", lb.StatusDrain)
	// nginx -s reload is asynchronous: once the new workers run, new
	// requests never reach web1.
	lbtest.Eventually(t, 5*time.Second, "reload took effect", func() (bool, string) {
		for i := 0; i < 6; i++ {
			code, body, err := lbtest.Get(ctx, client, base+"/")
			if err != nil || code != 200 {
				t.Fatalf("request during drain: %d %q %v", code, body, err)
			}
			if body == "web1" {
				return false, "a request still reached web1"
			}
		}
		return true, ""
	})
	if web1.Inflight.Load() == 0 {
		t.Fatal("the held request on web1 ended before it was released")
	}
	// A wrong Drain, one that does not wait for the request, gets half a
	// second to return early (on a slow machine this proves less, but
	// never fails a right one).
	select {
	case d := <-drainDone:
		t.Fatalf("Drain returned (%+v, %v) while web1 had a request in flight", d.res, d.err)
	case <-time.After(500 * time.Millisecond):
	}
	release()
	d := <-drainDone
	if d.err != nil || !d.res.Idle || d.res.Assumed {
		t.Fatalf("Drain = %+v, %v; want idle by the idle check", d.res, d.err)
	}
	if d.inflight != 0 {
		t.Fatal("Drain reported idle while web1 still had a request")
	}
	var sawWeb1 bool
	for len(slowDone) > 0 || !sawWeb1 {
		r := <-slowDone
		if !strings.HasPrefix(r, "200 ") {
			t.Fatalf("slow request: %s", r)
		}
		sawWeb1 = sawWeb1 || strings.HasPrefix(r, "200 web1 ")
	}
	content, _ := os.ReadFile(p.Upstream)
	if !strings.Contains(string(content), "server "+web1.Addr+" max_fails=0 down;   # web1\n") {
		t.Fatalf("upstream file after drain:\n%s", content)
	}

	// Preflight refuses the drained server unless forced.
	err = bal.Preflight(ctx, []string{"web1"}, false)
	if !errors.Is(err, lb.ErrNotUp) || !strings.Contains(err.Error(), "web1 is DRAIN") {
		t.Fatalf("Preflight drained = %v", err)
	}
	repair := "put it back: remove `down` from its `server " + web1.Addr + "` line in " + p.Upstream +
		", then run `ssh lb1.example.test '" + p.Binary + " -t && " + p.Binary + " -s reload'`; or force to proceed"
	if !strings.Contains(err.Error(), "preflight web1 on nginx lb1.example.test: ") || !strings.Contains(err.Error(), repair) {
		t.Fatalf("Preflight drained = %v\nwant it to name the endpoint and say %s", err, repair)
	}
	if err := bal.Preflight(ctx, []string{"web1"}, true); err != nil {
		t.Fatalf("Preflight force: %v", err)
	}
	if err := bal.Preflight(ctx, []string{"web9"}, true); !errors.Is(err, lb.ErrUnknownServer) {
		t.Fatalf("Preflight unknown = %v", err)
	}

	// A failing `nginx -t` restores the previous file byte for byte.
	before, _ := os.ReadFile(p.Upstream)
	if err := os.WriteFile(p.Extra, []byte("this is not nginx;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = bal.Drain(ctx, "web2")
	if err == nil || !strings.Contains(err.Error(), "nginx -t rejected") || !strings.Contains(err.Error(), "drain web2 on nginx lb1.example.test") {
		t.Fatalf("Drain with broken config = %v, want the nginx -t failure", err)
	}
	after, _ := os.ReadFile(p.Upstream)
	if string(after) != string(before) {
		t.Fatalf("upstream file not restored:\n%s\nwant:\n%s", after, before)
	}
	if leftovers, _ := filepath.Glob(p.Upstream + ".relctl-*"); len(leftovers) != 0 {
		t.Fatalf("temp files left: %v", leftovers)
	}
	if err := bal.Preflight(ctx, []string{"web2"}, false); err == nil || !strings.Contains(err.Error(), "-t") {
		t.Fatalf("Preflight with a broken config = %v, want the nginx -t failure", err)
	}
	if err := os.WriteFile(p.Extra, []byte("# fixed\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Enable puts web1 back; nginx serves it again.
	if err := bal.Enable(ctx, "web1", 5*time.Second); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	waitState(t, bal, "web1", lb.StatusUp)
	lbtest.Eventually(t, 5*time.Second, "web1 serving again", func() (bool, string) {
		_, body, _ := lbtest.Get(ctx, client, base+"/")
		return body == "web1", body
	})
	after, _ = os.ReadFile(p.Upstream)
	if string(after) != strings.Replace(string(content), " down;", ";", 1) {
		t.Fatalf("upstream file after enable is not the original:\n%s", after)
	}

	// Without an idle check the drain is a fixed, declared wait.
	cfg.IdleCheck, cfg.DrainTimeout = "", 300*time.Millisecond
	fixed, err := lb.New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fixed.Describe(), "fixed drain wait of 300ms") {
		t.Errorf("Describe = %q", fixed.Describe())
	}
	res, err := fixed.Drain(ctx, "web3")
	if err != nil || !res.Idle || !res.Assumed || res.Waited < 300*time.Millisecond {
		t.Fatalf("fixed Drain = %+v, %v", res, err)
	}
	if err := fixed.Restore(ctx, []string{"web3", "web9"}); !errors.Is(err, lb.ErrUnknownServer) {
		t.Fatalf("Restore with an unknown server = %v, want ErrUnknownServer for it", err)
	}
	waitState(t, fixed, "web3", lb.StatusUp) // restored despite web9
	if conn.count("lb1.example.test") == 0 {
		t.Error("no command went via lb1.example.test")
	}
}

func TestNginxVerifyEnsureOut(t *testing.T) {
	lbtest.RequireBinary(t, nginxBin)
	t.Parallel()
	backends := startBackends(t, 3)
	p := startNginx(t, backends)
	addrs := map[string]string{}
	for _, b := range backends {
		addrs[b.Name] = b.Addr
	}
	bal, err := lb.New(lb.Config{
		Kind: "nginx", Backend: "shop", UpstreamFile: p.Upstream, NginxBinary: p.Binary,
		DrainTimeout: 10 * time.Second, PollInterval: 20 * time.Millisecond,
		Endpoints: []lb.Endpoint{{SSH: "lb1.example.test"}},
		Addresses: addrs,
		IdleCheck: `test "$(curl -fsS http://{{.Address}}/inflight)" = 0`,
	}, &viaSSH{})
	if err != nil {
		t.Fatal(err)
	}
	lbtest.RunVerifyScenario(t, lbtest.VerifyScenario{
		Balancer: bal, Front: p.Front, Backends: backends, Endpoints: []string{"lb1.example.test"}, AsyncReload: true,
		// Config management puts the file back and reloads nginx.
		PutBack: func(server string) {
			b, err := os.ReadFile(p.Upstream)
			if err != nil {
				t.Fatal(err)
			}
			line := "server " + addrs[server] + " max_fails=0 down;"
			if !strings.Contains(string(b), line) {
				t.Fatalf("%s has no %q:\n%s", p.Upstream, line, b)
			}
			if err := os.WriteFile(p.Upstream, []byte(strings.Replace(string(b), line, "server "+addrs[server]+" max_fails=0;", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("sh", "-c", p.Binary+" -s reload").CombinedOutput(); err != nil {
				t.Fatalf("nginx -s reload: %v %s", err, out)
			}
		},
	})
}
