package rollout

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/sshserver"
	"github.com/relctl/relctl/internal/remote"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// sshHosts starts an in-process SSH host and returns Hosts for it (as
// "lockhost") and a directory on it for the app's path.
func sshHosts(t *testing.T) (*SSH, string) {
	t.Helper()
	return sshHostsWith(t, nil)
}

func sshHostsWith(t *testing.T, mutate func(*sshserver.Config)) (*SSH, string) {
	t.Helper()
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "lock test")
	if err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(identity, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := sshserver.Config{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}, Dir: dir, MaxSessions: 10}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := sshserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(knownhosts.Line([]string{srv.Addr()}, srv.HostKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := remote.NewPool(remote.Options{SSHConfigPath: filepath.Join(dir, "no-ssh-config")})
	t.Cleanup(func() { pool.Close() })
	hosts := &SSH{Pool: pool, Configs: map[string]remote.HostConfig{"lockhost": {
		Name: "lockhost", Address: srv.Addr(), User: "deploy", IdentityFile: identity, KnownHosts: []string{known}, ConnectTimeout: 10 * time.Second,
	}}}
	app := filepath.Join(dir, "srv", "shop")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	return hosts, app
}

// faultyHosts fails (or hangs) every lock command while fail (hang) is set,
// as an unreachable lock host does, and remembers when the last lock
// command that got through was sent.
type faultyHosts struct {
	Hosts
	fail, hang atomic.Bool
	slowOnce   atomic.Int64 // the next lock command that gets through answers this many ns late
	oks        atomic.Int32 // lock commands that got through
	mu         sync.Mutex
	lastOKSent time.Time
}

func (f *faultyHosts) Run(ctx context.Context, host string, cmd remote.Command) (remote.Result, error) {
	if !strings.Contains(cmd.Script, ".relctl/lock") {
		return f.Hosts.Run(ctx, host, cmd)
	}
	if f.hang.Load() {
		<-ctx.Done()
		return remote.Result{ExitCode: -1}, fmt.Errorf("%s: %w", host, ctx.Err())
	}
	if f.fail.Load() {
		return remote.Result{ExitCode: -1}, fmt.Errorf("%s: %w", host, remote.ErrConnectionLost)
	}
	sent := time.Now()
	res, err := f.Hosts.Run(ctx, host, cmd)
	if err == nil {
		if d := f.slowOnce.Swap(0); d > 0 {
			select { // done on the host; the answer is late
			case <-time.After(time.Duration(d)):
			case <-ctx.Done():
			}
		}
		f.oks.Add(1)
		f.mu.Lock()
		f.lastOKSent = sent
		f.mu.Unlock()
	}
	return res, err
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lockFile(app string) string { return filepath.Join(app, ".relctl", "lock") }

func readLockFile(t *testing.T, app string) (LockInfo, bool) {
	t.Helper()
	b, err := os.ReadFile(lockFile(app))
	if errors.Is(err, os.ErrNotExist) {
		return LockInfo{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var info LockInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("lock file %q: %v", b, err)
	}
	return info, true
}

func history(t *testing.T, app string) []lockAudit {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(app, ".relctl", "history.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var recs []lockAudit
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r lockAudit
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("history line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// sleeper starts a process that stands for another relctl process on this
// machine, and returns its identity.
func sleeper(t *testing.T) (*exec.Cmd, Process) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	self := CurrentProcess()
	p := Process{PID: cmd.Process.Pid, Machine: self.Machine, Boot: self.Boot}
	st, ok := readProcStat(p.PID)
	if !ok {
		t.Skip("no /proc on this machine")
	}
	p.Start = st.start
	return cmd, p
}

func TestLockAcquireRenewReleaseOverSSH(t *testing.T) {
	hosts, app := sshHosts(t)
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute}
	a := LockInfo{Owner: "alice@box", RunID: "run-a", Fingerprint: "fp"}
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, ok := readLockFile(t, app)
	self := CurrentProcess()
	if !ok || got.RunID != "run-a" || got.Owner != "alice@box" || got.Proc != self || got.LeaseUntil-got.Started != 60 {
		t.Fatalf("lock %+v, want run-a held by %+v with a 60s lease", got, self)
	}
	if self.PID != os.Getpid() || self.Machine == "" || (self.Start != 0 && self.Since == 0) {
		t.Errorf("CurrentProcess() = %+v", self)
	}
	info, err := l.Read(ctx)
	if err != nil || info == nil || info.RunID != "run-a" || info.Expired() || !strings.Contains(info.String(), fmt.Sprintf("pid %d on %s", self.PID, self.Machine)) {
		t.Fatalf("Read = %+v (%v)", info, err)
	}
	// A second run is refused, with the holder.
	var le *LockError
	if err := l.Acquire(ctx, LockInfo{Owner: "bob@box", RunID: "run-b"}); !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.Holder.RunID != "run-a" {
		t.Fatalf("second run: %v", err)
	}
	// A renewal keeps the start, moves the lease.
	raw, _ := os.ReadFile(lockFile(app))
	os.WriteFile(lockFile(app), []byte(strings.Replace(string(raw), fmt.Sprintf(`"started":%d`, got.Started), `"started":1000`, 1)), 0o644)
	if err := l.Renew(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := readLockFile(t, app); got.Started != 1000 || got.LeaseUntil < time.Now().Unix()+50 {
		t.Errorf("after renew: %+v", got)
	}
	// Another run can neither renew nor release it.
	if err := l.Renew(ctx, LockInfo{RunID: "run-b"}); !errors.As(err, &le) {
		t.Errorf("renew by another run: %v", err)
	}
	if err := l.Release(ctx, LockInfo{RunID: "run-b"}); err == nil {
		t.Error("release by another run succeeded")
	}
	if _, ok := readLockFile(t, app); !ok {
		t.Fatal("another run's release removed the lock")
	}
	if err := l.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	if info, err := l.Read(ctx); err != nil || info != nil {
		t.Fatalf("after release: %+v, %v", info, err)
	}
	// Releasing what is not there is not an error.
	if err := l.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestRenewNeverRecreatesABrokenOrReleasedLock(t *testing.T) {
	hosts, app := sshHosts(t)
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute}
	a := LockInfo{Owner: "alice@box", RunID: "run-a"}
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := l.Break(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx, a); !errors.Is(err, ErrLockGone) {
		t.Fatalf("renew of a broken lock: %v, want ErrLockGone", err)
	}
	if _, ok := readLockFile(t, app); ok {
		t.Fatal("a renewal re-created a broken lock")
	}
	// Another run took it after the break: the late renewal does not touch it.
	if err := l.Acquire(ctx, LockInfo{Owner: "bob@box", RunID: "run-b"}); err != nil {
		t.Fatal(err)
	}
	var le *LockError
	if err := l.Renew(ctx, a); !errors.As(err, &le) || le.Holder.RunID != "run-b" {
		t.Fatalf("late renewal over another run's lock: %v", err)
	}
	if got, _ := readLockFile(t, app); got.RunID != "run-b" {
		t.Fatalf("lock now %+v", got)
	}
}

func TestHeldLockLostWhenBrokenAndNotRecreated(t *testing.T) {
	inner, app := sshHosts(t)
	hosts := &faultyHosts{Hosts: inner}
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute, renewEvery: 20 * time.Millisecond}
	a := LockInfo{Owner: "alice@box", RunID: "run-a"}
	sent := time.Now()
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	var lostCalls atomic.Int32
	h := l.Keep(a, sent, nil, func(error) { lostCalls.Add(1) })
	defer h.Stop()
	waitFor(t, 20*time.Second, "a renewal", func() bool { return hosts.oks.Load() >= 2 })
	if err := l.Break(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Lost():
	case <-time.After(20 * time.Second):
		t.Fatal("the renewer did not notice the lock was broken")
	}
	if err := h.Err(); !errors.Is(err, ErrLockLost) || !errors.Is(err, ErrLockGone) {
		t.Errorf("Err() = %v", err)
	}
	h.Stop() // returns: the renewer has ended
	if _, ok := readLockFile(t, app); ok {
		t.Fatal("the broken lock was re-created")
	}
	if n := lostCalls.Load(); n != 1 {
		t.Errorf("onLost called %d times", n)
	}
	// Releasing a lost, gone lock is quiet.
	if err := h.Release(ctx); err != nil {
		t.Errorf("release after loss: %v", err)
	}
}

// A renewal racing a release never leaves a lock behind: raw renewals
// concurrent with the release, and the background renewer of Held.
func TestRenewRacingReleaseLeavesNoLock(t *testing.T) {
	inner, app := sshHosts(t)
	hosts := &faultyHosts{Hosts: inner}
	ctx := testCtx(t)
	// Held renews every 5ms; the lease is long, so renewals never stop on
	// their own before the release.
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute, renewEvery: 5 * time.Millisecond}
	for i := range 25 {
		a := LockInfo{Owner: "alice@box", RunID: fmt.Sprintf("run-%d", i)}
		if err := l.Acquire(ctx, a); err != nil {
			t.Fatal(err)
		}
		// Raw renewals from other goroutines, racing the release.
		var wg sync.WaitGroup
		stop := make(chan struct{})
		errs := make(chan error, 64)
		for range 3 {
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
						errs <- err
						return
					}
				}
			}()
		}
		if err := l.Release(ctx, a); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("iteration %d: renew: %v", i, err)
		}
		if _, ok := readLockFile(t, app); ok {
			t.Fatalf("iteration %d: a renewal racing the release left a lock behind", i)
		}
		// Held: renewals in the background, then Release.
		sent := time.Now()
		if err := l.Acquire(ctx, a); err != nil {
			t.Fatal(err)
		}
		h := l.Keep(a, sent, nil, nil)
		if i%2 == 1 {
			n := hosts.oks.Load()
			waitFor(t, 20*time.Second, "a background renewal", func() bool { return hosts.oks.Load() > n })
		}
		if err := h.Err(); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if err := h.Release(ctx); err != nil {
			t.Fatalf("iteration %d: release: %v", i, err)
		}
		if _, ok := readLockFile(t, app); ok {
			t.Fatalf("iteration %d: a background renewal outlived the release", i)
		}
	}
	if left, _ := filepath.Glob(lockFile(app) + ".tmp.*"); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestHeldLockLostWhenRenewalsFailPastTheLease(t *testing.T) {
	for _, mode := range []string{"fail", "hang"} {
		t.Run(mode, func(t *testing.T) {
			inner, app := sshHosts(t)
			hosts := &faultyHosts{Hosts: inner}
			ctx := testCtx(t)
			const lease = 2 * time.Second
			l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: lease, renewEvery: 100 * time.Millisecond}
			a := LockInfo{Owner: "alice@box", RunID: "run-a"}
			sent := time.Now()
			if err := l.Acquire(ctx, a); err != nil {
				t.Fatal(err)
			}
			var warns atomic.Int32
			h := l.Keep(a, sent, func(string) { warns.Add(1) }, nil)
			defer h.Stop()
			waitFor(t, 20*time.Second, "a renewal", func() bool { return hosts.oks.Load() >= 2 })
			if err := h.Err(); err != nil {
				t.Fatal(err)
			}
			if mode == "fail" {
				hosts.fail.Store(true)
			} else {
				hosts.hang.Store(true)
			}
			select {
			case <-h.Lost():
			case <-time.After(30 * time.Second):
				t.Fatal("renewals failing past the lease did not lose the lock")
			}
			hosts.mu.Lock()
			since := time.Since(hosts.lastOKSent)
			hosts.mu.Unlock()
			// The renewer counts the lease from when it sent the renewal,
			// a moment before this wrapper saw it.
			if since < lease-100*time.Millisecond {
				t.Errorf("lost %s after the last renewal got through, before the lease of %s ran out", since, lease)
			}
			if err := h.Err(); !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "lease ran out") {
				t.Errorf("Err() = %v", err)
			}
			if mode == "fail" && warns.Load() == 0 {
				t.Error("failed renewals were not told")
			}
		})
	}
}

