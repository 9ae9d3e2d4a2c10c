package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/relctl/relctl/internal/event"
)

// The engine's side of the lock: keep it renewed while the run holds it,
// stop starting steps once it is lost, release it only after the renewals
// stopped. (Kept apart from the step runners so that the lock's rules live
// in one place.)

// keepLock starts renewing the lock the run has just acquired with a
// request sent at since. Acquiring again while it is kept renews it; the
// renewals already running go on.
func (e *Engine) keepLock(since time.Time) {
	if e.held != nil && e.held.Err() == nil && !e.held.isReleased() {
		return
	}
	if e.held != nil {
		e.held.Stop()
	}
	e.held = e.lock.Keep(e.lockInfo, since, func(msg string) {
		e.bus.Emit(event.Event{Type: event.Warning, Message: "renew lock: " + msg})
	}, e.onLockLost)
	e.stopRenew = e.held.Stop
}

// onLockLost tells the operator and wakes a paused checkpoint, which then
// ends the run (lockLost).
func (e *Engine) onLockLost(err error) {
	e.bus.Emit(event.Event{Type: event.Warning, Control: event.CtlLockLost, Message: err.Error() +
		": no new step starts; the hosts in flight finish (or are reverted) and the run stops. Check the fleet with relctl status before going on."})
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// lockLost is the error that stops the run once its lock is lost, or nil.
func (e *Engine) lockLost() error {
	if e.held == nil {
		return nil
	}
	if err := e.held.Err(); err != nil {
		return fmt.Errorf("%w: %w", errAbort, err)
	}
	return nil
}

// releaseHeld stops the renewals, waits for the one in flight, then removes
// the lock.
func (e *Engine) releaseHeld(ctx context.Context) error {
	if e.held == nil {
		return e.lock.Release(ctx, e.lockInfo)
	}
	return e.held.Release(ctx)
}

func (h *Held) isReleased() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.released
}

// releaseLost: a lost lock that is gone or held by another run is not this
// run's to release; the loss was told when it happened.
func releaseLost(lostErr, err error) error {
	var le *LockError
	if lostErr != nil && (errors.Is(err, ErrLockGone) || errors.As(err, &le)) {
		return nil
	}
	return err
}
