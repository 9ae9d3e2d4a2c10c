package ops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/ops/opstest"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// waitFile polls for path (generously: a busy machine).
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// relctl is killed during the pre-deploy migration; the migration goes on
// on web1. `resume --rollback` (the CLI prints Prepared.Nothing, the TUI
// shows it) has nothing to roll back, and says that the migration still
// runs there, with its pid; once it has ended, it says its recorded exit
// status. It ran once. Nothing is changed by asking.
func TestRollbackAfterKillDuringMigrationSaysItStillRuns(t *testing.T) {
	f := opstest.New(t, opstest.Options{Commands: map[string]string{"migrate": opstest.SlowMigrate}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := f.KillDuring(t, "web1", "/.relctl/migrations/")
	pid := f.MigrationPID(t, "web1", id, "migrate")

	next := f.Env(f.Transport())
	pr, err := next.PlanResume(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "pre-deploy migration to 1.1.0 (step migrate) still running on web1 (pid " + pid + ") — it will finish once; relctl did not switch any host"
	if pr.Plan != nil || !strings.Contains(pr.Nothing, "nothing to roll back") || !strings.Contains(pr.Nothing, want) {
		t.Fatalf("resume --rollback says:\n%s\nwant it to say:\n%s", pr.Nothing, want)
	}

	// Settling the run now would free the lock beside a running
	// migration: refused with the lock's exit code, the run unfinished.
	err = next.Settle(ctx, pr)
	if err == nil || ops.Code(err) != view.ExitLocked || !strings.Contains(err.Error(), "stays unfinished and keeps the fleet's lock") || !strings.Contains(err.Error(), "(pid "+pid+")") {
		t.Fatalf("settle while the migration runs: code %d, %v", ops.Code(err), err)
	}
	if again, err := next.PlanResume(ctx, true); err != nil || again.Settle == nil {
		t.Fatalf("after the refused settle the run must still be unfinished: %+v, %v", again, err)
	}

	// The migration ends on its own; asking again says how.
	f.Release(t, "web1")
	waitFile(t, filepath.Join(rollout.MigrationDir(f.Path("web1"), id, "migrate"), "status"))
	pr, err = next.PlanResume(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pr.Nothing, "pre-deploy migration to 1.1.0 (step migrate) on web1 ended with exit status 0") {
		t.Fatalf("after the migration ended, resume --rollback says:\n%s", pr.Nothing)
	}
	if err := next.Settle(ctx, pr); err != nil {
		t.Fatalf("settle once the migration ended: %v", err)
	}
	if again, err := next.PlanResume(ctx, true); err == nil && again.Settle != nil {
		t.Fatal("the run is still unfinished after settling it")
	}
	if got := f.MigrationLines("web1"); strings.Join(got, ",") != "pre 1.1.0" {
		t.Errorf("migrations on web1: %q, want one", got)
	}
	for _, h := range f.Hosts {
		if f.Version(h) != "1.0.0" || !f.Running(h) {
			t.Errorf("%s: %s, running %v", h, f.Version(h), f.Running(h))
		}
	}
}