func TestLiveness(t *testing.T) {
	self := Process{PID: 100, Machine: "box", Boot: "b1", Start: 5}
	other := Process{PID: 200, Machine: "box", Boot: "b1", Start: 7}
	running := func(alive bool) func(Process) bool { return func(Process) bool { return alive } }
	live := LockInfo{RunID: "r1", Proc: other, Now: 100, LeaseUntil: 150}
	expired := LockInfo{RunID: "r1", Proc: other, Now: 200, LeaseUntil: 150}
	cases := []struct {
		name    string
		info    LockInfo
		running bool
		alive   bool
		why     string
	}{
		{"this machine, pid alive", expired, true, true, "still running: pid 200 on box is alive"},
		{"this machine, pid gone, lease live", live, false, false, "has ended"},
		{"this process", LockInfo{RunID: "r1", Proc: self, Now: 200, LeaseUntil: 150}, false, true, "this process"},
		{"rebooted", LockInfo{RunID: "r1", Proc: Process{PID: 200, Machine: "box", Boot: "b0"}, Now: 100, LeaseUntil: 150}, true, false, "rebooted"},
		{"other machine, lease live", LockInfo{RunID: "r1", Proc: Process{PID: 200, Machine: "far"}, Now: 100, LeaseUntil: 150}, false, true, "on far"},
		{"other machine, lease expired", LockInfo{RunID: "r1", Proc: Process{PID: 200, Machine: "far"}, Now: 200, LeaseUntil: 150}, true, false, "expired 50s ago"},
		{"old lock without process, live", LockInfo{RunID: "r1", Now: 100, LeaseUntil: 150}, true, true, "lease is live"},
		{"old lock without process, expired", LockInfo{RunID: "r1", Now: 200, LeaseUntil: 150}, true, false, "expired"},
	}
	for _, c := range cases {
		got := liveness(c.info, self, running(c.running))
		if got.Alive != c.alive || !strings.Contains(got.Why, c.why) {
			t.Errorf("%s: %+v, want alive=%v and %q", c.name, got, c.alive, c.why)
		}
	}
}

