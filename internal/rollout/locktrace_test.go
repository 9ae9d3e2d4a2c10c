package rollout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/remote"
)

// lockTrace records every lock command that goes through it: when it was
// sent, how long it took, whether it opened a session (beside the shell)
// and how it ended. A test that loses its lock logs the trace, so a loss
// on a loaded machine says which renewal was slow and where it went.
type lockTrace struct {
	Hosts
	pool *remote.Pool
	t0   time.Time

	mu    sync.Mutex
	lines []string
}

func newLockTrace(t *testing.T, h Hosts, pool *remote.Pool) *lockTrace {
	lt := &lockTrace{Hosts: h, pool: pool, t0: time.Now()}
	t.Cleanup(func() {
		if t.Failed() {
			lt.mu.Lock()
			defer lt.mu.Unlock()
			t.Logf("lock commands (sent at, took, sessions before → after, deadline left, error):\n%s", strings.Join(lt.lines, "\n"))
		}
	})
	return lt
}

func (lt *lockTrace) Run(ctx context.Context, host string, cmd remote.Command) (remote.Result, error) {
	if !strings.Contains(cmd.Script, ".relctl/lock") {
		return lt.Hosts.Run(ctx, host, cmd)
	}
	s0, start := lt.pool.Sessions(host), time.Now()
	left := "none"
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl).Round(time.Millisecond).String()
	}
	res, err := lt.Hosts.Run(ctx, host, cmd)
	lt.note("%8.3fs took %6s sessions %d → %d, deadline in %s, err %v", start.Sub(lt.t0).Seconds(), time.Since(start).Round(time.Millisecond), s0, lt.pool.Sessions(host), left, err)
	return res, err
}

// mark puts what the test did at this point into the trace.
func (lt *lockTrace) mark(what string) { lt.note("%8.3fs ---- %s", time.Since(lt.t0).Seconds(), what) }

func (lt *lockTrace) note(format string, args ...any) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.lines = append(lt.lines, fmt.Sprintf(format, args...))
}
