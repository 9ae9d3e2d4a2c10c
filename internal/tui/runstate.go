package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
)

// maxHostLines is how many output lines the run view keeps per host (the
// journal keeps them all).
const maxHostLines = 400

// hostRow is one host in the run view.
type hostRow struct {
	name    string
	state   event.HostState
	healthy bool // the health check passed in the current deploy
	version string
	msg     string // the last thing said about the host (failure reasons)
	started time.Time
	ended   time.Time
	inStep  bool // its deploy (or rollback) step is running
	lines   []logLine
	// health is the last health check result of its current deploy.
	health string
}

// logLine is one line of a host's log, as the log view shows it.
type logLine struct {
	t    time.Time
	text string
}

// active reports whether the host is being worked on now.
func (h *hostRow) active() bool {
	if h.inStep {
		return true
	}
	switch h.state {
	case event.HostStaging, event.HostDraining, event.HostStopping, event.HostSwitching,
		event.HostStarting, event.HostChecking, event.HostEnabling, event.HostReverting:
		return true
	}
	return false
}

// label is the state as the run view words it.
func (h *hostRow) label() string {
	switch h.state {
	case "":
		return "queued"
	case event.HostChecking:
		if h.healthy {
			return "healthy"
		}
		return "health check"
	case event.HostEnabling:
		return "back in (enabling)"
	case event.HostInService:
		return "in service"
	}
	return string(h.state)
}

func (h *hostRow) add(t time.Time, line string) {
	if len(h.lines) >= maxHostLines {
		n := copy(h.lines, h.lines[maxHostLines/4:])
		h.lines = h.lines[:n]
	}
	h.lines = append(h.lines, logLine{t: t, text: line})
}

// texts are the host's log lines without their times.
func (h *hostRow) texts() []string {
	out := make([]string, len(h.lines))
	for i, l := range h.lines {
		out[i] = l.text
	}
	return out
}

// gateInfo is a pending question from the engine.
type gateInfo struct {
	step    string
	message string
	to      string // the version the canary runs (the gate's hop's target)
	failed  bool   // Gate.Failed (on_failure: pause) rather than the canary gate
	since   time.Time
}

// runState is everything the run view knows, built only from events. It is
// updated by apply and read by the renderers; it does no I/O.
type runState struct {
	runID, owner string
	orig         *plan.Plan // the plan the run started with
	plan         *plan.Plan // the plan it runs now (a rollback plan after PlanChanged)
	rows         []*hostRow
	idx          map[string]int
	started      map[string]bool // step IDs started, of plan
	origStarted  map[string]bool // deploy step IDs started, of orig
	todo, done   int             // deploy steps of plan, and how many finished
	phase        string
	hop, batch   int    // of the deploy under way (0-based hop, 1-based batch)
	pnr          string // the point-of-no-return step that started, "" if none
	gate         *gateInfo
	analysis     *analysis.Verdict // the last canary analysis figures or verdict (analysis.go)
	analysisStep string            // the gate step they are of
	paused       bool
	inRollback   bool
	startTime    time.Time
	lastTime     time.Time
	log          []string // control messages and warnings, newest last
	// note is the latest control message for the info line; a new gate
	// clears it, so the header never shows an earlier gate's answer.
	note string
	// prog is the original plan's progress, as plan.Rollback reads it.
	prog plan.Progress
	// timeline: the run's steps and batches with their durations.
	timeline []span
	spanIdx  map[string]int
	// rb caches what a rollback now would do (see rollbackNow).
	rb *rollbackInfo
	// rev counts the events applied: views cache what they derive per rev.
	rev      int
	progRev  int
	progText string
	lockLost string

	// Side by side: versions served by the hosts of the hop under way.
	mixHop      int
	served      map[string]string // host → version it serves
	servedCount map[string]int    // version → hosts serving it
	mixedSince  time.Time         // zero when not mixed
	mixedTotal  time.Duration     // finished stretches
	wasMixed    bool

	finished bool
	outcome  event.Outcome
	summary  *event.Summary
	errText  string
}

func newRunState(p *plan.Plan) *runState {
	r := &runState{idx: map[string]int{}, started: map[string]bool{}, origStarted: map[string]bool{}, mixHop: -1, spanIdx: map[string]int{}}
	r.prog = plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}, Reverted: map[string]bool{}, Switched: map[string]bool{}}
	r.setPlan(p, true)
	return r
}

