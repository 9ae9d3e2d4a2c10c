package lb

import (
	"context"
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
