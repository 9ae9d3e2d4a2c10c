package hooks

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/testkit/deathtest"
)

// TestHelperRunsHook is not a test: as TestHookDiesWithRelctl's helper
// process (it plays relctl), it runs a before_run hook that starts a
// grandchild, and blocks until killed.
func TestHelperRunsHook(t *testing.T) {
	if deathtest.Dir() == "" {
		t.Skip("helper process for TestHookDiesWithRelctl")
	}
	r := &Runner{Hooks: fleet.Hooks{BeforeRun: []fleet.Hook{{Command: deathtest.Script, Timeout: time.Hour}}}, Dir: t.TempDir(),
		Environ: os.Environ()}
	r.Run(context.Background(), Input{Hook: fleet.HookBeforeRun})
	os.Exit(3) // the hook ended by itself: the parent test then fails
}

// relctl SIGKILLed while a hook runs: the hook and the grandchild it
// started both die, instead of running on with no relctl to wait for them.
func TestHookDiesWithRelctl(t *testing.T) {
	h, pids := deathtest.Start(t, "TestHelperRunsHook")
	deathtest.KillAndWaitGone(t, h, pids)
}
