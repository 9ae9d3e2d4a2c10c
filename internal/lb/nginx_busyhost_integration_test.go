package lb_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/shell"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

// slowForks runs scripts as viaSSH does, on a host where every `tr` (the
// reload wait forks one per worker on each poll) costs 150ms, as forks do
// on a busy host: a shim first in the script's PATH.
type slowForks struct {
	viaSSH
	shim string
}

func (s *slowForks) RunOn(ctx context.Context, host, script string) (string, error) {
	return s.viaSSH.RunOn(ctx, host, "PATH="+shell.Quote(s.shim)+":$PATH; export PATH\n"+script)
}

// TestNginxReloadWaitOnABusyHost: when the master never takes a reload, the
// write script gives up after its wait, by the host's clock, and restores
// the file, however slow each poll is. It used to count 100 polls of 0.1s:
// with slow polls that ran past the command's 15s timeout, which killed the
// script first, leaving web1 marked down in the file (a change nginx never
// applied) and its backup behind, and the drain failed with a bare "context
// deadline exceeded" (seen under CPU load in TestNginxReloadIsWaitedFor).
func TestNginxReloadWaitOnABusyHost(t *testing.T) {
	lbtest.RequireBinary(t, nginxBin)
	t.Parallel()
	tr, err := exec.LookPath("tr")
	if err != nil {
		t.Fatal(err)
	}
	shim := t.TempDir()
	if err := os.WriteFile(filepath.Join(shim, "tr"), []byte("#!/bin/sh\nsleep 0.15\nexec "+shell.Quote(tr)+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	backends := startBackends(t, 2)
	p := startNginx(t, backends)
	bal, err := lb.New(lb.Config{
		Kind: "nginx", Backend: "shop", UpstreamFile: p.Upstream, NginxBinary: p.Binary,
		DrainTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond,
		Endpoints: []lb.Endpoint{{SSH: "lb1.example.test"}},
		Addresses: map[string]string{"web1": backends[0].Addr, "web2": backends[1].Addr},
	}, &slowForks{shim: shim})
	if err != nil {
		t.Fatal(err)
	}
	master := nginxMaster(t, p)
	before, err := os.ReadFile(p.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(master, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(master, syscall.SIGCONT)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err = bal.Drain(ctx, "web1")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "nginx did not apply the change") || !strings.Contains(err.Error(), "previous file restored") {
		t.Fatalf("Drain with a master that never reloads, on a busy host: %v (after %s)", err, took)
	}
	if after, _ := os.ReadFile(p.Upstream); string(after) != string(before) {
		t.Errorf("upstream file not restored:\n%s\nwant\n%s", after, before)
	}
	if left, _ := filepath.Glob(p.Upstream + ".relctl-*"); len(left) != 0 {
		t.Errorf("the write left %v behind", left)
	}
	t.Logf("gave up and restored after %s", took.Round(time.Millisecond))
}
