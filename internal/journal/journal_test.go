package journal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

func testPlan() *plan.Plan {
	return &plan.Plan{Schema: plan.SchemaVersion, Kind: plan.KindUpgrade, From: "1.0.0", To: "1.1.0", Steps: []plan.Step{
		{ID: "lock", Kind: plan.StepLock, Mutating: true},
		{ID: "deploy/web1", Kind: plan.StepDeploy, Host: "web1", Mutating: true},
		{ID: "post-migrate", Kind: plan.StepPostMigrate, Mutating: true, PointOfNoReturn: true},
	}}
}

func write(t *testing.T, dir, id string, evs ...event.Event) string {
	t.Helper()
	w, err := Create(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus(id, func() time.Time { return time.Unix(0, 0) }, w)
	for _, e := range evs {
		bus.Emit(e)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Path()
}

func TestReadProgress(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "r1",
		event.Event{Type: event.RunStarted, Plan: testPlan(), Owner: "me@box"},
		event.Event{Type: event.StepStarted, Step: "lock"},
		event.Event{Type: event.StepFinished, Step: "lock", Status: event.StatusOK},
		event.Event{Type: event.StepStarted, Step: "deploy/web1"},
		event.Event{Type: event.HostChanged, Host: "web1", State: event.HostLeftDrained, Message: "sshd died"},
	)
	r, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Progress.Finished["lock"] || !r.Progress.Started["deploy/web1"] || r.Progress.Finished["deploy/web1"] {
		t.Errorf("progress %+v", r.Progress)
	}
	if r.Owner != "me@box" || !r.Resumable() || r.LeftDrained["web1"] != "sshd died" || r.PostMigrated {
		t.Errorf("run %+v", r)
	}
}

func TestTornLastLineIgnoredOtherBadLinesNot(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "r1", event.Event{Type: event.RunStarted, Plan: testPlan()})
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	f.WriteString(`{"v":1,"type":"step_sta`)
	f.Close()
	if _, err := Read(path); err != nil {
		t.Fatalf("torn last line: %v", err)
	}
	f, _ = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	f.WriteString("\n{\"v\":1,\"type\":\"step_started\",\"step\":\"lock\"}\n")
	f.Close()
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("a bad line in the middle must be an error naming it, got %v", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.jsonl")
	os.WriteFile(path, []byte(`{"v":99,"type":"run_started"}`+"\n"), 0o600)
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), "schema 99") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnfinished(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "20260101T000000Z-0001",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "deploy/web1"})
	// A newer run refused by the lock does not hide the unfinished one.
	write(t, dir, "20260101T000001Z-0002",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "lock"},
		event.Event{Type: event.RunFinished, Outcome: event.OutcomeFailed})
	r, err := Unfinished(dir)
	if err != nil || r == nil || r.ID != "20260101T000000Z-0001" {
		t.Fatalf("Unfinished = %v, %v", r, err)
	}
	// A newer run that changed hosts does.
	write(t, dir, "20260101T000002Z-0003",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "deploy/web1"},
		event.Event{Type: event.RunFinished, Outcome: event.OutcomeSucceeded})
	if r, _ := Unfinished(dir); r != nil {
		t.Fatalf("Unfinished = %s, want none", r.ID)
	}
}

func TestPlanChangedTracksCurrentPlan(t *testing.T) {
	dir := t.TempDir()
	rb := &plan.Plan{Schema: plan.SchemaVersion, Kind: plan.KindRollback, Steps: []plan.Step{{ID: "rollback/web1", Kind: plan.StepDeploy, Host: "web1"}}}
	path := write(t, dir, "r1",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "deploy/web1"},
		event.Event{Type: event.PlanChanged, Plan: rb},
		event.Event{Type: event.StepStarted, Step: "rollback/web1"})
	r, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Plan.Kind != plan.KindRollback || r.Original.Kind != plan.KindUpgrade || !r.Progress.Started["rollback/web1"] || r.Progress.Started["deploy/web1"] {
		t.Errorf("plan %s original %s progress %+v", r.Plan.Kind, r.Original.Kind, r.Progress)
	}
	if !r.OriginalProgress.Started["deploy/web1"] {
		t.Error("original progress lost")
	}
}