func TestProcessRunningByPid(t *testing.T) {
	cmd, p := sleeper(t)
	if !processRunning(p) {
		t.Fatalf("%+v: a running process counted as dead", p)
	}
	reused := p
	reused.Start++
	if processRunning(reused) {
		t.Error("a pid with another start time (reused) counted as the holder")
	}
	info := LockInfo{RunID: "r1", Proc: p, Now: 100, LeaseUntil: 150}
	if lv := info.Liveness(); !lv.Alive {
		t.Errorf("Liveness of a running holder: %+v", lv)
	}
	// Killed and not yet reaped (a zombie): dead.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the killed holder to count as dead", func() bool { return !processRunning(p) })
	cmd.Wait()
	if lv := info.Liveness(); lv.Alive || !strings.Contains(lv.Why, "has ended") {
		t.Errorf("Liveness of a dead holder with a live lease: %+v", lv)
	}
}

// resume: the same run in a new process takes its lock over only once the
// old process is dead, audited; while it lives, it is refused.
func TestAcquireOwnRunFromAnotherProcess(t *testing.T) {
	hosts, app := sshHosts(t)
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute}
	cmd, orig := sleeper(t)
	if err := l.Acquire(ctx, LockInfo{Owner: "alice@box", RunID: "run-a", Proc: orig}); err != nil {
		t.Fatal(err)
	}
	var le *LockError
	err := l.Acquire(ctx, LockInfo{Owner: "alice@box", RunID: "run-a"})
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "still running") || !strings.Contains(err.Error(), fmt.Sprint(orig.PID)) {
		t.Fatalf("resume while the original process lives: %v", err)
	}
	if got, _ := readLockFile(t, app); got.Proc != orig {
		t.Fatalf("lock changed hands while its holder lives: %+v", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := l.Acquire(ctx, LockInfo{Owner: "alice@box", RunID: "run-a"}); err != nil {
		t.Fatalf("resume after the original process died: %v", err)
	}
	got, _ := readLockFile(t, app)
	if got.Proc != CurrentProcess() || got.RunID != "run-a" || got.TakenFrom != "run-a" {
		t.Fatalf("lock after the takeover: %+v", got)
	}
	recs := history(t, app)
	if len(recs) != 1 || recs[0].Kind != "lock-takeover" || recs[0].RunID != "run-a" || recs[0].PrevRun != "run-a" || !strings.Contains(recs[0].Reason, "has ended") {
		t.Fatalf("audit %+v", recs)
	}
}

func TestTakeOverByAnotherRun(t *testing.T) {
	hosts, app := sshHosts(t)
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute}
	far := Process{PID: 4242, Machine: "far-away-box"}
	if err := l.Acquire(ctx, LockInfo{Owner: "alice@far", RunID: "run-a", Proc: far}); err != nil {
		t.Fatal(err)
	}
	prev, err := l.Read(ctx)
	if err != nil || prev == nil {
		t.Fatal(prev, err)
	}
	b := LockInfo{Owner: "bob@box", RunID: "run-b"}
	// A live lease on another machine: refused.
	var le *LockError
	if err := l.TakeOver(ctx, *prev, b); !errors.As(err, &le) || !strings.Contains(err.Error(), "lease is live") {
		t.Fatalf("takeover of a live lease: %v", err)
	}
	// The lease ran out (the host's clock says so): taken over, audited.
	expired := *prev
	expired.Now = expired.LeaseUntil + 5
	// ...but not if the holder renewed since it was read.
	if err := l.Acquire(ctx, LockInfo{Owner: "alice@far", RunID: "run-a", Proc: far}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(lockFile(app))
	os.WriteFile(lockFile(app), []byte(strings.Replace(string(raw), fmt.Sprintf(`"lease_until":%d`, prev.LeaseUntil), fmt.Sprintf(`"lease_until":%d`, prev.LeaseUntil+20), 1)), 0o644)
	if err := l.TakeOver(ctx, expired, b); !errors.As(err, &le) || !strings.Contains(err.Error(), "changed since it was read") {
		t.Fatalf("takeover of a lock renewed since it was read: %v", err)
	}
	if got, _ := readLockFile(t, app); got.RunID != "run-a" {
		t.Fatalf("a renewed lock was taken: %+v", got)
	}
	cur, _ := l.Read(ctx)
	cur.Now = cur.LeaseUntil + 5
	if err := l.TakeOver(ctx, *cur, b); err != nil {
		t.Fatal(err)
	}
	got, _ := readLockFile(t, app)
	if got.RunID != "run-b" || got.TakenFrom != "run-a" || got.Proc != CurrentProcess() {
		t.Fatalf("lock after takeover: %+v", got)
	}
	recs := history(t, app)
	if len(recs) != 1 || recs[0].RunID != "run-b" || recs[0].PrevRun != "run-a" || recs[0].PrevOwner != "alice@far" || recs[0].Owner != "bob@box" {
		t.Fatalf("audit %+v", recs)
	}
	// The new holder renews and releases it as its own.
	if err := l.Renew(ctx, b); err != nil {
		t.Fatal(err)
	}
	// BreakHeld: only the lock as read, audited with both runs.
	now, _ := l.Read(ctx)
	if err := l.BreakHeld(ctx, *now, "carol@box", "run-c"); err != nil {
		t.Fatal(err)
	}
	if _, ok := readLockFile(t, app); ok {
		t.Fatal("BreakHeld left the lock")
	}
	if recs := history(t, app); len(recs) != 2 || recs[1].Kind != "lock-break" || recs[1].RunID != "run-c" || recs[1].PrevRun != "run-b" {
		t.Fatalf("audit %+v", recs)
	}
	if err := l.BreakHeld(ctx, *now, "carol@box", "run-c"); !errors.Is(err, ErrLockGone) {
		t.Fatalf("second break: %v", err)
	}
}

// A lock host without flock(1) is told plainly, and no lock is written.
func TestLockHostWithoutFlock(t *testing.T) {
	bin := t.TempDir()
	for _, d := range []string{"/usr/local/bin", "/usr/bin", "/bin"} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.Name() == "flock" {
				continue
			}
			_ = os.Symlink(filepath.Join(d, e.Name()), filepath.Join(bin, e.Name()))
		}
	}
	hosts, app := sshHostsWith(t, func(c *sshserver.Config) { c.Env = append(c.Env, "PATH="+bin) })
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute}
	err := l.Acquire(ctx, LockInfo{Owner: "alice@box", RunID: "run-a"})
	if err == nil || !strings.Contains(err.Error(), "lockhost") || !strings.Contains(err.Error(), "flock(1) (util-linux) is not installed") {
		t.Fatalf("Acquire without flock: %v", err)
	}
	if _, ok := readLockFile(t, app); ok {
		t.Fatal("a lock was written without its guard")
	}
}

