package tui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// screen is what the TUI shows.
type screen int

const (
	screenFleet  screen = iota // hosts, versions, balancer, lock; pick a target
	screenPlan                 // the plan preview
	screenReason               // the emergency downgrade's reason
	screenRun                  // the live run
	screenDone                 // the run's summary
)

// dialogKind is the question on screen, if any.
type dialogKind int

const (
	dlgNone       dialogKind = iota
	dlgStart                 // start this plan?
	dlgGate                  // the engine waits in the Gate
	dlgRollback              // roll back these hosts?
	dlgAbort                 // abort the run?
	dlgQuit                  // quit: abort the run and wait?
	dlgUnfinished            // an earlier run did not finish: resume / roll back
)

// model is the root model. It routes messages to its parts, which own
// their state and render themselves: the fleet pane, the plan pane, the
// run pane (its host list and log view are parts of their own), and the
// dialogs. The parts are embedded so that their state reads as the
// model's; no Update path does I/O.
type model struct {
	ctx  context.Context
	b    Backend
	o    Options
	keys keyMap
	st   styles
	help help.Model

	w, h int
	ticks

	screen    screen
	emergency bool   // the red emergency downgrade session
	notice    string // one line for the operator, cleared by the next key
	err       string // the last error, shown until the screen changes
	// info is what the backend said when there was nothing to start
	// (Nothing): not an error; shown until something else starts.
	info string

	// emergency downgrade reason
	reason textinput.Model
	downTo string

	// the host filter, shared by the fleet and run host lists
	filter    textinput.Model
	filtering bool

	fleetPane
	planPane
	runPane
	dialogPart
}

func newModel(ctx context.Context, b Backend, o Options) *model {
	m := &model{ctx: ctx, b: b, o: o, keys: newKeyMap(), st: newStyles(), help: help.New()}
	m.fleetPane = fleetPane{st: &m.st, filter: &m.filter, loading: true}
	m.planPane = planPane{st: &m.st}
	m.runPane = runPane{st: &m.st, filter: &m.filter, clk: &m.ticks}
	m.help.Styles = m.st.help
	m.reason = textinput.New()
	m.reason.Placeholder = "what is wrong in production"
	m.reason.Prompt = "reason> "
	m.reason.CharLimit = 200
	m.filter = textinput.New()
	m.filter.Prompt = "/"
	m.filter.Placeholder = "host or state"
	if o.Plan != nil {
		m.setPlan(o.Plan)
	}
	if d := o.Downgrade; d != nil {
		m.emergency, m.downTo = true, d.To
		if d.Reason == "" || d.To == "" {
			m.screen = screenReason
			m.reason.Focus()
		} else {
			m.reason.SetValue(d.Reason)
			m.planning = true
		}
	}
	if o.Unfinished != nil {
		m.dialog = dlgUnfinished
	}
	m.syncKeys()
	return m
}

// Init implements tea.Model.
func (m *model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.refresh()}
	if m.planning && m.o.Downgrade != nil {
		cmds = append(cmds, planDowngradeCmd(m.b, m.o.Downgrade.To, m.o.Downgrade.Reason))
	}
	if m.screen == screenReason {
		cmds = append(cmds, later(textinput.Blink))
	}
	if m.o.Demo {
		cmds = append(cmds, m.startTick())
	}
	return tea.Batch(cmds...)
}

// Update implements tea.Model.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case laterMsg:
		return m, msg.cmd
	case tea.WindowSizeMsg:
		m.handleResize(msg)
	case tea.KeyPressMsg:
		cmd = m.handleKey(msg)
	case eventsMsg:
		cmd = m.handleEvents(msg)
	case eventsClosedMsg:
		cmd = m.handleClosed()
	case tickMsg:
		cmd = m.handleTick(time.Time(msg))
	case fleetMsg:
		m.handleFleet(msg)
	case planMsg:
		cmd = m.handlePlan(msg)
	case lockMsg:
		m.handleLock(msg)
	case downTargetsMsg:
		m.handleDownTargets(msg)
	case gateLBMsg:
		m.handleGateLB(msg)
	case startedMsg:
		cmd = m.handleStarted(msg)
	case trafficMsg:
		m.traffic = msg.stats
	case interruptMsg, tea.InterruptMsg:
		cmd = m.handleInterrupt()
	default:
		cmd = m.forwardToInputs(msg)
	}
	m.syncKeys()
	return m, cmd
}

// forwardToInputs hands other messages (cursor blinks) to the text inputs.
func (m *model) forwardToInputs(msg tea.Msg) tea.Cmd {
	var c1, c2 tea.Cmd
	if m.screen == screenReason {
		m.reason, c1 = m.reason.Update(msg)
	}
	if m.filtering {
		m.filter, c2 = m.filter.Update(msg)
	}
	var c3 tea.Cmd
	if m.logv != nil && m.logv.searching {
		m.logv.search, c3 = m.logv.search.Update(msg)
	}
	return later(tea.Batch(c1, c2, c3))
}

