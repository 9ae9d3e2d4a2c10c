package lb

import (
	"context"
	"errors"
	"time"
)

// noneBalancer is for fleets without a balancer (or one relctl must not
// touch): every operation succeeds at once.
type noneBalancer struct{}

var _ Balancer = noneBalancer{}

func (noneBalancer) Kind() string { return KindNone }
func (noneBalancer) Describe() string {
	return "none: drain and enable are no-ops (no balancer; traffic is not moved)"
}
func (noneBalancer) Preflight(context.Context, []string, bool) error { return nil }
func (noneBalancer) Drain(context.Context, string) (DrainResult, error) {
	return DrainResult{Idle: true}, nil
}
func (noneBalancer) Enable(context.Context, string, time.Duration) error { return nil }
func (noneBalancer) States(context.Context) ([]ServerState, error)       { return nil, nil }
func (noneBalancer) Restore(context.Context, []string) error             { return nil }

// CanVerify implements Balancer: there is nothing to read.
func (noneBalancer) CanVerify() bool { return false }

// Verify implements Balancer; the plan never lists verify for none.
func (noneBalancer) Verify(context.Context, string) error {
	return errors.New("balancer none cannot verify a server")
}

// EnsureOut implements Balancer: no balancer sends traffic, so nothing to re-check.
func (noneBalancer) EnsureOut(context.Context, string) (string, error) { return "", nil }