// resumedRunState is the run view of an unfinished run, as its journal
// tells it, before the resumed engine's first event.
func resumedRunState(u *journal.Run) *runState {
	p := u.Plan
	if u.Original != nil {
		p = u.Original
	}
	r := newRunState(p)
	r.runID, r.owner = u.ID, u.Owner
	for id := range u.OriginalProgress.Started {
		r.prog.Started[id] = true
		// Steps started before the resume: what they did is not known
		// here, so they count as switched (as the engine counts them).
		r.prog.Switched[id] = true
		if s, ok := p.Step(id); ok && s.Kind == plan.StepDeploy {
			r.origStarted[id] = true
		}
		if s, ok := p.Step(id); ok && s.PointOfNoReturn {
			r.pnr = id
		}
	}
	for id := range u.OriginalProgress.Finished {
		r.prog.Finished[id] = true
	}
	if u.PostMigrated && r.pnr == "" {
		r.pnr = "post-migrate"
	}
	if u.Plan != nil && u.Plan != p {
		r.setPlan(u.Plan, false)
		r.inRollback = u.Plan.Kind == plan.KindRollback
	}
	for id := range u.Progress.Started {
		r.started[id] = true
	}
	for id := range u.Progress.Finished {
		if s, ok := r.plan.Step(id); ok && s.Kind == plan.StepDeploy {
			r.done++
		}
	}
	for h, st := range u.Hosts {
		r.row(h).state = st
	}
	for h, why := range u.LeftDrained {
		r.row(h).msg = why
	}
	r.phase = "resuming run " + u.ID
	return r
}

// setPlan makes p the plan under way. The first plan of a run also
// defines the host rows; a later one (a rollback) only adds missing rows.
func (r *runState) setPlan(p *plan.Plan, first bool) {
	if p == nil {
		return
	}
	if first {
		r.orig = p
		r.rows, r.idx = nil, map[string]int{}
		r.origStarted = map[string]bool{}
		r.prog = plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}, Reverted: map[string]bool{}, Switched: map[string]bool{}}
	}
	r.rb = nil
	r.plan = p
	r.started = map[string]bool{}
	r.todo, r.done = 0, 0
	basis := map[string]string{}
	for _, h := range p.Basis.Hosts {
		basis[h.Name] = h.Version
	}
	for _, s := range p.Steps {
		if s.Kind != plan.StepDeploy {
			continue
		}
		r.todo++
		if _, ok := r.idx[s.Host]; !ok {
			row := r.row(s.Host)
			row.version = basis[s.Host]
			if row.version == "" {
				row.version = s.From
			}
		}
	}
	if first {
		for _, sk := range p.Skipped {
			row := r.row(sk.Host)
			row.state, row.version, row.msg = event.HostSkipped, sk.Version, sk.Reason
		}
	}
}

// row returns host's row, adding it when the plan did not name it.
func (r *runState) row(host string) *hostRow {
	if i, ok := r.idx[host]; ok {
		return r.rows[i]
	}
	r.idx[host] = len(r.rows)
	h := &hostRow{name: host}
	r.rows = append(r.rows, h)
	return h
}

func (r *runState) addLog(s string) {
	if len(r.log) >= 100 {
		r.log = append(r.log[:0], r.log[50:]...)
	}
	r.log = append(r.log, s)
}