func (m *model) handleResize(msg tea.WindowSizeMsg) {
	m.w, m.h = msg.Width, msg.Height
	iw, _ := m.inner()
	m.help.SetWidth(iw)
	m.reason.SetWidth(max(iw-12, 10))
	m.filter.SetWidth(max(iw-4, 10))
	m.planTop = min(m.planTop, m.planMaxTop())
	m.clampList()
}

// size is the window, or 80×24 before the first WindowSizeMsg.
func (m *model) size() (int, int) {
	w, h := m.w, m.h
	if w <= 0 {
		w = 80
	}
	if h <= 0 {
		h = 24
	}
	return w, h
}

// inner is the size inside the emergency frame (the window otherwise).
func (m *model) inner() (int, int) {
	w, h := m.size()
	if m.emergency {
		return max(w-2, 10), max(h-2, 5)
	}
	return w, h
}

func (m *model) startTick() tea.Cmd {
	if m.ticking {
		return nil
	}
	m.ticking = true
	return tickCmd()
}

func (m *model) runActive() bool { return m.handle != nil && m.run != nil && !m.run.finished }

func (m *model) handleTick(t time.Time) tea.Cmd {
	if t.After(m.now) {
		m.now = t
	}
	m.frame++
	var cmds []tea.Cmd
	if m.o.Demo && t.Sub(m.lastTraffic) >= trafficEvery {
		m.lastTraffic = t
		cmds = append(cmds, trafficCmd(m.b))
	}
	if m.runActive() || m.o.Demo {
		cmds = append(cmds, tickCmd())
	} else {
		m.ticking = false
	}
	return tea.Batch(cmds...)
}

// refresh asks for a fresh look at the fleet.
func (m *model) refresh() tea.Cmd {
	m.refreshGen++
	m.loading = true
	return refreshCmd(m.ctx, m.b, m.refreshGen)
}

func (m *model) handleFleet(msg fleetMsg) {
	m.fleetPane.apply(msg)
	m.clampList()
}

func (m *model) handlePlan(msg planMsg) tea.Cmd {
	m.planning = false
	if msg.err != nil {
		m.err = msg.err.Error()
		switch {
		case m.screen == screenReason:
			m.reason.Focus()
		case m.screen == screenFleet && m.emergency:
			m.downgradePick = true // pick another version
		}
		return nil
	}
	m.err = ""
	m.reason.Blur()
	m.setPlan(msg.plan)
	m.screen = screenPlan
	// The preview says who holds the lock as it is now, not as the
	// fleet screen last saw it.
	return m.readLock()
}

// readLock asks for a fresh look at the lock.
func (m *model) readLock() tea.Cmd {
	m.lockGen++
	m.lockReading = true
	return lockCmd(m.ctx, m.b, m.lockGen)
}

// handleLock takes the answer of the latest lock read.
func (m *model) handleLock(msg lockMsg) {
	if msg.gen != m.lockGen {
		return
	}
	m.lockReading = false
	m.lock, m.lockErr = msg.lock, msg.err
}

// planLocked reports whether another run holds the lock (a live lease),
// as last read: the preview's start is off then. A lock that cannot be
// read does not turn it off; the start reads it again either way, and the
// engine's lock step decides.
func (m *model) planLocked() bool {
	return m.lockErr == nil && m.lock != nil && !m.lock.Expired()
}

// handleDownTargets: the planner's answer for each version.
func (m *model) handleDownTargets(msg downTargetsMsg) {
	m.down = downPick(msg)
	m.down.probed = true
	m.targetCur = 0
}

func (m *model) setPlan(p *plan.Plan) {
	m.plan = p
	m.screen = screenPlan
	if p.Kind == plan.KindDowngrade {
		m.emergency = true
	}
	m.planTop = 0
}

func (m *model) handleStarted(msg startedMsg) tea.Cmd {
	m.starting = false
	m.info = ""
	var nothing *Nothing
	if errors.As(msg.err, &nothing) {
		m.info, m.resuming = nothing.Msg, false
		if m.quitting {
			return tea.Quit
		}
		return nil
	}
	if msg.err != nil {
		m.err = "could not start: " + msg.err.Error()
		m.resuming = false
		if m.quitting {
			// Interrupted while starting, and nothing started.
			return tea.Quit
		}
		return nil
	}
	m.err, m.notice = "", ""
	m.handle, m.events = msg.handle, msg.events
	if m.resuming && m.o.Unfinished != nil {
		m.run = resumedRunState(m.o.Unfinished)
		if m.o.Unfinished.Plan != nil && m.o.Unfinished.Plan.Kind == plan.KindDowngrade {
			m.emergency = true
		}
	} else {
		m.run = newRunState(m.plan)
	}
	m.resuming = false
	m.screen, m.dialog = screenRun, dlgNone
	m.cursor, m.offset, m.outScroll = 0, 0, 0
	m.list, m.logv, m.showTimeline = hostList{}, nil, false
	m.fleetStale = true
	m.filter.SetValue("")
	cmds := []tea.Cmd{waitForEvent(m.events), m.startTick()}
	if m.quitting {
		// Interrupted (or quit) while the run was starting: it stops now,
		// as it would have had it been running.
		m.stopHosts = nil
		cmds = append(cmds, m.abortCmd("interrupted (Ctrl-C)"))
		if m.forced {
			h := m.handle
			cmds = append(cmds, call("force", h.Force))
		}
	}
	return tea.Batch(cmds...)
}

