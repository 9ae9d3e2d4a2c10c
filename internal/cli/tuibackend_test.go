package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// hookedFixture is tuiFixture over a copy of the example inventory whose
// before_run hook is beforeRun, with a local artifact for 1.4.0.
func hookedFixture(t *testing.T, beforeRun string) (*tuiBackend, string) {
	t.Helper()
	b, _, _, _ := tuiFixture(t)
	dir := t.TempDir()
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "fleet.yaml")
	// The example's hooks: has only a timeout; give it a before_run.
	hooked := strings.Replace(string(src), "hooks:", "hooks:\n  before_run: ["+beforeRun+"]", 1)
	if err := os.WriteFile(file, []byte(hooked), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := fleet.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	art, _ := inv.ArtifactPath("1.4.0")
	art = filepath.Join(dir, art)
	os.MkdirAll(filepath.Dir(art), 0o755)
	os.WriteFile(art, []byte("artifact 1.4.0"), 0o644)
	b.env.Inv = inv
	return b, dir
}

// The TUI's start runs the before_run hooks exactly as the CLI's: a
// failing one refuses the run (exit 8) before any journal is written, and
// runTUI then exits 8.
func TestTUIStartRefusedByABeforeRunHookExits8(t *testing.T) {
	b, dir := hookedFixture(t, `'cat > in.json; echo "change freeze" >&2; exit 3'`)
	p, err := b.PlanUpgrade("1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.Start(p)
	if !errors.Is(err, ops.ErrHookRefused) || codeOf(err) != ExitRefused || !strings.Contains(err.Error(), "hooks.before_run[0] failed: exit status 3: change freeze") {
		t.Fatalf("start: %v (exit %d); want the before_run hook's refusal, exit 8", err, codeOf(err))
	}
	if b.refused == nil || codeOf(b.refused) != ExitRefused {
		t.Errorf("the refusal is not kept for the exit code: %v", b.refused)
	}
	if files, _ := filepath.Glob(filepath.Join(b.env.JournalDir, "*")); len(files) != 0 {
		t.Errorf("a refused start wrote %v", files)
	}
	if in, err := os.ReadFile(filepath.Join(dir, "in.json")); err != nil || !strings.Contains(string(in), `"hook":"before_run"`) {
		t.Errorf("the hook (run in the inventory's directory) got %q, %v", in, err)
	}
}

// An interrupt while a before_run hook runs kills it and ends the start
// as an abort (exit 5), with nothing written, in time.
func TestInterruptDuringBeforeRunHook(t *testing.T) {
	b, _ := hookedFixture(t, `'sleep 60 & wait'`)
	p, err := b.PlanUpgrade("1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.ctx = ctx
	go func() { time.Sleep(300 * time.Millisecond); cancel() }()
	t0 := time.Now()
	_, _, err = b.Start(p)
	if el := time.Since(t0); el > 10*time.Second {
		t.Errorf("the interrupted hook held the start for %s", el)
	}
	if codeOf(err) != ExitAborted || !strings.Contains(fmt.Sprint(err), "interrupted during the before_run hooks") {
		t.Fatalf("start: %v (exit %d); want an abort, exit 5", err, codeOf(err))
	}
	if files, _ := filepath.Glob(filepath.Join(b.env.JournalDir, "*")); len(files) != 0 {
		t.Errorf("an interrupted start wrote %v", files)
	}
}
