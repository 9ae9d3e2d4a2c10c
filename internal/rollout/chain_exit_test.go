package rollout

import (
	"errors"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/remote"
)

// A chained action that exited 143 by itself reads as "exit status 143",
// never "killed by signal TERM"; one the host's watchdog ended reads as a
// timeout.
func TestChainActionExit143IsNotASignal(t *testing.T) {
	c := &hostChain{host: "web1"}
	a := &chainAct{action: "stop", timeout: time.Minute, tail: []string{"bye"}}
	err := c.actErr(a, &chainEnd{status: 143, took: 10 * time.Millisecond})
	var ee *remote.ExitError
	if !errors.As(err, &ee) || ee.Code != 143 || ee.Signal != "" || err.Error() != "web1: exit status 143: bye" {
		t.Fatalf("exit 143 = %v (%+v), want web1: exit status 143: bye", err, ee)
	}
	err = c.actErr(a, &chainEnd{status: 143, took: time.Minute, timedOut: true})
	if !errors.Is(err, remote.ErrTimeout) {
		t.Fatalf("a watchdog's kill = %v, want ErrTimeout", err)
	}
}