// handleEvents folds a batch of run events into the run view, opens or
// closes the gate dialog, and re-arms the wait.
func (m *model) handleEvents(evs eventsMsg) tea.Cmd {
	if m.run == nil {
		m.run = newRunState(m.plan)
	}
	for _, e := range evs {
		if e.Time.After(m.now) {
			m.now = e.Time
		}
		m.run.apply(e)
		if e.Type == event.Control && e.Control == event.CtlForced {
			// Forced from outside (the CLI's second signal): quit once
			// the run has ended, as after a second Ctrl-C.
			m.quitting, m.interrupted, m.forced = true, true, true
		}
		if e.Type == event.RunFinished {
			m.outcome, m.summary = e.Outcome, e.Summary
		}
	}
	var lbCmd tea.Cmd
	switch {
	case m.run.gate != nil && m.dialog == dlgNone:
		m.dialog = dlgGate
		if !m.run.gate.failed {
			// The canary's figures from the balancer, as the gate opens.
			m.gateLB = nil
			lbCmd = gateBalancerCmd(m.ctx, m.b, m.run.gate.step)
		}
	case m.run.gate == nil && m.dialog == dlgGate:
		m.dialog = dlgNone
	}
	if m.run.finished {
		return m.runEnded()
	}
	return tea.Batch(waitForEvent(m.events), lbCmd)
}

// handleGateLB keeps the balancer's view of the canary for the gate that
// asked for it.
func (m *model) handleGateLB(msg gateLBMsg) {
	if m.run == nil || m.run.gate == nil || m.run.gate.step != msg.step {
		return
	}
	m.gateLB = &msg
}

// handleClosed: the channel closed. Normally RunFinished came first.
func (m *model) handleClosed() tea.Cmd {
	if m.run != nil && !m.run.finished {
		m.run.finished, m.run.outcome = true, event.OutcomeFailed
		m.run.errText = "the run's event stream ended without run_finished: check `relctl status` and the journal"
		m.outcome = event.OutcomeFailed
		return m.runEnded()
	}
	return nil
}

func (m *model) runEnded() tea.Cmd {
	m.handle = nil
	if m.dialog != dlgNone {
		m.dialog = dlgNone
	}
	m.screen = screenDone
	m.list.sel, m.list.offset = "", 0
	m.outScroll = 0
	m.logv, m.filtering = nil, false
	m.filter.Blur()
	m.notice = "" // what a key said during the run; the summary says how it ended
	if m.quitting {
		// The last frame is the summary, naming every host not in
		// service; relctl prints it again after the TUI closes.
		return tea.Quit
	}
	if m.downgradeAfter {
		// The summary first: the operator reads how the run ended, then
		// opens the downgrade.
		m.downgradeAfter = false
		m.notice = "the run has ended: read its summary, then press d for the emergency downgrade you asked for"
	}
	// The fleet's versions changed: look again, and say until then that
	// what the fleet screen holds is from before the run.
	m.fleetStale = true
	cmd := m.refresh()
	m.freshGen = m.refreshGen
	return cmd
}

// handleInterrupt: the context ended (the CLI's first SIGINT, SIGTERM or
// SIGHUP). Without a run the TUI quits; during one it is the first
// interrupt (see interrupt).
func (m *model) handleInterrupt() tea.Cmd {
	if !m.runActive() && !m.starting {
		return tea.Quit
	}
	return m.interrupt()
}

// interrupt gives Ctrl-C inside the TUI (where it is a key, not a signal)
// the CLI's semantics. The first asks the run to stop after the hosts in
// flight (they finish or are reverted) and starts nothing new; the second
// forces: the command in flight is cut, the host in flight gets one
// bounded attempt to go back into rotation, and the summary names every
// host not in service. Either way the TUI quits once the run has
// finished, and relctl exits with the code the CLI would.
//
// An abort already sent (the quit dialog, a signal) counts as the first.
func (m *model) interrupt() tea.Cmd {
	m.dialog = dlgNone
	if !m.runActive() {
		// The run is starting: it is stopped (or forced) as soon as it
		// has started; quitting now would leave it running unwatched.
		if m.quitting {
			m.forced = true
		}
		m.quitting, m.interrupted = true, true
		m.notice = "the run is starting: relctl stops it as soon as it has started, then quits"
		return nil
	}
	switch {
	case !m.quitting:
		m.quitting, m.interrupted = true, true
		m.stopHosts = m.run.inFlight()
		return m.abortCmd("interrupted (Ctrl-C)")
	case !m.forced:
		m.interrupted, m.forced = true, true
		if m.run.gate != nil {
			m.run.gate = nil
		}
		h := m.handle
		return call("force", h.Force)
	}
	m.notice = "already forcing: relctl quits as soon as the run has settled the journal and the lock"
	return nil
}

// stopBanner says what an interrupt is doing, while the run ends.
func (m *model) stopBanner() string {
	if !m.interrupted || !m.runActive() {
		return ""
	}
	if m.forced {
		return "FORCED: the command in flight is cut; the host in flight gets one bounded attempt to go back into rotation, then relctl quits and names every host not in service"
	}
	what := "the hosts in flight"
	if len(m.stopHosts) > 0 {
		what = strings.Join(m.stopHosts, ", ")
	}
	return "stopping after " + what + "… Ctrl-C again to force"
}

