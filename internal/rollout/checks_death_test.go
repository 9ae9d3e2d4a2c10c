package rollout

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/testkit/deathtest"
)

// TestHelperRunsCheck is not a test: as TestCheckDiesWithRelctl's helper
// process, it runs an analysis check that starts a grandchild, and blocks
// until killed.
func TestHelperRunsCheck(t *testing.T) {
	if deathtest.Dir() == "" {
		t.Skip("helper process for TestCheckDiesWithRelctl")
	}
	runCheck(context.Background(), fleet.Check{Name: "hang", Command: deathtest.Script, Timeout: time.Hour}, os.Environ())
	os.Exit(3)
}

// relctl SIGKILLed while an analysis check runs: the check and its
// grandchild die with it.
func TestCheckDiesWithRelctl(t *testing.T) {
	h, pids := deathtest.Start(t, "TestHelperRunsCheck")
	deathtest.KillAndWaitGone(t, h, pids)
}
