package rollout

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/testkit/testfleet"
)

// The lock on a real OpenSSH host, as a non-root login user: renewals
// racing releases leave no lock, a broken lock is not re-created, and a
// resume is refused while the original process lives.
func TestLockOnRealSSHD(t *testing.T) {
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
	hosts := &faultyHosts{Hosts: inner}
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: h.Name, Path: h.Path, Lease: time.Minute, renewEvery: 5 * time.Millisecond}

	t.Run("renew racing release", func(t *testing.T) {
		for i := range 10 {
			a := LockInfo{Owner: "alice@box", RunID: fmt.Sprintf("sshd-run-%d", i)}
			if err := l.Acquire(ctx, a); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						if err := l.Renew(ctx, a); err != nil && !errors.Is(err, ErrLockGone) {
							t.Errorf("renew: %v", err)
							return
						}
					}
				}()
			}
			sent := time.Now()
			n := hosts.oks.Load()
			held := l.Keep(a, sent, nil, nil)
			waitFor(t, 30*time.Second, "renewals to get through", func() bool { return hosts.oks.Load() > n+2 })
			if err := held.Release(ctx); err != nil {
				t.Fatal(err)
			}
			close(stop)
			wg.Wait()
			if _, ok := readLockFile(t, h.Path); ok {
				t.Fatalf("iteration %d: a renewal racing the release left a lock behind", i)
			}
		}
	})

	t.Run("broken lock not re-created", func(t *testing.T) {
		a := LockInfo{Owner: "alice@box", RunID: "sshd-broken"}
		sent := time.Now()
		if err := l.Acquire(ctx, a); err != nil {
			t.Fatal(err)
		}
		held := l.Keep(a, sent, nil, nil)
		defer held.Stop()
		if err := l.Break(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-held.Lost():
		case <-time.After(30 * time.Second):
			t.Fatal("the renewer did not notice the break")
		}
		if !errors.Is(held.Err(), ErrLockGone) {
			t.Errorf("Err() = %v", held.Err())
		}
		held.Stop()
		if _, err := os.Stat(filepath.Join(h.Path, ".relctl", "lock")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the broken lock is back: %v", err)
		}
	})

	t.Run("resume refused while the original process lives", func(t *testing.T) {
		cmd, orig := sleeper(t)
		if err := l.Acquire(ctx, LockInfo{Owner: "alice@box", RunID: "sshd-resume", Proc: orig}); err != nil {
			t.Fatal(err)
		}
		var le *LockError
		if err := l.Acquire(ctx, LockInfo{Owner: "alice@box", RunID: "sshd-resume"}); !errors.As(err, &le) || le.Holder.Proc != orig {
			t.Fatalf("resume while the original lives: %v", err)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if err := l.Acquire(ctx, LockInfo{Owner: "alice@box", RunID: "sshd-resume"}); err != nil {
			t.Fatalf("resume after the original died: %v", err)
		}
		got, _ := readLockFile(t, h.Path)
		if got.Proc != CurrentProcess() || got.TakenFrom != "sshd-resume" {
			t.Fatalf("lock %+v", got)
		}
		if recs := history(t, h.Path); len(recs) == 0 || recs[len(recs)-1].Kind != "lock-takeover" {
			t.Fatalf("no takeover audit: %+v", recs)
		}
		if err := l.Release(ctx, LockInfo{RunID: "sshd-resume"}); err != nil {
			t.Fatal(err)
		}
	})
}
