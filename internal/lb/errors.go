package lb

import "errors"

// ErrUnknownServer means the balancer has no server (or backend / upstream)
// of the given name. Check the inventory's `server:` names against the
// balancer configuration.
var ErrUnknownServer = errors.New("unknown server")

// ErrNotUp means a server is not in the state an operation needs: Preflight
// found it DOWN, DRAIN or MAINT, or Enable/Drain timed out before the balancer
// reported the expected state.
var ErrNotUp = errors.New("server not up")

// ErrUnreachable means a balancer endpoint could not be reached (dial, SSH,
// or command transport failure), as opposed to the balancer answering with an
// error.
var ErrUnreachable = errors.New("balancer unreachable")

// ErrUnknownBackend means the balancer does not know the configured backend
// (HAProxy) or upstream (nginx).
var ErrUnknownBackend = errors.New("unknown backend")

// ErrNotIdle means EnsureOut found a server still serving requests and
// they did not end within the drain timeout: its app must not be stopped.
var ErrNotIdle = errors.New("server not idle")