// abortCmd asks the run to stop safely; a pending gate is answered Abort
// (the engine waits in the gate, not at a checkpoint).
func (m *model) abortCmd(why string) tea.Cmd {
	h, gate := m.handle, m.run != nil && m.run.gate != nil
	return call("abort", func() {
		h.Abort(why)
		if gate {
			h.Answer(rollout.Abort)
		}
	})
}

func (m *model) openDowngradePick() tea.Cmd {
	m.screen = screenFleet
	m.emergency, m.downgradePick = true, true
	m.targetCur, m.cursor, m.offset = 0, 0, 0
	m.err = ""
	m.down = downPick{}
	return tea.Batch(m.refresh(), downTargetsCmd(m.b))
}

// handleKey routes a key to the log view, the text inputs, the open dialog
// or the screen.
func (m *model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	m.notice = ""
	if msg.String() == "ctrl+c" && (m.runActive() || m.starting) {
		// Ctrl-C is a key here, not a signal: it means what it means to
		// the CLI, wherever the focus is (dialog, log, filter).
		m.filtering = false
		m.filter.Blur()
		m.logv = nil
		return m.interrupt()
	}
	switch {
	case m.logv != nil && !m.filtering && m.dialog == dlgNone:
		return m.logKey(msg)
	case m.filtering:
		return m.filterKey(msg)
	case m.screen == screenReason:
		return m.reasonKey(msg)
	case m.dialog != dlgNone:
		return m.dialogKey(msg)
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return m.quit()
	case key.Matches(msg, m.keys.Help):
		m.help.ShowAll = !m.help.ShowAll
		return nil
	}
	switch m.screen {
	case screenFleet:
		return m.fleetKey(msg)
	case screenPlan:
		return m.planKey(msg)
	case screenRun:
		return m.runKey(msg)
	case screenDone:
		return m.doneKey(msg)
	}
	return nil
}

func (m *model) quit() tea.Cmd {
	if m.starting && !m.runActive() {
		m.quitting = true
		m.notice = "the run is starting: relctl aborts it as soon as it has started, then quits"
		return nil
	}
	if m.runActive() {
		if m.quitting {
			m.notice = "already aborting: relctl quits once the hosts in flight have finished or reverted"
			return nil
		}
		m.dialog = dlgQuit
		return nil
	}
	return tea.Quit
}

func (m *model) filterKey(msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case msg.String() == "ctrl+c":
		m.filtering = false
		m.filter.Blur()
		return m.quit()
	case key.Matches(msg, m.keys.AcceptFilter):
		m.filtering = false
		m.filter.Blur()
		return nil
	case key.Matches(msg, m.keys.ClearFilter):
		m.filtering = false
		m.filter.Blur()
		m.filter.SetValue("")
		m.cursor, m.offset, m.list.offset = 0, 0, 0
		return nil
	}
	var cmd tea.Cmd
	m.filter, cmd = m.filter.Update(msg)
	m.cursor, m.offset, m.list.offset = 0, 0, 0
	return later(cmd)
}

// logKey routes a key to the full-screen log view.
func (m *model) logKey(msg tea.KeyPressMsg) tea.Cmd {
	lv := m.logv
	switch {
	case msg.String() == "ctrl+c":
		return m.quit()
	case !lv.searching && key.Matches(msg, m.keys.Quit):
		return m.quit()
	case !lv.searching && key.Matches(msg, m.keys.Help):
		m.help.ShowAll = !m.help.ShowAll
		return nil
	}
	w, h := m.logArea()
	closed, cmd := lv.update(msg, m.keys, m.logLines(), w, h)
	if closed {
		m.logv = nil
		m.closeDialog() // back to the gate if the engine still waits in it
	}
	return later(cmd)
}

// logLines are the lines of the host the log view shows.
func (m *model) logLines() []logLine {
	if m.logv == nil || m.run == nil {
		return nil
	}
	if i, ok := m.run.idx[m.logv.host]; ok {
		return m.run.rows[i].lines
	}
	return nil
}

func (m *model) reasonKey(msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case msg.String() == "ctrl+c":
		return m.quit()
	case m.planning:
		return nil
	case key.Matches(msg, m.keys.Back):
		m.reason.Blur()
		m.err = ""
		m.screen = screenFleet
		m.downgradePick = m.o.Downgrade == nil || m.downTo == ""
		m.emergency = m.downgradePick
		if m.downgradePick && !m.down.probed {
			return downTargetsCmd(m.b)
		}
		return nil
	case key.Matches(msg, m.keys.SubmitReason):
		why := m.reason.Value()
		if m.downTo == "" {
			m.notice = "no target version: press esc and pick one"
			return nil
		}
		if strings.TrimSpace(why) == "" {
			m.notice = "a reason is required: it is written to the audit record"
			return nil
		}
		m.planning, m.err = true, ""
		return planDowngradeCmd(m.b, m.downTo, why)
	}
	var cmd tea.Cmd
	m.reason, cmd = m.reason.Update(msg)
	return later(cmd)
}

