package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/demo/proc"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/remote"
)

// demoappBin is cmd/demoapp built once for the package's tests: the command
// every test release's bin/demoapp wraps (relctl's hidden "demoapp" command
// does the same job for `relctl demo`).
var demoappBin string

func TestMain(m *testing.M) {
	if bin := os.Getenv(ownerEnv); bin != "" {
		os.Exit(runOwner(bin))
	}
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "relctl-sandbox-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		demoappBin = filepath.Join(dir, "demoapp")
		cmd := exec.Command("go", "build", "-o", demoappBin, "github.com/relctl/relctl/cmd/demoapp")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build demoapp: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

func haveHAProxy() bool {
	_, err := os.Stat(HAProxyPath)
	return err == nil
}

func TestDemoBuiltin(t *testing.T) {
	t.Parallel()
	testDemo(t, BalancerBuiltin)
}

func TestDemoHAProxy(t *testing.T) {
	t.Parallel()
	if !haveHAProxy() {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing and CI is set", HAProxyPath)
		}
		t.Skipf("%s not installed", HAProxyPath)
	}
	testDemo(t, BalancerHAProxy)
}

// testDemo starts a 3-host demo with traffic and proves what `relctl demo`
// promises: a loadable fleet.yaml, every host on 1.0.0 over SSH and through
// the balancer, zero failed requests while a server is drained, stopped,
// restarted and enabled with relctl's own drivers, and nothing left behind.
func testDemo(t *testing.T, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	begin := time.Now()
	d, err := Start(ctx, Options{Hosts: 3, Balancer: kind, AppCommand: demoappBin, Traffic: true, Rate: 100, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	t.Logf("Start took %s", time.Since(begin).Round(time.Millisecond))
	if d.BalancerKind != kind {
		t.Fatalf("BalancerKind = %q, want %q", d.BalancerKind, kind)
	}

	// Everything started is remembered, to prove Close ends it.
	var pids []int
	if kind == BalancerHAProxy {
		if d.BalancerPID() == 0 {
			t.Fatal("no haproxy pid")
		}
		pids = append(pids, d.BalancerPID())
	}
	for _, h := range d.Hosts {
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s: no serving app", h.Name)
		}
		pids = append(pids, pid)
	}

	checkInventory(t, d)

	// Every host runs 1.0.0, as SSH (with verified host keys) sees it.
	pool := remote.NewPool(remote.Options{})
	defer pool.Close()
	clients := map[string]*remote.Client{}
	for _, h := range d.Hosts {
		c, err := pool.Get(ctx, remote.HostConfig{
			Name: h.Name, Address: h.SSHAddr, User: d.User,
			IdentityFile: d.IdentityFile, KnownHosts: []string{d.KnownHosts},
			ConnectTimeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatalf("%s: ssh: %v", h.Name, err)
		}
		clients[h.Name] = c
		out, err := c.Output(ctx, "cat "+h.Path+"/current/VERSION")
		if err != nil || out != SeedVersion {
			t.Fatalf("%s: VERSION over ssh = %q, %v; want %s", h.Name, out, err, SeedVersion)
		}
		target, err := os.Readlink(filepath.Join(h.Path, "current"))
		if err != nil || target != filepath.Join(h.Path, "releases", SeedVersion) {
			t.Fatalf("%s: current -> %q (%v), want the absolute release dir", h.Name, target, err)
		}
		if v := httpGet(t, "http://"+h.AppAddr+"/version"); v != SeedVersion {
			t.Fatalf("%s: app answers %q", h.Name, v)
		}
	}
	// ... and through the balancer, which spreads requests over all of them.
	for range 2 * len(d.Hosts) {
		if v := httpGet(t, d.Frontend+"/version"); v != SeedVersion {
			t.Fatalf("balancer answers %q", v)
		}
	}

	// Two seconds of traffic, without a failure.
	waitTraffic(t, d, 2*time.Second, 100)

	// Take web2 out with relctl's haproxy driver, restart its app, put it back.
	bal, err := lb.New(lb.Config{Kind: "haproxy", Backend: "shop", DrainTimeout: 5 * time.Second,
		Endpoints: []lb.Endpoint{{TCP: d.AdminAddr}}}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bal.Preflight(ctx, d.Servers(), false); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	h := d.Hosts[1]
	res, err := bal.Drain(ctx, h.Name)
	if err != nil || !res.Idle {
		t.Fatalf("drain %s: %+v, %v", h.Name, res, err)
	}
	c := clients[h.Name]
	bin := h.Path + "/current/bin/demoapp"
	if out, err := c.Output(ctx, bin+" stop --dir "+h.Path); err != nil {
		t.Fatalf("stop %s: %v\n%s", h.Name, err, out)
	}
	if _, ok := demoapp.ServingPid(h.Path); ok {
		t.Fatalf("%s still serving after stop", h.Name)
	}
	waitTraffic(t, d, 500*time.Millisecond, 25) // traffic flows while web2 is down
	if out, err := c.Output(ctx, bin+" start --dir "+h.Path+" --listen "+h.AppAddr); err != nil {
		t.Fatalf("start %s: %v\n%s", h.Name, err, out)
	}
	pid, ok := demoapp.ServingPid(h.Path)
	if !ok {
		t.Fatalf("%s not serving after start", h.Name)
	}
	pids = append(pids, pid)
	if err := bal.Enable(ctx, h.Name, 15*time.Second); err != nil {
		t.Fatalf("enable %s: %v", h.Name, err)
	}
	if err := d.waitAllUp(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitTraffic(t, d, 500*time.Millisecond, 25)
	if s := d.Traffic(); s.Errors != 0 || s.Non2xx != 0 {
		t.Fatalf("traffic saw failures: %s %v", s, s.FirstErrors)
	}

	// Close ends every process and removes the directory; twice is fine.
	pool.Close()
	closeBegin := time.Now()
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %s", time.Since(closeBegin).Round(time.Millisecond))
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, pid := range pids {
		if proc.Alive(pid) {
			t.Errorf("pid %d still alive after Close", pid)
		}
	}
	if left := Processes(d.Dir); len(left) > 0 {
		t.Errorf("processes of the demo left: %v", left)
	}
	if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close (%v)", d.Dir, err)
	}
	final := d.Traffic()
	if final == nil || !final.Clean() {
		t.Fatalf("final traffic not clean: %v", final)
	}
	t.Logf("traffic: %s", final)
}

// checkInventory loads the demo's fleet.yaml the way relctl does and checks
// the keys `relctl demo` relies on.
func checkInventory(t *testing.T, d *Demo) {
	t.Helper()
	inv, err := fleet.Load(d.FleetFile)
	if err != nil {
		t.Fatalf("fleet.Load: %v", err)
	}
	if len(inv.Hosts) != len(d.Hosts) {
		t.Fatalf("%d hosts in fleet.yaml, want %d", len(inv.Hosts), len(d.Hosts))
	}
	for i, h := range inv.Hosts {
		dh := d.Hosts[i]
		if h.Name != dh.Name || h.Address != dh.SSHAddr || h.Path != dh.Path || h.Vars["listen"] != dh.AppAddr || h.Upstream != dh.AppAddr {
			t.Errorf("hosts[%d] = %+v, want %+v", i, h, dh)
		}
	}
	if !inv.Hosts[0].HasLabel("canary") {
		t.Errorf("web1 is not the canary")
	}
	if inv.SSH.User != d.User || inv.SSH.IdentityFile != d.IdentityFile || len(inv.SSH.KnownHosts) != 1 || inv.SSH.KnownHosts[0] != d.KnownHosts || *inv.SSH.UseSSHConfig {
		t.Errorf("ssh = %+v", inv.SSH)
	}
	if inv.Health.Timeout != 20*time.Second || inv.Health.Interval != 200*time.Millisecond || inv.Health.StableFor != 400*time.Millisecond {
		t.Errorf("health = %+v", inv.Health)
	}
	if !*inv.Rollout.PauseAfterCanary || inv.Rollout.OnFailure != "rollback" || len(inv.Rollout.Batches) != 3 {
		t.Errorf("rollout = %+v", inv.Rollout)
	}
	b := inv.Balancer
	if b.Kind != "haproxy" || b.Backend != Backend || b.DrainTimeout != 5*time.Second || len(b.Endpoints) != 1 || b.Endpoints[0].TCP != d.AdminAddr {
		t.Errorf("balancer = %+v", b)
	}
	if inv.Emergency.DrainTimeout != 2*time.Second || inv.KeepReleases != 5 {
		t.Errorf("emergency = %+v, keep_releases = %d", inv.Emergency, inv.KeepReleases)
	}
	if r := inv.Releases["2.0.0"]; r.UpgradeFrom != ">=1.1.0" || len(r.DowngradeTo) != 1 || r.DowngradeTo[0] != "1.1.0" {
		t.Errorf("releases[2.0.0] = %+v", r)
	}
	if r := inv.Releases["1.1.0"]; r.UpgradeFrom != ">=1.0.0" || len(r.DowngradeTo) != 1 || r.DowngradeTo[0] != "1.0.0" {
		t.Errorf("releases[1.1.0] = %+v", r)
	}
	for _, v := range Versions {
		p, err := inv.ArtifactPath(v)
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(d.FleetFile), p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("artifact %s: %v", v, err)
		}
	}
	if st, err := os.Stat(d.IdentityFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("identity file: %v %v", st.Mode(), err)
	}
	kh, err := os.ReadFile(d.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range d.Hosts {
		if !strings.Contains(string(kh), "[127.0.0.1]:"+strings.TrimPrefix(h.SSHAddr, "127.0.0.1:")+" ssh-ed25519 ") {
			t.Errorf("known_hosts has no entry for %s:\n%s", h.SSHAddr, kh)
		}
	}
}

// waitTraffic waits until at least d has passed and min more requests have
// finished, failing at once on any failed request.
func waitTraffic(t *testing.T, demo *Demo, d time.Duration, min int64) {
	t.Helper()
	start := demo.Traffic()
	until := time.Now().Add(d)
	deadline := until.Add(10 * time.Second)
	for {
		s := demo.Traffic()
		if s.Errors != 0 || s.Non2xx != 0 {
			t.Fatalf("traffic saw failures: %s %v", s, s.FirstErrors)
		}
		if time.Now().After(until) && s.Requests-start.Requests >= min {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("traffic too slow: %d requests in %s", s.Requests-start.Requests, d+10*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return strings.TrimSpace(string(b))
}