// apply folds one event into the state.
func (r *runState) apply(e event.Event) {
	if e.Time.After(r.lastTime) {
		r.lastTime = e.Time
	}
	r.rb = nil
	r.rev++
	if r.runID == "" {
		r.runID = e.RunID
	}
	if r.plan == nil && e.Plan != nil {
		r.setPlan(e.Plan, true)
	}
	switch e.Type {
	case event.RunStarted:
		r.runID, r.owner, r.startTime = e.RunID, e.Owner, e.Time
		if e.Plan != nil && e.Plan != r.orig {
			r.setPlan(e.Plan, true)
		}
		if e.Plan != nil {
			r.inRollback = e.Plan.Kind == plan.KindRollback
		}
		r.phase = "starting"
	case event.PlanChanged:
		r.setPlan(e.Plan, false)
		r.inRollback = e.Plan != nil && e.Plan.Kind == plan.KindRollback
		r.gate = nil
		r.addLog("now running the " + string(e.Plan.Kind) + " plan: " + e.Message)
		r.note = "now running the " + string(e.Plan.Kind) + " plan"
		r.phase = string(e.Plan.Kind) + " " + e.Plan.From + " → " + e.Plan.To
	case event.StepStarted:
		r.stepStarted(e)
	case event.StepFinished, event.StepSkipped:
		r.stepFinished(e)
	case event.StepOutput:
		if e.Host != "" {
			prefix := ""
			if e.Stream == "stderr" {
				prefix = "! "
			}
			r.row(e.Host).add(e.Time, prefix+e.Line)
		}
	case event.ActionStarted:
		if e.Host != "" {
			r.row(e.Host).add(e.Time, "▸ "+string(e.Action))
		}
	case event.ActionDone:
		if e.Host == "" {
			break
		}
		h := r.row(e.Host)
		if e.Status == event.StatusOK {
			line := "✓ " + string(e.Action)
			if e.Message != "" {
				line += ": " + e.Message
			}
			h.add(e.Time, line)
			if e.Action == plan.ActionHealth {
				h.healthy = true
				h.health = e.Message
			}
			if e.Action == plan.ActionSwitch && !r.inRollback {
				r.prog.Switched[e.Step] = true
			}
		} else {
			h.add(e.Time, "✗ "+string(e.Action)+": "+e.Error)
			if e.Action == plan.ActionHealth {
				h.health = "not healthy: " + e.Error
			}
		}
	case event.HostChanged:
		r.hostChanged(e)
	case event.GateRequested:
		r.gate = &gateInfo{step: e.Step, message: e.Message, to: e.Version, since: e.Time}
		if r.gate.to == "" {
			if s, ok := r.plan.Step(e.Step); ok {
				r.gate.to = s.To
			}
		}
		r.note = ""
		r.phase = "waiting for the operator: canary gate"
		if len(r.plan.Hops) > 1 {
			if s, ok := r.plan.Step(e.Step); ok {
				r.phase = fmt.Sprintf("waiting for the operator: canary gate of hop %d/%d (→ %s)", s.Hop+1, len(r.plan.Hops), s.To)
			}
		}
		r.spanStart("gate:"+e.Step, "gate: "+e.Step+" (waiting for the operator)", e.Time)
	case event.GateAnswered:
		r.gate = nil
		r.addLog("gate answered: " + e.Message)
		r.note = "gate answered: " + e.Message
		if e.Step != "" {
			r.spanEnd("gate:"+e.Step, e.Time)
		}
	case event.AnalysisSample, event.AnalysisVerdict:
		r.applyAnalysis(e)
	case event.Warning:
		msg := "warning: " + e.Message
		if e.Host != "" {
			msg = "warning: " + e.Host + ": " + e.Message
			r.row(e.Host).add(e.Time, "⚠ "+e.Message)
		}
		r.addLog(msg)
		r.note = msg
		if e.Control == event.CtlLockLost {
			r.lockLost = e.Message
		}
	case event.Control:
		r.control(e)
	case event.HookFinished:
		r.addLog("hook " + e.Message)
	case event.RunFinished:
		r.finished, r.outcome, r.summary, r.errText = true, e.Outcome, e.Summary, e.Error
		r.applySummary(e.Summary)
		r.gate = nil
		r.phase = "finished: " + string(e.Outcome)
		r.updateMix(e.Time, true)
		r.endSpans(e.Time)
	}
}

// control folds a typed control event (never its wording) into the state.
func (r *runState) control(e event.Event) {
	r.addLog(e.Message)
	r.note = e.Message
	switch e.Control {
	case event.CtlPauseRequested:
		r.paused = true
	case event.CtlResumed:
		r.paused = false
	case event.CtlPausedForFailure:
		// The engine now waits in Gate.Failed.
		r.gate = &gateInfo{message: e.Message, failed: true, since: e.Time}
		r.phase = "paused for the operator after a failure"
	}
}