func (m *model) dialogKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	if key.Matches(msg, k.Help) {
		m.help.ShowAll = !m.help.ShowAll
		return nil
	}
	switch m.dialog {
	case dlgStart:
		switch {
		case key.Matches(msg, k.Yes):
			m.dialog = dlgNone
			m.starting = true
			return startCmd(m.ctx, m.b, m.plan)
		case key.Matches(msg, k.No):
			m.dialog = dlgNone
		case key.Matches(msg, k.Quit):
			return tea.Quit
		}
	case dlgGate:
		h := m.handle
		switch {
		case key.Matches(msg, k.Promote):
			m.dialog = dlgNone
			m.run.gate = nil // the engine answers with GateAnswered
			return call("answer promote", func() { h.Answer(rollout.Promote) })
		case key.Matches(msg, k.GateRollback):
			m.dialog = dlgRollback
		case key.Matches(msg, k.GateAbort):
			m.dialog = dlgAbort
		case key.Matches(msg, k.GateStop):
			m.dialog = dlgNone
			m.run.gate = nil
			return call("answer stop", func() { h.Answer(rollout.Stop) })
		case key.Matches(msg, k.OpenLog):
			if sel := m.selectedRow(); sel != nil {
				m.logv = newLogView(sel.name)
				m.dialog = dlgNone
			}
		case key.Matches(msg, k.Quit):
			m.dialog = dlgQuit
		}
	case dlgRollback:
		h := m.handle
		resume := m.pausedForDialog
		switch {
		case key.Matches(msg, k.Yes):
			m.dialog = dlgNone
			m.pausedForDialog = false
			m.notice = "rollback requested: after the hosts in flight, every switched host goes back"
			if m.run.gate != nil {
				m.run.gate = nil
				return call("answer rollback", func() { h.Answer(rollout.RollBack) })
			}
			return call("rollback", func() {
				h.RequestRollback()
				if resume {
					h.Resume()
				}
			})
		case key.Matches(msg, k.No):
			m.closeDialog()
			if resume {
				m.pausedForDialog = false
				return call("resume", h.Resume)
			}
		case key.Matches(msg, k.Quit):
			m.dialog = dlgQuit
		}
	case dlgAbort:
		switch {
		case key.Matches(msg, k.Yes):
			cmd := m.abortCmd("aborted by the operator")
			m.dialog = dlgNone
			if m.run.gate != nil {
				m.run.gate = nil
			}
			m.notice = "abort requested: the hosts in flight finish or are reverted; nothing further starts"
			return cmd
		case key.Matches(msg, k.No):
			m.closeDialog()
		case key.Matches(msg, k.Quit):
			m.dialog = dlgQuit
		}
	case dlgQuit:
		switch {
		case key.Matches(msg, k.Yes), key.Matches(msg, k.Quit):
			cmd := m.abortCmd("the operator quit the TUI")
			m.quitting = true
			m.dialog = dlgNone
			if m.run.gate != nil {
				m.run.gate = nil
			}
			m.notice = "aborting: waiting for the hosts in flight to finish or revert, then quitting"
			return cmd
		case key.Matches(msg, k.No):
			m.closeDialog()
		}
	case dlgUnfinished:
		switch {
		case key.Matches(msg, k.ResumeRun):
			m.dialog, m.resuming, m.starting = dlgNone, true, true
			return resumeCmd(m.b, false)
		case key.Matches(msg, k.RollbackRun):
			m.dialog, m.resuming, m.starting = dlgNone, true, true
			return resumeCmd(m.b, true)
		case key.Matches(msg, k.No):
			m.dialog = dlgNone
			m.notice = "the unfinished run stays; relctl resume continues it later"
		case key.Matches(msg, k.Quit):
			return tea.Quit
		}
	}
	return nil
}

// closeDialog goes back to the gate if the engine still waits in it.
func (m *model) closeDialog() {
	m.dialog = dlgNone
	if m.runActive() && m.run.gate != nil {
		m.dialog = dlgGate
	}
}

func (m *model) fleetKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Up):
		m.targetCur = max(m.targetCur-1, 0)
	case key.Matches(msg, k.Down):
		m.targetCur = min(m.targetCur+1, max(len(m.pickable())-1, 0))
	case key.Matches(msg, k.PageUp):
		m.offset = max(m.offset-m.listHeight()+1, 0)
	case key.Matches(msg, k.PageDown):
		m.offset += m.listHeight() - 1
		m.clampList()
	case key.Matches(msg, k.Filter):
		m.filtering = true
		return later(m.filter.Focus())
	case key.Matches(msg, k.Refresh):
		return m.refresh()
	case key.Matches(msg, k.Downgrade):
		return m.openDowngradePick()
	case key.Matches(msg, k.Back):
		m.downgradePick, m.emergency, m.err = false, false, ""
		m.targetCur = 0
	case key.Matches(msg, k.PickTarget):
		ts := m.pickable()
		if len(ts) == 0 {
			return nil
		}
		to := ts[min(m.targetCur, len(ts)-1)]
		m.err = ""
		if m.downgradePick {
			m.downTo = to
			m.screen = screenReason
			// A fresh reason every time: an earlier text is never
			// audited by mistake.
			m.reason.Reset()
			return later(m.reason.Focus())
		}
		m.planning = true
		return planUpgradeCmd(m.b, to)
	}
	return nil
}

