package opstest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/rollout"
)

// The harness runs a whole upgrade through ops with relctl's real
// host-side scripts: every host ends on 1.1.0 with its app running, the
// migrations ran once each, and the lock is free.
func TestUpgradeOnLocalHosts(t *testing.T) {
	f := New(t, Options{})
	env := f.Env(f.Transport())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pr, err := env.PlanUpgrade(ctx, ops.UpgradeOptions{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := env.Start(ctx, pr, ops.StartOptions{Gate: rollout.AutoApprove{}})
	if err != nil {
		t.Fatal(err)
	}
	res := run.Wait(ctx)
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
	for _, h := range f.Hosts {
		if f.Version(h) != "1.1.0" || !f.Running(h) {
			t.Errorf("%s: version %q, running %v", h, f.Version(h), f.Running(h))
		}
	}
	if got := f.MigrationLines("web1"); !slices.Equal(got, []string{"pre 1.1.0", "post 1.1.0"}) {
		t.Errorf("migrations %q", got)
	}
	if li, err := env.ReadLockInfo(ctx); err != nil || li != nil {
		t.Errorf("lock after the run: %v %v", li, err)
	}
}
