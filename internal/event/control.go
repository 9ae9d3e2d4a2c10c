package event

// ControlKind says, for a Control event (and a GateRequested one), what
// happened, so that a view never has to match the Message's wording.
type ControlKind string

// Control kinds. The Message stays the text for a person.
const (
	CtlPauseRequested    ControlKind = "pause_requested"    // the run stops after the hosts in flight
	CtlResumed           ControlKind = "resumed"            // a paused run goes on (or a journal run was resumed)
	CtlAbortRequested    ControlKind = "abort_requested"    // nothing further starts
	CtlRollbackRequested ControlKind = "rollback_requested" // every switched host goes back after the hosts in flight
	CtlForced            ControlKind = "forced"             // a second interrupt: the command in flight is cut
	CtlWaiting           ControlKind = "waiting"            // waiting between batches, or for the lock
	// CtlPausedForFailure: the engine waits in Gate.Failed (on_failure:
	// pause) until the operator answers.
	CtlPausedForFailure ControlKind = "paused_for_failure"
	// CtlCanaryGate marks a GateRequested event of the canary gate, and,
	// when canary analysis decides the gate (mode auto or auto-rollback),
	// its AnalysisVerdict event instead: the point where the canary is
	// judged (the after_canary hooks run on it).
	CtlCanaryGate ControlKind = "canary_gate"
	// CtlCanaryGateAnalysed marks the GateRequested event of a canary gate
	// whose analysis (mode auto or auto-rollback) left the decision to the
	// operator; its AnalysisVerdict came first, marked CtlCanaryGate.
	CtlCanaryGateAnalysed ControlKind = "canary_gate_analysed"
	// CtlAnalysing: canary analysis started watching the canary (auto and
	// auto-rollback modes: before any gate is asked).
	CtlAnalysing ControlKind = "analysing"
	// CtlLockLost: the run's lock lease could not be renewed.
	CtlLockLost ControlKind = "lock_lost"
)