func (m *model) planKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	page := max(m.planHeight()-1, 1)
	switch {
	case key.Matches(msg, k.Up):
		m.scroll(-1, m.planMaxTop())
	case key.Matches(msg, k.Down):
		m.scroll(1, m.planMaxTop())
	case key.Matches(msg, k.PageUp):
		m.scroll(-page, m.planMaxTop())
	case key.Matches(msg, k.PageDown):
		m.scroll(page, m.planMaxTop())
	case key.Matches(msg, k.StartPlan):
		m.dialog = dlgStart
	case key.Matches(msg, k.StartLocked):
		m.notice = "start is off: the fleet's lock is " + m.lock.String() + ". Wait for that run to end (relctl status shows it); R reads the lock again."
	case key.Matches(msg, k.Refresh):
		return m.readLock()
	case key.Matches(msg, k.Back):
		m.screen, m.err = screenFleet, ""
		m.emergency, m.downgradePick = false, false
		m.plan = nil
		return m.refresh()
	}
	return nil
}

// runOrder is the run's host list in display order (filter applied).
func (m *runPane) runOrder() []int {
	if m.run == nil {
		return nil
	}
	return m.list.order(m.run, m.filter.Value())
}

// listKeys are the keys the run and done screens share: the host list,
// its sort, filter and log view.
func (m *model) listKey(msg tea.KeyPressMsg) (bool, tea.Cmd) {
	k := m.keys
	order := m.runOrder()
	switch {
	case key.Matches(msg, k.Up):
		m.list.move(m.run, order, -1)
		m.outScroll = 0
	case key.Matches(msg, k.Down):
		m.list.move(m.run, order, 1)
		m.outScroll = 0
	case key.Matches(msg, k.Sort):
		sel := m.list.selected(m.run, order)
		m.list.byName = !m.list.byName
		if sel != nil && m.list.sel == "" && m.screen == screenDone {
			m.list.sel = sel.name
		}
		m.list.offset = 0
	case key.Matches(msg, k.FollowFlight):
		m.list.sel = ""
	case key.Matches(msg, k.Filter):
		m.filtering = true
		return true, later(m.filter.Focus())
	case key.Matches(msg, k.OpenLog):
		if sel := m.list.selected(m.run, order); sel != nil {
			m.logv = newLogView(sel.name)
		}
	default:
		return false, nil
	}
	return true, nil
}

func (m *model) runKey(msg tea.KeyPressMsg) tea.Cmd {
	if ok, cmd := m.listKey(msg); ok {
		return cmd
	}
	k := m.keys
	h := m.handle
	switch {
	case key.Matches(msg, k.PageUp):
		m.outScroll = min(m.outScroll+max(m.outputHeight()-1, 1), m.outMaxScroll())
	case key.Matches(msg, k.PageDown):
		m.outScroll = max(m.outScroll-max(m.outputHeight()-1, 1), 0)
	case key.Matches(msg, k.Pause):
		m.run.paused = true
		m.notice = "pausing after the hosts in flight (space resumes)"
		return call("pause", h.Pause)
	case key.Matches(msg, k.Resume):
		m.run.paused = false
		return call("resume", h.Resume)
	case key.Matches(msg, k.Abort):
		m.dialog = dlgAbort
	case key.Matches(msg, k.Rollback):
		m.dialog = dlgRollback
		if !m.run.paused {
			// Hold the run while the operator reads the list: no new
			// host starts, so the list stays exactly what goes back.
			m.pausedForDialog = true
			return call("pause", h.Pause)
		}
	case key.Matches(msg, k.NoRollback):
		_, why := m.run.canRollback()
		m.notice = "rollback refused: " + why + " (d: emergency downgrade once this run ends)"
	case key.Matches(msg, k.Downgrade):
		m.downgradeAfter = true
		m.notice = "after this run ends and you have read its summary, d opens the emergency downgrade (the run holds the fleet's lock)"
	}
	return nil
}

func (m *model) doneKey(msg tea.KeyPressMsg) tea.Cmd {
	if !m.showTimeline {
		if ok, cmd := m.listKey(msg); ok {
			return cmd
		}
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.PageUp):
		m.list.move(m.run, m.runOrder(), -max(m.listHeight()-1, 1))
	case key.Matches(msg, k.PageDown):
		m.list.move(m.run, m.runOrder(), max(m.listHeight()-1, 1))
	case key.Matches(msg, k.Timeline):
		m.showTimeline = !m.showTimeline
	case key.Matches(msg, k.ToFleet):
		m.screen, m.emergency, m.downgradePick = screenFleet, false, false
		m.run, m.plan = nil, nil
		m.cursor, m.offset = 0, 0
		m.filter.SetValue("")
		return m.refresh()
	case key.Matches(msg, k.Downgrade):
		m.run = nil
		m.filter.SetValue("")
		return m.openDowngradePick()
	}
	return nil
}

