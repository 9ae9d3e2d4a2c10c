// Package event defines the one stream of facts a run produces. The engine
// emits events; the journal, the plain printer, the JSON printer and the TUI
// consume them. Nothing here formats for a person or touches a host.
package event

import (
	"sync"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/plan"
)

// Schema is the version of the JSON form of Event (journal and --json lines).
const Schema = 1

// Type names what happened.
type Type string

// Event types.
const (
	RunStarted    Type = "run_started"    // Plan, RunID, Owner
	PlanChanged   Type = "plan_changed"   // Plan, Message (why: the run now executes a rollback plan)
	StepStarted   Type = "step_started"   // Step, Host
	StepOutput    Type = "step_output"    // Step, Host, Stream, Line
	ActionStarted Type = "action_started" // Step, Host, Action
	ActionDone    Type = "action_done"    // Step, Host, Action, Status, Message
	StepFinished  Type = "step_finished"  // Step, Host, Status, Error, Duration
	StepSkipped   Type = "step_skipped"   // Step, Host, Message (why)
	HostChanged   Type = "host_changed"   // Host, State, Version, Message
	GateRequested Type = "gate_requested" // Step, Message
	GateAnswered  Type = "gate_answered"  // Step, Message (promote | rollback | abort)
	Warning       Type = "warning"        // Message, Host
	Control       Type = "control"        // Message: paused, resumed, abort requested, rollback requested
	RunFinished   Type = "run_finished"   // Outcome, Summary
	// AnalysisSample: canary analysis read the balancer's counters; Step,
	// Analysis (the figures so far, judged without the checks), Message.
	AnalysisSample Type = "analysis_sample"
	// AnalysisVerdict: canary analysis ended; Step, Analysis (the verdict
	// and its evidence), Message.
	AnalysisVerdict Type = "analysis_verdict"
)

// Status of a finished step or action.
type Status string

// Statuses.
const (
	StatusOK      Status = "ok"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
)

// HostState is where a host is in a run, as the run view shows it.
type HostState string

// Host states, in the order a deploy moves through them.
const (
	HostQueued      HostState = "queued"
	HostStaging     HostState = "staging"
	HostStaged      HostState = "staged"
	HostDraining    HostState = "draining"
	HostStopping    HostState = "stopping"
	HostSwitching   HostState = "switching"
	HostStarting    HostState = "starting"
	HostChecking    HostState = "checking"
	HostEnabling    HostState = "enabling"
	HostInService   HostState = "in service" // back in the balancer on the new version
	HostFailed      HostState = "failed"
	HostReverting   HostState = "reverting"
	HostRolledBack  HostState = "rolled back"
	HostLeftDrained HostState = "left drained"
	HostSkipped     HostState = "skipped"
)

// Outcome is how a run ended.
type Outcome string

// Outcomes; each maps to an exit code in package cli.
const (
	OutcomeSucceeded  Outcome = "succeeded"
	OutcomeRolledBack Outcome = "rolled back"
	OutcomeFailed     Outcome = "failed"
	OutcomeAborted    Outcome = "aborted"
	OutcomePaused     Outcome = "paused"
	// OutcomePartial: the run finished, but the failure budget
	// (max_failed_hosts) left some hosts on the version they ran: the
	// fleet is on two versions, and post-migrate did not run.
	OutcomePartial Outcome = "partially upgraded"
)

