package lb_test

import (
	"context"
	"os"
	"testing"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/deathtest"
)

// TestHelperConnectorRuns is not a test: as TestConnectorDiesWithRelctl's
// helper process, it runs a local balancer command that starts a
// grandchild, and blocks until killed.
func TestHelperConnectorRuns(t *testing.T) {
	if deathtest.Dir() == "" {
		t.Skip("helper process for TestConnectorDiesWithRelctl")
	}
	_, _ = lb.LocalConnector{}.RunOn(context.Background(), "", deathtest.Script)
	os.Exit(3)
}

// relctl SIGKILLed while the local connector runs a balancer command: the
// command and its grandchild die with it.
func TestConnectorDiesWithRelctl(t *testing.T) {
	h, pids := deathtest.Start(t, "TestHelperConnectorRuns")
	deathtest.KillAndWaitGone(t, h, pids)
}