// syncKeys enables exactly the bindings that work now, so the help bar
// shows only those, and a key that is not shown does nothing.
func (m *model) syncKeys() {
	k := &m.keys
	if m.dialog != dlgQuit {
		k.Quit.SetHelp("q", "quit")
	}
	switch {
	case m.logv != nil && m.dialog == dlgNone && !m.filtering:
		m.syncLogKeys()
		return
	case m.filtering:
		k.only(&k.AcceptFilter, &k.ClearFilter)
		return
	case m.screen == screenReason:
		k.only(&k.SubmitReason, &k.Back)
		k.SubmitReason.SetEnabled(!m.planning)
		k.Back.SetEnabled(!m.planning)
		return
	case m.dialog != dlgNone:
		m.syncDialogKeys()
		return
	}
	k.only(&k.Help, &k.Quit)
	switch m.screen {
	case screenFleet:
		n := len(m.fleetRows())
		k.PageUp.SetEnabled(m.offset > 0)
		k.PageDown.SetEnabled(m.offset < max(n-m.listHeight(), 0))
		k.Filter.SetEnabled(len(m.hosts) > 0)
		k.Refresh.SetEnabled(!m.loading)
		k.Refresh.SetHelp("R", "refresh")
		ts := m.pickable()
		k.Up.SetEnabled(m.targetCur > 0)
		k.Down.SetEnabled(m.targetCur < len(ts)-1)
		k.Up.SetHelp("↑/k", "version up")
		k.Down.SetHelp("↓/j", "version down")
		k.PickTarget.SetEnabled(len(ts) > 0 && !m.planning)
		if m.downgradePick {
			k.PickTarget.SetHelp("enter", "downgrade to…")
			k.Back.SetEnabled(true)
			k.Back.SetHelp("esc", "cancel the downgrade")
		} else {
			k.PickTarget.SetHelp("enter", "plan")
			k.Downgrade.SetEnabled(true)
			k.Downgrade.SetHelp("d", "emergency downgrade")
		}
	case screenPlan:
		k.Up.SetEnabled(m.planTop > 0)
		k.Down.SetEnabled(m.planTop < m.planMaxTop())
		k.PageUp.SetEnabled(m.planTop > 0)
		k.PageDown.SetEnabled(m.planTop < m.planMaxTop())
		k.Up.SetHelp("↑/k", "up")
		k.Down.SetHelp("↓/j", "down")
		k.Back.SetEnabled(!m.starting)
		k.Back.SetHelp("esc", "back")
		startable := m.plan != nil && !m.plan.Empty() && !m.starting
		k.StartPlan.SetEnabled(startable && !m.planLocked())
		k.StartLocked.SetEnabled(startable && m.planLocked())
		k.Refresh.SetEnabled(!m.lockReading && !m.starting)
		k.Refresh.SetHelp("R", "re-read lock")
	case screenRun, screenDone:
		m.syncListKeys()
		if m.screen == screenDone {
			k.ToFleet.SetEnabled(true)
			k.Downgrade.SetEnabled(true)
			k.Downgrade.SetHelp("d", "emergency downgrade")
			k.Timeline.SetEnabled(m.run != nil && len(m.run.timeline) > 0)
			if m.showTimeline {
				k.Timeline.SetHelp("t", "host list")
			} else {
				k.Timeline.SetHelp("t", "timeline")
			}
			break
		}
		out := m.outMaxScroll()
		k.PageUp.SetEnabled(m.outScroll < out)
		k.PageDown.SetEnabled(m.outScroll > 0)
		k.PageUp.SetHelp("pgup", "output back")
		k.PageDown.SetHelp("pgdn", "output forward")
		if m.runActive() && !m.quitting {
			k.Pause.SetEnabled(!m.run.paused)
			k.Resume.SetEnabled(m.run.paused)
			k.Abort.SetEnabled(true)
			ok, _ := m.run.canRollback()
			k.Rollback.SetEnabled(ok)
			k.NoRollback.SetEnabled(!ok && m.run.pastNoReturn())
			k.Downgrade.SetEnabled(m.run.pastNoReturn() && !m.downgradeAfter)
			k.Downgrade.SetHelp("d", "downgrade after the run")
		}
	}
}

// syncListKeys: the host list of the run and done screens.
func (m *model) syncListKeys() {
	k := &m.keys
	if m.run == nil || m.screen == screenDone && m.showTimeline {
		return
	}
	order := m.runOrder()
	cur := m.list.cursor(m.run, order)
	k.Up.SetEnabled(cur > 0)
	k.Down.SetEnabled(cur < len(order)-1)
	k.Up.SetHelp("↑/k", "host up")
	k.Down.SetHelp("↓/j", "host down")
	k.Filter.SetEnabled(len(m.run.rows) > 0)
	// s is offered only when it would reorder the list.
	other := m.list
	other.byName = !other.byName
	k.Sort.SetEnabled(len(m.run.rows) > 1 && !slices.Equal(order, other.order(m.run, m.filter.Value())))
	if m.list.byName {
		k.Sort.SetHelp("s", "failed and in flight first")
	} else {
		k.Sort.SetHelp("s", "sort by name")
	}
	k.OpenLog.SetEnabled(len(order) > 0)
	k.FollowFlight.SetEnabled(m.screen == screenRun && m.list.sel != "")
	if m.screen == screenDone {
		k.PageUp.SetEnabled(cur > 0)
		k.PageDown.SetEnabled(cur < len(order)-1)
		k.PageUp.SetHelp("pgup", "page up")
		k.PageDown.SetHelp("pgdn", "page down")
	}
}

