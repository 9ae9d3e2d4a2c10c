package journal

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
)

// TestMain lets the test binary play a relctl process that is killed while
// writing its journal (see TestTornLineFromKilledWriter).
func TestMain(m *testing.M) {
	if path := os.Getenv("RELCTL_JOURNAL_CHILD"); path != "" {
		childWriter(path)
		return
	}
	os.Exit(m.Run())
}

// childWriter writes a run's first records through a Writer, then the first
// part of the next line straight to the file (as a write cut short by a
// full disk or a crash would leave it), says "ready" and waits to be killed.
func childWriter(path string) {
	dir, id := filepath.Dir(path), strings.TrimSuffix(filepath.Base(path), ".jsonl")
	w, err := Create(dir, id)
	if err != nil {
		panic(err)
	}
	bus := event.NewBus(id, nil, w)
	bus.Emit(event.Event{Type: event.RunStarted, Plan: testPlan(), Owner: "child@box"})
	bus.Emit(event.Event{Type: event.StepStarted, Step: "lock"})
	bus.Emit(event.Event{Type: event.StepFinished, Step: "lock", Status: event.StatusOK})
	bus.Emit(event.Event{Type: event.StepStarted, Step: "deploy/web1"})
	if err := w.Sync(); err != nil {
		panic(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		panic(err)
	}
	if _, err := f.WriteString(`{"v":1,"seq":5,"type":"host_changed","host":"web1","sta`); err != nil {
		panic(err)
	}
	os.Stdout.WriteString("ready\n")
	for {
		time.Sleep(time.Hour)
	}
}

// resumeAndCheck reads the torn journal, reopens it (repairing it), appends
// the rest of the run as a resume would, and reads it back whole.
func resumeAndCheck(t *testing.T, path string) {
	t.Helper()
	r, err := Read(path)
	if err != nil {
		t.Fatalf("read torn journal: %v", err)
	}
	if !r.Resumable() || !r.Progress.Finished["lock"] || !r.Progress.Started["deploy/web1"] {
		t.Fatalf("torn journal read as %+v", r.Progress)
	}
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if note := w.Repaired(); !strings.Contains(note, "dropped a torn last line") {
		t.Errorf("Repaired() = %q, want a note about the torn line", note)
	}
	bus := event.NewBus(r.ID, nil, w)
	bus.Emit(event.Event{Type: event.StepFinished, Step: "deploy/web1", Status: event.StatusOK})
	bus.Emit(event.Event{Type: event.RunFinished, Outcome: event.OutcomeSucceeded})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = Read(path)
	if err != nil {
		t.Fatalf("the resumed journal must read whole: %v", err)
	}
	if !r.Finished || r.Outcome != event.OutcomeSucceeded || !r.Progress.Finished["deploy/web1"] || r.Resumable() {
		t.Errorf("resumed run %+v", r)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"type":"warning","msg":"journal repaired: dropped a torn last line`) {
		t.Errorf("the repair is not recorded in the journal:\n%s", data)
	}
	if strings.Contains(string(data), `"sta{`) || strings.Contains(string(data), `"step_sta{`) {
		t.Errorf("the fragment merged with the next record:\n%s", data)
	}
	// A second Open has nothing to repair.
	w, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if note := w.Repaired(); note != "" {
		t.Errorf("second Open repaired %q", note)
	}
	w.Close()
}

func TestTornLineFromKilledWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "20260101T000000Z-00000000000000aa.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RELCTL_JOURNAL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = errors.New("child said " + line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child never got to write its torn line")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}
	resumeAndCheck(t, path)
}

func TestTruncatedJournalRepaired(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "r1",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "lock"},
		event.Event{Type: event.StepFinished, Step: "lock", Status: event.StatusOK},
		event.Event{Type: event.StepStarted, Step: "deploy/web1"},
		event.Event{Type: event.HostChanged, Host: "web1", State: event.HostDraining})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the file in the middle of its last line, as a full disk does.
	if err := os.Truncate(path, int64(len(data)-15)); err != nil {
		t.Fatal(err)
	}
	resumeAndCheck(t, path)
}