func (r *runState) stepStarted(e event.Event) {
	r.started[e.Step] = true
	if r.plan == nil {
		return
	}
	s, ok := r.plan.Step(e.Step)
	if !ok {
		r.phase = e.Message
		return
	}
	if !r.inRollback {
		r.prog.Started[s.ID] = true
	}
	key, name := spanOf(s, r.inRollback, len(r.plan.Hops))
	r.spanStart(key, name, e.Time)
	if s.PointOfNoReturn {
		r.pnr = s.ID
	}
	switch s.Kind {
	case plan.StepDeploy:
		if !r.inRollback {
			r.origStarted[s.ID] = true
		}
		r.hop, r.batch = s.Hop, s.Batch
		r.phase = r.batchText(s)
		if !r.inRollback && s.Hop != r.mixHop {
			r.startMixHop(s.Hop, e.Time)
		}
		h := r.row(s.Host)
		h.inStep, h.healthy, h.health = true, false, ""
		h.msg = "" // what staging said is over
		h.started, h.ended = e.Time, time.Time{}
		h.add(e.Time, "── "+s.String())
	case plan.StepStage:
		r.phase = fmt.Sprintf("stage: upload and unpack %s on every host (nothing serves it yet)", strings.Join(s.Versions, ", "))
		r.row(s.Host).add(e.Time, "── "+s.String())
	case plan.StepPostMigrate:
		r.phase = "post-migrate on " + s.Host + " — POINT OF NO RETURN"
		r.row(s.Host).add(e.Time, "── "+s.String())
	case plan.StepMigrate:
		r.phase = "migrate on " + s.Host + " (pre-deploy, before any host switches)"
		r.row(s.Host).add(e.Time, "── "+s.String())
	default:
		r.phase = s.String()
	}
}

func (r *runState) stepFinished(e event.Event) {
	if r.plan == nil {
		return
	}
	s, ok := r.plan.Step(e.Step)
	if !ok {
		return
	}
	if !r.inRollback && e.Type == event.StepFinished && e.Status == event.StatusOK {
		r.prog.Finished[s.ID] = true
	}
	key, _ := spanOf(s, r.inRollback, len(r.plan.Hops))
	r.spanEnd(key, e.Time)
	if s.Kind == plan.StepDeploy {
		r.done++
		h := r.row(s.Host)
		h.inStep = false
		if !h.started.IsZero() {
			h.ended = e.Time
		}
	}
	if e.Status == event.StatusFailed && e.Host != "" {
		r.row(e.Host).add(e.Time, "✗ "+e.Step+": "+e.Error)
	}
	if e.Status == event.StatusFailed && e.Host == "" {
		r.addLog(e.Step + " failed: " + e.Error)
	}
}

// batchText is "hop 1/2 · batch 2/4" for a deploy step.
func (r *runState) batchText(s plan.Step) string {
	n := 0
	for _, x := range r.plan.Steps {
		if x.Kind == plan.StepDeploy && x.Hop == s.Hop {
			n = max(n, x.Batch)
		}
	}
	var b strings.Builder
	if r.inRollback {
		b.WriteString("rollback")
	} else if len(r.plan.Hops) > 0 {
		// The hop number is on the progress line ("· hop 1/2").
		h := r.plan.Hops[min(max(s.Hop, 0), len(r.plan.Hops)-1)]
		fmt.Fprintf(&b, "deploy %s → %s", h.From, h.To)
	}
	fmt.Fprintf(&b, " · batch %d/%d", s.Batch, n)
	if s.Batch == 1 && !r.inRollback && r.plan.Settings.PauseAfterCanary {
		b.WriteString(" (canary)")
	}
	return b.String()
}

func (r *runState) hostChanged(e event.Event) {
	h := r.row(e.Host)
	h.state = e.State
	if e.Version != "" {
		h.version = e.Version
	}
	if e.Message != "" {
		h.msg = e.Message
		h.add(e.Time, string(e.State)+": "+e.Message)
	}
	if !r.inRollback && (e.State == event.HostRolledBack || e.State == event.HostLeftDrained) && h.inStep {
		// Its own compensation handled it: a rollback does not list it
		// again (as the engine counts it).
		for id := range r.origStarted {
			if s, ok := r.orig.Step(id); ok && s.Host == e.Host && !r.prog.Finished[id] {
				r.prog.Reverted[id] = true
			}
		}
	}
	switch e.State {
	case event.HostInService, event.HostRolledBack, event.HostLeftDrained:
		if !h.started.IsZero() && h.ended.IsZero() {
			h.ended = e.Time
		}
		if e.State == event.HostInService {
			h.msg = ""
		}
	}
	if r.served == nil {
		return
	}
	if _, ok := r.served[e.Host]; !ok {
		return
	}
	switch {
	case e.State == event.HostLeftDrained:
		r.serve(e.Host, "")
	case e.Version != "" && (e.State == event.HostInService || e.State == event.HostRolledBack || e.State == event.HostFailed):
		r.serve(e.Host, e.Version)
	}
	r.updateMix(e.Time, false)
}