// syncLogKeys: the full-screen log view.
func (m *model) syncLogKeys() {
	k := &m.keys
	lv := m.logv
	if lv.searching {
		k.only(&k.AcceptFilter, &k.ClearFilter)
		k.AcceptFilter.SetHelp("enter", "search")
		k.ClearFilter.SetHelp("esc", "cancel")
		return
	}
	k.AcceptFilter.SetHelp("enter", "keep filter")
	k.ClearFilter.SetHelp("esc", "clear filter")
	k.only(&k.Back, &k.Follow, &k.Wrap, &k.Search, &k.Help, &k.Quit)
	w, h := m.logArea()
	lines := m.logLines()
	disp, _ := lv.display(lines, w)
	top := lv.top
	if lv.follow {
		top = maxTop(len(disp), h)
	}
	k.Up.SetEnabled(top > 0)
	k.PageUp.SetEnabled(top > 0)
	k.Down.SetEnabled(!lv.follow && top < maxTop(len(disp), h))
	k.PageDown.SetEnabled(!lv.follow && top < maxTop(len(disp), h))
	k.Up.SetHelp("↑/k", "up")
	k.Down.SetHelp("↓/j", "down")
	k.Back.SetHelp("esc", "close the log")
	ms := lv.matches(lines)
	k.NextMatch.SetEnabled(len(ms) > 0)
	k.PrevMatch.SetEnabled(len(ms) > 1)
	if lv.follow {
		k.Follow.SetHelp("f", "follow off")
	} else {
		k.Follow.SetHelp("f", "follow on")
	}
	if lv.wrap {
		k.Wrap.SetHelp("w", "wrap off")
	} else {
		k.Wrap.SetHelp("w", "wrap on")
	}
}

func (m *model) syncDialogKeys() {
	k := &m.keys
	switch m.dialog {
	case dlgStart, dlgRollback, dlgAbort:
		k.only(&k.Yes, &k.No, &k.Help, &k.Quit)
	case dlgQuit:
		k.only(&k.Yes, &k.No, &k.Help, &k.Quit)
		k.Quit.SetHelp("q", "abort and quit")
	case dlgGate:
		k.only(&k.Promote, &k.GateAbort, &k.Help, &k.Quit)
		ok, _ := m.run.canRollback()
		k.GateRollback.SetEnabled(ok)
		failed := m.run.gate != nil && m.run.gate.failed
		k.GateStop.SetEnabled(failed)
		k.OpenLog.SetEnabled(m.selectedRow() != nil)
		if failed {
			k.Promote.SetHelp("p", "go on")
		} else {
			k.Promote.SetHelp("p", "promote")
		}
	case dlgUnfinished:
		k.only(&k.ResumeRun, &k.No, &k.Help, &k.Quit)
		_, _, why := unfinishedRollback(m.o.Unfinished)
		k.RollbackRun.SetEnabled(why == "")
		k.No.SetHelp("esc", "later")
	}
	if m.dialog != dlgUnfinished {
		k.No.SetHelp("n/esc", "no")
	}
	switch m.dialog {
	case dlgStart:
		k.Yes.SetHelp("y", "start")
	case dlgRollback:
		k.Yes.SetHelp("y", "roll back")
	case dlgAbort:
		k.Yes.SetHelp("y", "abort")
	case dlgQuit:
		k.Yes.SetHelp("y", "abort and quit")
	default:
		k.Yes.SetHelp("y", "yes")
	}
}

// listHeight is how many host rows the current screen shows.
func (m *model) listHeight() int {
	_, h := m.layout()
	return max(h, 1)
}

// clampList keeps the fleet's cursor on a row and the row on screen.
func (m *model) clampList() {
	if m.screen != screenFleet {
		return
	}
	n := len(m.fleetRows())
	m.cursor = min(max(m.cursor, 0), max(n-1, 0))
	m.offset = scrollOffset(m.offset, m.cursor, n, m.listHeight(), false)
}

// scrollOffset returns the first visible row of a list of n rows in height
// rows, keeping the cursor visible when follow is set.
func scrollOffset(offset, cursor, n, height int, follow bool) int {
	if height <= 0 {
		return 0
	}
	if follow {
		if cursor < offset {
			offset = cursor
		}
		if cursor >= offset+height {
			offset = cursor - height + 1
		}
	}
	return min(max(offset, 0), max(n-height, 0))
}

var _ tea.Model = (*model)(nil)

// String helps test failures name the screen.
func (s screen) String() string {
	return [...]string{"fleet", "plan", "reason", "run", "done"}[s]
}

func (d dialogKind) String() string {
	return fmt.Sprint([...]string{"none", "start", "gate", "rollback", "abort", "quit", "unfinished"}[d])
}
