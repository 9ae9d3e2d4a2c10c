package lb_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

// nginxMaster is the pid in p's pid file.
func nginxMaster(t *testing.T, p *nginxProc) int {
	t.Helper()
	var pid int
	lbtest.Eventually(t, 10*time.Second, "nginx's pid file", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(p.Dir, "nginx.pid"))
		if err != nil {
			return false, err.Error()
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil, string(b)
	})
	return pid
}

// TestNginxReloadIsWaitedFor: `nginx -s reload` only signals the master.
// A drain returns once the old workers no longer accept, so the server is
// out of rotation when Drain says so; and a reload the master never takes
// (here: the master is stopped, as a wedged or refusing master would be)
// fails the drain, with the upstream file restored, instead of reporting a
// server drained that nginx still sends requests to.
func TestNginxReloadIsWaitedFor(t *testing.T) {
	lbtest.RequireBinary(t, nginxBin)
	t.Parallel()
	backends := startBackends(t, 2)
	p := startNginx(t, backends)
	addrs := map[string]string{}
	for _, b := range backends {
		addrs[b.Name] = b.Addr
	}
	cfg := lb.Config{
		Kind: "nginx", Backend: "shop", UpstreamFile: p.Upstream, NginxBinary: p.Binary,
		DrainTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond,
		Endpoints: []lb.Endpoint{{SSH: "lb1.example.test"}},
		Addresses: addrs,
	}
	bal, err := lb.New(cfg, &viaSSH{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	master := nginxMaster(t, p)
	before, err := os.ReadFile(p.Upstream)
	if err != nil {
		t.Fatal(err)
	}

	// The master takes no signal while stopped: the reload never happens.
	if err := syscall.Kill(master, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	continued := false
	cont := func() {
		if !continued {
			continued = true
			_ = syscall.Kill(master, syscall.SIGCONT)
		}
	}
	defer cont()
	start := time.Now()
	_, err = bal.Drain(ctx, "web1")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "nginx did not apply the change") || !strings.Contains(err.Error(), "previous file restored") {
		t.Fatalf("Drain with a master that never reloads: %v (after %s)", err, took)
	}
	after, _ := os.ReadFile(p.Upstream)
	if string(after) != string(before) {
		t.Errorf("upstream file not restored:\n%s\nwant\n%s", after, before)
	}
	cont()

	// A master that reloads: Drain returns with the old workers retired,
	// and web1 is marked down in the file.
	if _, err := bal.Drain(ctx, "web1"); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	b, _ := os.ReadFile(p.Upstream)
	if !strings.Contains(string(b), backends[0].Addr) || !strings.Contains(string(b), "down") {
		t.Errorf("web1 not marked down:\n%s", b)
	}
	if err := bal.Enable(ctx, "web1", 0); err != nil {
		t.Fatalf("Enable: %v", err)
	}
}
