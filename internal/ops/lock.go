package ops

import (
	"context"
	"fmt"

	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// BreakLock breaks the fleet's lock as it is read now, only if its lease
// expired (any lock with force), audited on the lock host with the
// breaker and the holder's run id (Lock.BreakHeld). It returns the lock it
// broke, or nil when the fleet was not locked.
func (e *Env) BreakLock(ctx context.Context, force bool) (*rollout.LockInfo, error) {
	l := e.Lock()
	info, err := l.Read(ctx)
	if err != nil {
		return nil, fail(view.ExitError, err)
	}
	if info == nil {
		return nil, nil
	}
	if !info.Expired() && !force {
		return nil, fail(view.ExitLocked, fmt.Errorf("lock is %s and its lease is live: a run may be going on; --force breaks it anyway", info))
	}
	if err := l.BreakHeld(ctx, *info, e.Owner, ""); err != nil {
		return nil, fail(view.ExitError, err)
	}
	return info, nil
}