// startMixHop begins tracking the versions the hosts of hop serve.
func (r *runState) startMixHop(hop int, t time.Time) {
	r.updateMix(t, true)
	r.mixHop = hop
	r.served, r.servedCount = map[string]string{}, map[string]int{}
	if r.orig == nil {
		return
	}
	for _, s := range r.orig.Steps {
		if s.Kind == plan.StepDeploy && s.Hop == hop {
			r.serve(s.Host, s.From)
		}
	}
}

func (r *runState) serve(host, v string) {
	if old := r.served[host]; old != "" {
		r.servedCount[old]--
		if r.servedCount[old] == 0 {
			delete(r.servedCount, old)
		}
	}
	r.served[host] = v
	if v != "" {
		r.servedCount[v]++
	}
}

// updateMix opens or closes a side-by-side stretch; end closes it.
func (r *runState) updateMix(t time.Time, end bool) {
	mixed := !end && len(r.servedCount) > 1
	switch {
	case mixed && r.mixedSince.IsZero():
		r.mixedSince, r.wasMixed = t, true
	case !mixed && !r.mixedSince.IsZero():
		r.mixedTotal += t.Sub(r.mixedSince)
		r.mixedSince = time.Time{}
	}
}

// sideBySide is how long old and new versions have served together.
func (r *runState) sideBySide(now time.Time) (time.Duration, bool) {
	d := r.mixedTotal
	if !r.mixedSince.IsZero() {
		d += now.Sub(r.mixedSince)
		return d, true
	}
	return d, false
}

// rollbackInfo is what a rollback requested now would do, as
// plan.Rollback decides it.
type rollbackInfo struct {
	ok    bool
	why   string   // the refusal, when !ok
	to    string   // the version the hosts go back to
	hosts []string // the hosts that go back, in order
}

// rollbackNow asks plan.Rollback (the engine's own planner) what a
// rollback now would do with the progress the events showed.
func (r *runState) rollbackNow() rollbackInfo {
	if r.rb != nil {
		return *r.rb
	}
	info := rollbackInfo{}
	switch {
	case r.finished:
		info.why = "the run has ended"
	case r.inRollback:
		info.why = "already rolling back"
	case r.orig == nil:
		info.why = "no plan"
	default:
		// A rollback starts after the hosts in flight: each of them has
		// then switched, or been reverted by its own compensation (and is
		// in Reverted). A finished step switched.
		prog := r.prog
		prog.Switched = map[string]bool{}
		for id := range r.prog.Switched {
			prog.Switched[id] = true
		}
		for id := range r.origStarted {
			if s, ok := r.orig.Step(id); ok {
				if i, ok := r.idx[s.Host]; ok && r.rows[i].inStep || r.prog.Finished[id] {
					prog.Switched[id] = true
				}
			}
		}
		to, hosts, err := plan.RollbackNow(r.orig, prog)
		if err != nil {
			info.why = err.Error()
		} else {
			info.ok, info.to, info.hosts = true, to, hosts
		}
	}
	r.rb = &info
	return info
}

// rollbackHosts are the hosts a rollback now would send back, in order.
func (r *runState) rollbackHosts() []string { return r.rollbackNow().hosts }

// inFlight are the hosts being worked on now.
func (r *runState) inFlight() []string {
	var out []string
	for _, h := range r.rows {
		if h.active() {
			out = append(out, h.name)
		}
	}
	return out
}

// canRollback says whether the one-key rollback is open, and why not.
func (r *runState) canRollback() (bool, string) {
	info := r.rollbackNow()
	return info.ok, info.why
}

// pastNoReturn reports whether rollback is refused because a
// post-migrate of the hop under way started.
func (r *runState) pastNoReturn() bool {
	if r.pnr == "" {
		return false
	}
	ok, _ := r.canRollback()
	return !ok && !r.inRollback && !r.finished
}

// applySummary makes the host list agree with the run's summary, the
// engine's last word on every host it touched.
func (r *runState) applySummary(s *event.Summary) {
	if s == nil {
		return
	}
	for h, v := range s.Versions {
		r.row(h).version = v
	}
	for _, h := range s.RolledBack {
		r.row(h).state = event.HostRolledBack
	}
	for _, h := range s.Failed {
		r.row(h).state = event.HostFailed
	}
	for h, why := range s.LeftDrained {
		row := r.row(h)
		row.state, row.msg = event.HostLeftDrained, strings.TrimPrefix(why, h+": ")
	}
}