// A guard held past its wait (a stuck relctl command on the lock host)
// fails the change and leaves the lock as it was.
func TestLockGuardHeldTooLong(t *testing.T) {
	hosts, app := sshHosts(t)
	ctx := testCtx(t)
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute, guardWait: 1}
	a := LockInfo{Owner: "alice@box", RunID: "run-a"}
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(lockFile(app))
	g, err := os.OpenFile(filepath.Join(app, ".relctl", "lock.guard"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := syscall.Flock(int(g.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"renew":   func() error { return l.Renew(ctx, a) },
		"release": func() error { return l.Release(ctx, a) },
		"acquire": func() error { return l.Acquire(ctx, LockInfo{Owner: "bob@box", RunID: "run-b"}) },
	} {
		if err := op(); err == nil || errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "held by another relctl command for more than 1s") {
			t.Errorf("%s with the guard held: %v", name, err)
		}
	}
	if after, _ := os.ReadFile(lockFile(app)); string(after) != string(before) {
		t.Errorf("the lock changed while its guard was held:\n%s\n%s", before, after)
	}
	syscall.Flock(int(g.Fd()), syscall.LOCK_UN)
	if err := l.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
}

// A renewal whose answer comes late (done on the host at once, answered
// after 70% of the lease) leaves less than a renewal period: the next
// renewal still goes before the lease runs out, and the lock is kept.
func TestHeldLockRenewsInTimeAfterASlowRenewal(t *testing.T) {
	inner, app := sshHosts(t)
	hosts := &faultyHosts{Hosts: inner}
	ctx := testCtx(t)
	const lease = 20 * time.Second
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: lease}
	a := LockInfo{Owner: "alice@box", RunID: "run-a"}
	sent := time.Now()
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	hosts.slowOnce.Store(int64(lease * 7 / 10))
	h := l.Keep(a, sent, nil, nil)
	defer h.Stop()
	// Acquire, the slow renewal, then one more that got through.
	waitFor(t, time.Minute, "a renewal after the slow one", func() bool { return hosts.oks.Load() >= 3 || h.Err() != nil })
	if err := h.Err(); err != nil {
		t.Fatalf("the lock was lost after a slow renewal: %v", err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A renewer that runs again only after its lease ran out (relctl stopped
// with Ctrl-Z, a suspended laptop; here: a lease that ran out before Keep
// began) says so, not "renewals failed (last: <nil>)".
func TestHeldLockLostBeforeARenewalCouldBeSent(t *testing.T) {
	inner, app := sshHosts(t)
	hosts := &faultyHosts{Hosts: inner}
	ctx := testCtx(t)
	const lease = 2 * time.Second
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: lease}
	a := LockInfo{Owner: "alice@box", RunID: "run-a"}
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	h := l.Keep(a, time.Now().Add(-3*lease), nil, nil)
	defer h.Stop()
	select {
	case <-h.Lost():
	case <-time.After(time.Minute):
		t.Fatal("a lease that had run out was not lost")
	}
	err := h.Err()
	if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "before a renewal could be sent") || strings.Contains(err.Error(), "<nil>") {
		t.Fatalf("Err() = %v", err)
	}
	if n := hosts.oks.Load(); n != 1 {
		t.Errorf("%d lock commands got through, want only the acquire", n)
	}
}
