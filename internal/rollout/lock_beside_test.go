package rollout

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/testkit/testfleet"
)

// On a real sshd, the lock host's persistent shell runs a command far
// longer than the lease (as a forward chain with a slow stop does): the
// renewals go beside it in sessions of their own, so the lock is never
// lost, and they stop needing extra sessions once the shell is free.
func TestLockRenewsBesideBusyShellOnRealSSHD(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real sshd")
	}
	f := testfleet.Start(t, testfleet.Options{Hosts: 1})
	h := f.Hosts[0]
	pool := remote.NewPool(remote.Options{SSHConfigPath: filepath.Join(f.Root, "no-ssh-config")})
	t.Cleanup(func() { pool.Close() })
	inner := &SSH{Pool: pool, Configs: map[string]remote.HostConfig{h.Name: {
		Name: h.Name, Address: h.SSHAddr, User: f.User, IdentityFile: f.IdentityFile, KnownHosts: []string{f.KnownHostsFile}, ConnectTimeout: 10 * time.Second,
	}}}
	trace := newLockTrace(t, inner, pool)
	hosts := &faultyHosts{Hosts: trace}
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: h.Name, Path: h.Path, Lease: 8 * time.Second, renewEvery: 200 * time.Millisecond}
	a := LockInfo{Owner: "alice@box", RunID: "beside"}
	sent := time.Now()
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	held := l.Keep(a, sent, nil, func(err error) { trace.mark(err.Error()) })
	defer held.Stop()

	// The shell's long command: it runs until the test has seen renewals
	// for three leases (24 s) get through beside it.
	marker, release := filepath.Join(h.Path, "busy"), filepath.Join(h.Path, "release")
	for _, p := range []string{marker, release} {
		_ = os.Remove(p)
	}
	long := make(chan error, 1)
	go func() {
		_, err := inner.Run(context.Background(), h.Name, remote.Command{Timeout: 120 * time.Second,
			Script: ": >" + marker + "; while [ ! -e " + release + " ]; do sleep 0.05; done"})
		long <- err
	}()
	waitFor(t, 30*time.Second, "the long command to start", func() bool { _, err := os.Stat(marker); return err == nil })
	trace.mark("the shell is busy")
	busySince := time.Now()
	n0 := hosts.oks.Load()
	waitFor(t, 60*time.Second, "renewals across three leases while the shell is busy", func() bool {
		if err := held.Err(); err != nil {
			t.Fatalf("the lock was lost while the shell was busy: %v", err)
		}
		return hosts.oks.Load() >= n0+3 && time.Since(busySince) > 3*l.Lease
	})
	select {
	case err := <-long:
		t.Fatalf("the long command ended early: %v", err)
	default:
	}
	if err := held.Err(); err != nil {
		t.Fatalf("the lock was lost while the shell was busy: %v", err)
	}
	if got, ok := readLockFile(t, h.Path); !ok || got.RunID != "beside" {
		t.Fatalf("lock file: %+v, %v", got, ok)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-long:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long command never ended")
	}
	trace.mark("the shell is free")
	// The shell is free again: once one renewal has ended after that
	// (any sent beside before it ended, too), renewals go through the
	// shell, with no new session.
	n1 := hosts.oks.Load()
	waitFor(t, 30*time.Second, "a renewal after the shell was free", func() bool {
		if err := held.Err(); err != nil {
			t.Fatalf("the lock was lost once the shell was free: %v", err)
		}
		return hosts.oks.Load() >= n1+1
	})
	busy := pool.Sessions(h.Name)
	if busy < 2 {
		t.Errorf("%d sessions: the renewals did not go beside the shell", busy)
	}
	waitFor(t, 30*time.Second, "renewals through the free shell", func() bool {
		if err := held.Err(); err != nil {
			t.Fatalf("the lock was lost once the shell was free: %v", err)
		}
		return hosts.oks.Load() >= n1+4
	})
	if after := pool.Sessions(h.Name); after != busy {
		t.Errorf("%d sessions after the shell was free, %d before: renewals still open sessions", after, busy)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
