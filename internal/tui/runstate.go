package tui

import (
	"fmt"
	"strings"
	"time"

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
	lines   []string
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

func (h *hostRow) add(line string) {
	if len(h.lines) >= maxHostLines {
		n := copy(h.lines, h.lines[maxHostLines/4:])
		h.lines = h.lines[:n]
	}
	h.lines = append(h.lines, line)
}

// gateInfo is a pending question from the engine.
type gateInfo struct {
	step    string
	message string
	failed  bool // Gate.Failed (on_failure: pause) rather than the canary gate
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
	paused       bool
	inRollback   bool
	startTime    time.Time
	lastTime     time.Time
	log          []string // control messages and warnings, newest last

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
	r := &runState{idx: map[string]int{}, started: map[string]bool{}, origStarted: map[string]bool{}, mixHop: -1}
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
		if s, ok := p.Step(id); ok && s.Kind == plan.StepDeploy {
			r.origStarted[id] = true
		}
		if s, ok := p.Step(id); ok && s.PointOfNoReturn {
			r.pnr = id
		}
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
	}
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
			r.row(e.Host).add(prefix + e.Line)
		}
	case event.ActionStarted:
		if e.Host != "" {
			r.row(e.Host).add("▸ " + string(e.Action))
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
			h.add(line)
			if e.Action == plan.ActionHealth {
				h.healthy = true
			}
		} else {
			h.add("✗ " + string(e.Action) + ": " + e.Error)
		}
	case event.HostChanged:
		r.hostChanged(e)
	case event.GateRequested:
		r.gate = &gateInfo{step: e.Step, message: e.Message}
		r.phase = "waiting for the operator: canary gate"
	case event.GateAnswered:
		r.gate = nil
		r.addLog("gate answered: " + e.Message)
	case event.Warning:
		msg := "warning: " + e.Message
		if e.Host != "" {
			msg = "warning: " + e.Host + ": " + e.Message
			r.row(e.Host).add("⚠ " + e.Message)
		}
		r.addLog(msg)
	case event.Control:
		r.control(e.Message)
	case event.RunFinished:
		r.finished, r.outcome, r.summary, r.errText = true, e.Outcome, e.Summary, e.Error
		r.gate = nil
		r.phase = "finished: " + string(e.Outcome)
		r.updateMix(e.Time, true)
	}
}

func (r *runState) control(msg string) {
	r.addLog(msg)
	switch {
	case strings.HasPrefix(msg, "pause requested"):
		r.paused = true
	case strings.HasPrefix(msg, "resumed"):
		r.paused = false
	case strings.HasPrefix(msg, "paused for the operator"):
		// The engine now waits in Gate.Failed.
		r.gate = &gateInfo{message: msg, failed: true}
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
		h.inStep, h.healthy = true, false
		h.started, h.ended = e.Time, time.Time{}
		h.add("── " + s.String())
	case plan.StepStage:
		r.phase = fmt.Sprintf("stage: upload and unpack %s on every host (nothing serves it yet)", strings.Join(s.Versions, ", "))
		r.row(s.Host).add("── " + s.String())
	case plan.StepPostMigrate:
		r.phase = "post-migrate on " + s.Host + " — POINT OF NO RETURN"
		r.row(s.Host).add("── " + s.String())
	case plan.StepMigrate:
		r.phase = "migrate on " + s.Host + " (pre-deploy, before any host switches)"
		r.row(s.Host).add("── " + s.String())
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
	if s.Kind == plan.StepDeploy {
		r.done++
		h := r.row(s.Host)
		h.inStep = false
		if !h.started.IsZero() {
			h.ended = e.Time
		}
	}
	if e.Status == event.StatusFailed && e.Host != "" {
		r.row(e.Host).add("✗ " + e.Step + ": " + e.Error)
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
		if len(r.plan.Hops) > 1 {
			fmt.Fprintf(&b, "hop %d/%d ", s.Hop+1, len(r.plan.Hops))
		}
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
		h.add(string(e.State) + ": " + e.Message)
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

// rollbackHosts are the hosts a rollback now would send back: those whose
// deploy step started in the hop under way, except those already back.
func (r *runState) rollbackHosts() []string {
	if r.orig == nil {
		return nil
	}
	hop := -1
	for _, s := range r.orig.Steps {
		if s.Kind == plan.StepDeploy && r.origStarted[s.ID] {
			hop = max(hop, s.Hop)
		}
	}
	var out []string
	for _, s := range r.orig.Steps {
		if s.Kind == plan.StepDeploy && s.Hop == hop && r.origStarted[s.ID] {
			if i, ok := r.idx[s.Host]; ok && r.rows[i].state == event.HostRolledBack {
				continue
			}
			out = append(out, s.Host)
		}
	}
	return out
}

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
	switch {
	case r.finished:
		return false, "the run has ended"
	case r.pnr != "":
		return false, "past post-migrate: use an emergency downgrade"
	case r.inRollback:
		return false, "already rolling back"
	}
	return true, ""
}
