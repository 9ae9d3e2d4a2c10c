// Package journal keeps the append-only record of every run: JSON lines of
// events under $XDG_STATE_HOME/relctl/<app>/, synced to disk before each step
// starts, so that a run killed at any moment can be resumed or rolled back.
//
// It reads and writes local files only; it never talks to hosts.
package journal

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// ErrUnreadable means a journal file cannot be read: the file cannot be
// opened, or a line other than a torn last one is not an event. Whether a
// run is unfinished cannot then be known, so nothing may start over it.
var ErrUnreadable = errors.New("journal cannot be read")

// ReadError is ErrUnreadable with the place: the file and, for a bad
// line, its number (1-based; 0 when the whole file is the problem).
type ReadError struct {
	Path string
	Line int
	Err  error
}

func (e *ReadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("journal %s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("journal %s: %v", e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *ReadError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreadable) hold.
func (e *ReadError) Is(target error) bool { return target == ErrUnreadable }

// runIDRandomBytes is the random part of a run id: 64 bits, so that two
// operators starting runs in the same second never collide.
const runIDRandomBytes = 8

// NewRunID returns a sortable, unique run id such as
// 20261121T114512Z-3f2a9c01d4e5b677: the UTC second, then 64 random bits.
// It never falls back to a constant: crypto/rand crashes the program when
// the system has no randomness (Go 1.24 and later).
func NewRunID(now time.Time) string {
	id, err := newRunID(now, rand.Reader)
	if err != nil {
		panic(err) // unreachable with crypto/rand; never a predictable id
	}
	return id
}

func newRunID(now time.Time, random io.Reader) (string, error) {
	var b [runIDRandomBytes]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("journal: run id: no randomness: %w", err)
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}

// Writer appends events to one run's journal. It is an event.Sink.
type Writer struct {
	mu       sync.Mutex
	f        *os.File
	w        *bufio.Writer
	path     string
	err      error
	repaired string
}

// Create starts the journal of run id in dir. The file must not exist
// (O_EXCL): two runs never write one journal, whatever their ids.
func Create(dir, id string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	path := filepath.Join(dir, id+".jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// The new name must survive a crash as well as the lines in it.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
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

// Read replays a journal file. A torn last line (no newline at its end:
// the process died or the disk filled while writing it) is ignored; Open
// cuts it off before appending. Any other line that is not an event, and a
// file that cannot be read, is a *ReadError naming the file and line.
func Read(path string) (*Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &ReadError{Path: path, Err: err}
	}
	defer f.Close()
	r := &Run{Path: path, Hosts: map[string]event.HostState{}, LeftDrained: map[string]string{}, Progress: newProgress()}
	br := bufio.NewReaderSize(f, 64<<10)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err == io.EOF {
			// Whatever follows the last newline is torn (or nothing).
			break
		}
		if err != nil {
			return nil, &ReadError{Path: path, Line: line, Err: err}
		}
		var e event.Event
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, &ReadError{Path: path, Line: line, Err: fmt.Errorf("not an event (%v): %s", err, excerpt(b))}
		}
		if e.Schema > event.Schema {
			return nil, &ReadError{Path: path, Line: line, Err: fmt.Errorf("schema %d is newer than this relctl understands (%d)", e.Schema, event.Schema)}
		}
		r.apply(e)
	}
	if r.Plan == nil {
		return nil, &ReadError{Path: path, Err: errors.New("no run_started record")}
	}
	return r, nil
}

// excerpt quotes the start of a bad line for an error message.
func excerpt(b []byte) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) > 60 {
		return fmt.Sprintf("%q…", b[:60])
	}
	return fmt.Sprintf("%q", b)
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
// preflight) do not hide it; a newer run that changed hosts does. A journal
// that cannot be read where the answer depends on it (newer than the
// newest run that changed hosts) is an error naming it, never "no
// unfinished run": it may be the unfinished one.
func Unfinished(dir string) (*Run, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		r, err := Read(n)
		if err != nil {
			return nil, fmt.Errorf("%w; whether a run is unfinished cannot be known: repair or move the file once you have checked the fleet", err)
		}
		if r.Resumable() {
			return r, nil
		}
		if r.Changed() {
			break
		}
	}
	return nil, nil
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

// Open reopens an existing run's journal to append (resume). A torn last
// line is cut off first (the file is truncated after its last newline), so
// that the next event does not merge with the fragment into a bad line in
// the middle; the repair is recorded in the journal as a warning and told
// by Repaired.
func Open(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	note, err := repairTail(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: repair torn last line: %w", path, err)
	}
	j := &Writer{f: f, w: bufio.NewWriterSize(f, 64<<10), path: path, repaired: note}
	if note != "" {
		j.Emit(event.Event{Schema: event.Schema, Time: time.Now(), Type: event.Warning, Message: "journal repaired: " + note})
		if err := j.Sync(); err != nil {
			j.f.Close()
			return nil, err
		}
	}
	return j, nil
}

// Repaired says what Open cut off the journal's end, or "" when its last
// line was whole.
func (j *Writer) Repaired() string { return j.repaired }

// repairTail truncates f after its last newline and leaves the offset at
// the end. It returns what it dropped, or "" when the file ended whole.
func repairTail(f *os.File) (string, error) {
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := st.Size()
	// Find the last newline, reading backwards in blocks.
	const block = 64 << 10
	buf := make([]byte, block)
	keep := int64(0)
	for end := size; end > 0; {
		start := max(end-block, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && err != io.EOF {
			return "", err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep = start + int64(i) + 1
			break
		}
		end = start
	}
	var note string
	if keep < size {
		tail := make([]byte, min(size-keep, 60))
		if _, err := f.ReadAt(tail, keep); err != nil && err != io.EOF {
			return "", err
		}
		if err := f.Truncate(keep); err != nil {
			return "", err
		}
		if err := f.Sync(); err != nil {
			return "", err
		}
		note = fmt.Sprintf("dropped a torn last line of %d bytes at offset %d (%s)", size-keep, keep, strings.TrimSpace(excerpt(tail)))
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return "", err
	}
	return note, nil
}