// Event is one fact. Fields not used by a Type are empty.
type Event struct {
	Schema   int           `json:"v"`
	Seq      int64         `json:"seq"`
	Time     time.Time     `json:"time"`
	Type     Type          `json:"type"`
	RunID    string        `json:"run,omitempty"`
	Step     string        `json:"step,omitempty"`
	Host     string        `json:"host,omitempty"`
	Action   plan.Action   `json:"action,omitempty"`
	Stream   string        `json:"stream,omitempty"` // stdout | stderr | check (one health check, as the host reported it)
	Line     string        `json:"line,omitempty"`
	Status   Status        `json:"status,omitempty"`
	State    HostState     `json:"state,omitempty"`
	Version  string        `json:"version,omitempty"`
	Message  string        `json:"msg,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Owner    string        `json:"owner,omitempty"`
	Plan     *plan.Plan    `json:"plan,omitempty"`
	Outcome  Outcome       `json:"outcome,omitempty"`
	Summary  *Summary      `json:"summary,omitempty"`
	Control  ControlKind   `json:"ctl,omitempty"` // Control and GateRequested events: what happened (see ControlKind)
	// Analysis is canary analysis's figures (AnalysisSample) or verdict
	// (AnalysisVerdict).
	Analysis *analysis.Verdict `json:"analysis,omitempty"`

	// Hook is a HookFinished event's result (hook.go).
	Hook *HookResult `json:"hook,omitempty"`
}

// Summary is what a finished run tells the operator.
type Summary struct {
	Kind         plan.Kind         `json:"kind"`
	From         string            `json:"from"`
	To           string            `json:"to"`
	Upgraded     []string          `json:"upgraded,omitempty"`
	RolledBack   []string          `json:"rolled_back,omitempty"`
	Failed       []string          `json:"failed,omitempty"`
	LeftDrained  map[string]string `json:"left_drained,omitempty"` // host → reason
	Skipped      []string          `json:"skipped,omitempty"`
	PostMigrated bool              `json:"post_migrated"`
	// Versions is the version each host the run touched ends on.
	Versions map[string]string `json:"versions,omitempty"`
	Elapsed  time.Duration     `json:"elapsed_ns"`
	Journal  string            `json:"journal,omitempty"`
	Error    string            `json:"error,omitempty"`
	// Lock is empty when the run released its lock (or never held it);
	// otherwise it states the lock's state ("still held on web1 by run …").
	Lock string `json:"lock,omitempty"`
	// Forced is true when a second interrupt ended the run.
	Forced bool `json:"forced,omitempty"`
	// Held says why the run's plan held back a step the whole fleet
	// needs: a selection's post-migrate while selected-out hosts still
	// run the old version (the run ends partially upgraded).
	Held []string `json:"held,omitempty"`
	// SSHSessions is how many SSH sessions the process opened to each
	// host (the persistent shell, SFTP, kills of timed-out commands, and
	// every command on a host without the shell), observation included;
	// nil when the hosts are not reached over SSH.
	SSHSessions map[string]int `json:"ssh_sessions,omitempty"`
	// Analysis is the last canary analysis verdict of the run, with its
	// evidence; nil when the inventory asks for none.
	Analysis *analysis.Verdict `json:"analysis,omitempty"`
	// Hooks are the hooks run for this run so far (hook.go); the summary
	// of run_finished never holds the hooks that run after it.
	Hooks []HookResult `json:"hooks,omitempty"`
	// OutBefore are the hosts the balancer already had out of service
	// when the run started (taken on with --force), and whether the run
	// brought each back into rotation.
	OutBefore []OutBefore `json:"out_before,omitempty"`
}

// OutBefore is a host that was out of service before the run.
type OutBefore struct {
	Host string `json:"host"`
	// Was is its balancer state then, e.g. "DOWN (check L4CON)", "MAINT".
	Was string `json:"was"`
	// BackUp: the run put it back into rotation (the balancer's check
	// passed and it was verified in service); false: it is still out.
	BackUp bool `json:"back_up"`
}

// Sink consumes events. Emit must not block for long: views that may be slow
// buffer on their own side.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Emit calls f.
func (f SinkFunc) Emit(e Event) { f(e) }

// Bus stamps events (schema, sequence, time, run) and hands each to every
// sink in order. It is safe for concurrent use: the engine emits from one
// goroutine per host.
type Bus struct {
	mu    sync.Mutex
	seq   int64
	run   string
	now   func() time.Time
	sinks []Sink
}

// NewBus returns a bus for run id that feeds sinks.
func NewBus(run string, now func() time.Time, sinks ...Sink) *Bus {
	if now == nil {
		now = time.Now
	}
	return &Bus{run: run, now: now, sinks: sinks}
}

// Add attaches another sink.
func (b *Bus) Add(s Sink) {
	b.mu.Lock()
	b.sinks = append(b.sinks, s)
	b.mu.Unlock()
}

// Emit stamps e and delivers it to every sink, in one total order.
func (b *Bus) Emit(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Schema, e.Seq = Schema, b.seq
	if e.Time.IsZero() {
		e.Time = b.now()
	}
	if e.RunID == "" {
		e.RunID = b.run
	}
	for _, s := range b.sinks {
		s.Emit(e)
	}
}

// Chan is a sink that forwards events to a buffered channel for a view that
// runs in its own goroutine (the TUI). When the buffer is full it drops
// step output lines rather than stall the run (the journal keeps every
// one); every other event is delivered.
type Chan struct {
	C chan Event
}

// NewChan returns a channel sink with the given buffer.
func NewChan(n int) *Chan { return &Chan{C: make(chan Event, n)} }

// Emit implements Sink.
func (c *Chan) Emit(e Event) {
	if e.Type == StepOutput {
		select {
		case c.C <- e:
		default:
		}
		return
	}
	c.C <- e
}

// Close ends the stream.
func (c *Chan) Close() { close(c.C) }
