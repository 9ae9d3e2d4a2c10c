// Package journal keeps the append-only record of every run: JSON lines of
// events under $XDG_STATE_HOME/relctl/<app>/, synced to disk before each step
// starts, so that a run killed at any moment can be resumed or rolled back.
//
// It reads and writes local files only; it never talks to hosts.
package journal

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

// Dir is where app's journals live: $XDG_STATE_HOME/relctl/<app>, or
// ~/.local/state/relctl/<app>.
func Dir(app string) (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("journal: no state directory: %w", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "relctl", app), nil
}

// NewRunID returns a sortable, unique run id such as 20261121T114512Z-3f2a.
func NewRunID(now time.Time) string {
	var b [2]byte
	f, err := os.Open("/dev/urandom")
	if err == nil {
		_, _ = f.Read(b[:])
		f.Close()
	}
	return fmt.Sprintf("%s-%02x%02x", now.UTC().Format("20060102T150405Z"), b[0], b[1])
}

// Writer appends events to one run's journal. It is an event.Sink.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	path string
	err  error
}

// Create starts the journal of run id in dir.
func Create(dir, id string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	path := filepath.Join(dir, id+".jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Writer{f: f, w: bufio.NewWriterSize(f, 64<<10), path: path}, nil
}

// Path is the journal's file.
func (j *Writer) Path() string { return j.path }

// Emit appends e and writes it through to the OS. Before a step starts,
// when it ends, and at the run's end, the file is also fsync'd: a crash
// never loses the record of what was about to change. Host state changes
// and output lines within a step reach the disk with the next sync; resume
// works from the step records.
func (j *Writer) Emit(e event.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		j.err = fmt.Errorf("journal: %w", err)
		return
	}
	b = append(b, '\n')
	if _, err := j.w.Write(b); err != nil {
		j.err = fmt.Errorf("journal %s: %w", j.path, err)
		return
	}
	switch e.Type {
	case event.RunStarted, event.PlanChanged, event.StepStarted, event.StepFinished, event.GateAnswered, event.RunFinished:
		j.syncLocked()
	default:
		// Written through to the OS at once, so a reader tailing the
		// journal sees every event as it happens; fsync waits for the next
		// step boundary.
		if err := j.w.Flush(); err != nil {
			j.err = fmt.Errorf("journal %s: %w", j.path, err)
		}
	}
}

// Sync flushes and fsyncs the journal.
func (j *Writer) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.syncLocked()
	return j.err
}

func (j *Writer) syncLocked() {
	if j.err != nil {
		return
	}
	if err := j.w.Flush(); err != nil {
		j.err = fmt.Errorf("journal %s: %w", j.path, err)
		return
	}
	if err := j.f.Sync(); err != nil {
		j.err = fmt.Errorf("journal %s: sync: %w", j.path, err)
	}
}

// Err is the first write error; the engine stops before the next mutating
// step when the journal cannot be written.
func (j *Writer) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Close syncs and closes the file.
func (j *Writer) Close() error {
	err := j.Sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Run is a run as its journal tells it.
type Run struct {
	ID      string
	Path    string
	Owner   string
	Started time.Time
	// Original is the plan the run started with; Plan is the one it ran
	// last (a rollback plan after a PlanChanged).
	Original *plan.Plan
	Plan     *plan.Plan
	// Progress is of Plan; OriginalProgress of Original.
	Progress         plan.Progress
	OriginalProgress plan.Progress
	Hosts            map[string]event.HostState
	LeftDrained      map[string]string
	PostMigrated     bool
	Finished         bool
	Outcome          event.Outcome
	Summary          *event.Summary
	Last             time.Time
	Events           int
}

// Resumable reports whether the run ended without finishing its plan: it
// was killed, or it paused for the operator.
func (r *Run) Resumable() bool {
	return !r.Finished || r.Outcome == event.OutcomePaused
}

func newProgress() plan.Progress {
	return plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}}
}

// Read replays a journal file. A torn last line (the process died while
// writing it) is ignored; any other bad line is an error naming it.
func Read(path string) (*Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	r := &Run{Path: path, Hosts: map[string]event.HostState{}, LeftDrained: map[string]string{}, Progress: newProgress()}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	var pendingErr error
	for sc.Scan() {
		line++
		if pendingErr != nil {
			return nil, pendingErr
		}
		var e event.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			pendingErr = fmt.Errorf("journal %s:%d: %w", path, line, err)
			continue
		}
		if e.Schema > event.Schema {
			return nil, fmt.Errorf("journal %s:%d: schema %d is newer than this relctl understands (%d)", path, line, e.Schema, event.Schema)
		}
		r.apply(e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if r.Plan == nil {
		return nil, fmt.Errorf("journal %s: no run_started record", path)
	}
	return r, nil
}

func (r *Run) apply(e event.Event) {
	r.Events++
	r.Last = e.Time
	switch e.Type {
	case event.RunStarted:
		r.ID, r.Owner, r.Started = e.RunID, e.Owner, e.Time
		r.Original, r.Plan = e.Plan, e.Plan
		r.Progress = newProgress()
		r.OriginalProgress = r.Progress
	case event.PlanChanged:
		r.Plan = e.Plan
		r.Progress = newProgress()
	case event.StepStarted:
		r.Progress.Started[e.Step] = true
		if r.Plan != nil {
			if s, ok := r.Plan.Step(e.Step); ok && s.PointOfNoReturn {
				r.PostMigrated = true
			}
		}
	case event.StepFinished:
		if e.Status == event.StatusOK {
			r.Progress.Finished[e.Step] = true
		}
	case event.StepSkipped:
		r.Progress.Finished[e.Step] = true
	case event.HostChanged:
		r.Hosts[e.Host] = e.State
		if e.State == event.HostLeftDrained {
			r.LeftDrained[e.Host] = e.Message
		} else {
			delete(r.LeftDrained, e.Host)
		}
	case event.RunFinished:
		r.Finished, r.Outcome, r.Summary = true, e.Outcome, e.Summary
	}
}

// List returns the runs in dir, newest first. Unreadable files are returned
// as errors alongside the runs that could be read.
func List(dir string) ([]*Run, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	var runs []*Run
	var errs []error
	for _, n := range names {
		r, err := Read(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		runs = append(runs, r)
	}
	return runs, errors.Join(errs...)
}

// Unfinished returns the newest resumable run in dir, or nil. Newer runs
// that ended before changing anything (refused by the lock, failed
// preflight) do not hide it; a newer run that changed hosts does.
func Unfinished(dir string) (*Run, error) {
	runs, err := List(dir)
	for _, r := range runs {
		if r.Resumable() {
			return r, err
		}
		if r.Changed() {
			break
		}
	}
	return nil, err
}

// Changed reports whether the run started any step that changes a host
// beyond taking the lock.
func (r *Run) Changed() bool {
	for _, p := range []*plan.Plan{r.Original, r.Plan} {
		if p == nil {
			continue
		}
		for _, s := range p.Steps {
			if s.Mutating && s.Kind != plan.StepLock && s.Kind != plan.StepUnlock && (r.Progress.Started[s.ID] || r.OriginalProgress.Started[s.ID]) {
				return true
			}
		}
	}
	return false
}

// Latest returns the newest run in dir, or nil.
func Latest(dir string) (*Run, error) {
	runs, err := List(dir)
	if len(runs) == 0 {
		return nil, err
	}
	return runs[0], err
}

// Open reopens an existing run's journal to append (resume).
func Open(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Writer{f: f, w: bufio.NewWriterSize(f, 64<<10), path: path}, nil
}
