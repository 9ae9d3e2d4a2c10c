package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// tuiFixture is the TUI backend over the example inventory, with the
// fleet's versions and its lock set by the test (no SSH).
func tuiFixture(t *testing.T) (*tuiBackend, map[string]string, **rollout.LockInfo, *error) {
	t.Helper()
	inv, err := fleet.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, h := range inv.Hosts {
		versions[h.Name] = "1.3.2"
	}
	var lock *rollout.LockInfo
	var lockErr error
	env := &ops.Env{Inv: inv, JournalDir: filepath.Join(t.TempDir(), "journal"), Owner: "op@box",
		ObserveFleet: func(context.Context, bool) []observe.Host {
			var out []observe.Host
			for _, h := range inv.Hosts {
				out = append(out, observe.Host{HostState: plan.HostState{Name: h.Name, Version: versions[h.Name], Reachable: true}})
			}
			return out
		},
		ReadLock:     func(context.Context) (*rollout.LockInfo, error) { return lock, lockErr },
		RemoteOutput: func(context.Context, string, string) (string, error) { return "", nil },
	}
	return &tuiBackend{ctx: context.Background(), ios: &IO{}, env: env}, versions, &lock, &lockErr
}

// The TUI's start is refused by the lock exactly as the CLI's: exit 4, and
// no run journal written; runTUI then exits 4.
func TestTUIStartRefusedByTheLockExits4(t *testing.T) {
	b, _, lock, _ := tuiFixture(t)
	p, err := b.PlanUpgrade("1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	*lock = &rollout.LockInfo{Owner: "other@box", RunID: "20260101T000000Z-other", Proc: rollout.CurrentProcess(), Started: 1, LeaseUntil: 200, Now: 100}
	_, _, err = b.Start(p)
	if !errors.Is(err, rollout.ErrLocked) || codeOf(err) != ExitLocked {
		t.Fatalf("start: %v (exit %d); want the lock's refusal, exit 4", err, codeOf(err))
	}
	if files, _ := filepath.Glob(filepath.Join(b.env.JournalDir, "*")); len(files) != 0 {
		t.Errorf("a refused start wrote %v", files)
	}
	if b.refused == nil || codeOf(b.refused) != ExitLocked {
		t.Errorf("the refusal is not kept for the exit code: %v", b.refused)
	}
}

// The TUI starts from a fresh observation: a plan made before the fleet
// changed is refused as stale, whatever the TUI has cached.
func TestTUIStartReobserves(t *testing.T) {
	b, versions, _, _ := tuiFixture(t)
	p, err := b.PlanUpgrade("1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	versions["web3"] = "1.3.3"
	if _, _, err := b.Start(p); !errors.Is(err, plan.ErrStalePlan) {
		t.Fatalf("start after the fleet changed: %v; want ErrStalePlan", err)
	}
}

// A lock that cannot be read is an error for the TUI to show, never "free".
func TestTUILockUnreadable(t *testing.T) {
	b, _, _, lockErr := tuiFixture(t)
	*lockErr = errors.New("web1: dial 10.0.0.11:22: connection refused")
	if info, err := b.Lock(context.Background()); info != nil || err == nil {
		t.Fatalf("lock %v, err %v", info, err)
	}
}

func TestMain(m *testing.M) {
	if code, ok := runAsRelctl(); ok { // the demo tests' child processes
		os.Exit(code)
	}
	// The journal directory of tests that do not set one.
	if os.Getenv("XDG_STATE_HOME") == "" {
		dir, err := os.MkdirTemp("", "relctl-cli-state-")
		if err == nil {
			os.Setenv("XDG_STATE_HOME", dir)
			code := m.Run()
			os.RemoveAll(dir)
			os.Exit(code)
		}
	}
	os.Exit(m.Run())
}