func TestTailOfZerosRepaired(t *testing.T) {
	// After a power loss a file can end in zero bytes (its size was
	// written, its data not).
	dir := t.TempDir()
	path := write(t, dir, "r1",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "lock"},
		event.Event{Type: event.StepFinished, Step: "lock", Status: event.StatusOK},
		event.Event{Type: event.StepStarted, Step: "deploy/web1"})
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, 100<<10)) // longer than one read-back block
	f.Close()
	resumeAndCheck(t, path)
}

func TestBadLineInTheMiddleIsAnError(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "20260101T000000Z-0001",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "lock"})
	// What an old relctl left: a torn line and the next record merged.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"v":1,"type":"step_sta{"v":1,"seq":1,"type":"step_finished","step":"lock","status":"ok"}` + "\n")
	f.WriteString(`{"v":1,"seq":2,"type":"step_started","step":"deploy/web1"}` + "\n")
	f.Close()
	_, err := Read(path)
	if !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), path+":3:") {
		t.Fatalf("Read = %v, want ErrUnreadable naming %s:3", err, path)
	}
	// Unfinished must not answer "no unfinished run": it cannot know.
	r, err := Unfinished(dir)
	if r != nil || !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), path+":3:") {
		t.Fatalf("Unfinished = %v, %v; want an error naming %s:3", r, err, path)
	}
}

func TestUnreadableFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "20260101T000000Z-0001",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "deploy/web1"})
	bad := filepath.Join(dir, "20260101T000001Z-0002.jsonl")
	if err := os.Mkdir(bad, 0o700); err != nil { // open succeeds, read fails (EISDIR), for root too
		t.Fatal(err)
	}
	r, err := Unfinished(dir)
	if r != nil || !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Unfinished = %v, %v; want an error naming %s", r, err, bad)
	}
}

func TestUnreadableOlderThanAChangedRunDoesNotMatter(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "20260101T000000Z-0001.jsonl")
	os.WriteFile(old, []byte("garbage\n{}\n"), 0o600)
	write(t, dir, "20260101T000001Z-0002",
		event.Event{Type: event.RunStarted, Plan: testPlan()},
		event.Event{Type: event.StepStarted, Step: "deploy/web1"},
		event.Event{Type: event.RunFinished, Outcome: event.OutcomeSucceeded})
	if r, err := Unfinished(dir); r != nil || err != nil {
		t.Fatalf("Unfinished = %v, %v; want none: a newer run changed the fleet since", r, err)
	}
}

func TestRunIDs(t *testing.T) {
	now := time.Date(2026, 11, 29, 15, 4, 5, 0, time.UTC)
	re := regexp.MustCompile(`^20261129T150405Z-[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 100000 {
		id := NewRunID(now)
		if !re.MatchString(id) {
			t.Fatalf("run id %q: want <UTC second>-<16 hex digits (64 bits)>", id)
		}
		if seen[id] {
			t.Fatalf("run id %q given twice in the same second", id)
		}
		seen[id] = true
	}
	// No randomness: an error, never a constant.
	if id, err := newRunID(now, strings.NewReader("1234")); err == nil {
		t.Fatalf("short randomness gave id %q", id)
	}
	if id, err := newRunID(now, failingReader{}); err == nil || !strings.Contains(err.Error(), "no randomness") {
		t.Fatalf("failing randomness gave %q, %v", id, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestCreateRefusesAnExistingJournal(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "r1", event.Event{Type: event.RunStarted, Plan: testPlan()})
	before, _ := os.ReadFile(path)
	if _, err := Create(dir, "r1"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over an existing journal = %v, want os.ErrExist", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("the existing journal changed")
	}
}
