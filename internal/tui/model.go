package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
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

// model is the one root model. Update dispatches to handleKey,
// handleEvents and handleResize; no Update path does I/O.
type model struct {
	// pausedForDialog: r paused the run so that the rollback confirmation
	// lists exactly the hosts that will go back; n resumes it.
	pausedForDialog bool

	ctx  context.Context
	b    Backend
	o    Options
	keys keyMap
	st   styles
	help help.Model

	w, h  int
	now   time.Time
	frame int // spinner frame

	screen    screen
	emergency bool // the red emergency downgrade session
	dialog    dialogKind
	notice    string // one line for the operator, cleared by the next key
	err       string // the last error, shown until the screen changes

	// fleet
	hosts         []observe.Host
	lock          *rollout.LockInfo
	servers       map[string][]lb.ServerState
	targets       []string
	targetCur     int
	loading       bool
	fleetErr      string
	downgradePick bool // the target list picks an emergency downgrade target

	// plan preview
	plan     *plan.Plan
	planView viewport.Model
	planning bool

	// emergency downgrade reason
	reason textinput.Model
	downTo string

	// host list filter and scroll (fleet and run views)
	filter    textinput.Model
	filtering bool
	cursor    int
	offset    int

	// run
	run            *runState
	handle         Handle
	events         <-chan event.Event
	resuming       bool
	starting       bool
	ticking        bool
	quitting       bool // abort sent: quit once the run has finished
	downgradeAfter bool // open the emergency downgrade when the run ends
	traffic        *TrafficStats
	lastTraffic    time.Time
	outScroll      int // output pane: lines scrolled back from the bottom

	// the last run's end, for Run's return
	outcome event.Outcome
	summary *event.Summary
}

func newModel(ctx context.Context, b Backend, o Options) *model {
	m := &model{ctx: ctx, b: b, o: o, keys: newKeyMap(), st: newStyles(), help: help.New(), loading: true}
	m.help.Styles = m.st.help
	m.reason = textinput.New()
	m.reason.Placeholder = "what is wrong in production"
	m.reason.Prompt = "reason> "
	m.reason.CharLimit = 200
	m.filter = textinput.New()
	m.filter.Prompt = "/"
	m.filter.Placeholder = "host or state"
	m.planView = viewport.New()
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
	cmds := []tea.Cmd{refreshCmd(m.ctx, m.b)}
	if m.planning && m.o.Downgrade != nil {
		cmds = append(cmds, planDowngradeCmd(m.b, m.o.Downgrade.To, m.o.Downgrade.Reason))
	}
	if m.screen == screenReason {
		cmds = append(cmds, textinput.Blink)
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
		m.handlePlan(msg)
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
	return tea.Batch(c1, c2)
}

func (m *model) handleResize(msg tea.WindowSizeMsg) {
	m.w, m.h = msg.Width, msg.Height
	iw, _ := m.inner()
	m.help.SetWidth(iw)
	m.reason.SetWidth(max(iw-12, 10))
	m.filter.SetWidth(max(iw-4, 10))
	if m.plan != nil {
		m.planView.SetContentLines(m.planLines(iw))
	}
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

func (m *model) handleFleet(msg fleetMsg) {
	m.loading = false
	m.hosts, m.lock, m.targets = msg.hosts, msg.lock, msg.targets
	m.servers = map[string][]lb.ServerState{}
	for _, s := range msg.servers {
		m.servers[s.Server] = append(m.servers[s.Server], s)
	}
	m.fleetErr = ""
	if msg.err != nil {
		m.fleetErr = msg.err.Error()
	}
	m.targetCur = min(m.targetCur, max(len(m.pickable())-1, 0))
	m.clampList()
}

func (m *model) handlePlan(msg planMsg) {
	m.planning = false
	if msg.err != nil {
		m.err = msg.err.Error()
		switch {
		case m.screen == screenReason:
			m.reason.Focus()
		case m.screen == screenFleet && m.emergency:
			m.downgradePick = true // pick another version
		}
		return
	}
	m.err = ""
	m.reason.Blur()
	m.setPlan(msg.plan)
	m.screen = screenPlan
}

func (m *model) setPlan(p *plan.Plan) {
	m.plan = p
	m.screen = screenPlan
	if p.Kind == plan.KindDowngrade {
		m.emergency = true
	}
	iw, _ := m.inner()
	m.planView.SetContentLines(m.planLines(iw))
	m.planView.GotoTop()
}

func (m *model) handleStarted(msg startedMsg) tea.Cmd {
	m.starting = false
	if msg.err != nil {
		m.err = "could not start: " + msg.err.Error()
		m.resuming = false
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
	m.filter.SetValue("")
	return tea.Batch(waitForEvent(m.events), m.startTick())
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
		if e.Type == event.RunFinished {
			m.outcome, m.summary = e.Outcome, e.Summary
		}
	}
	switch {
	case m.run.gate != nil && m.dialog == dlgNone:
		m.dialog = dlgGate
	case m.run.gate == nil && m.dialog == dlgGate:
		m.dialog = dlgNone
	}
	if m.run.finished {
		return m.runEnded()
	}
	return waitForEvent(m.events)
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
	if m.quitting {
		return tea.Quit
	}
	if m.dialog != dlgNone {
		m.dialog = dlgNone
	}
	m.screen = screenDone
	if m.downgradeAfter {
		m.downgradeAfter = false
		return m.openDowngradePick()
	}
	return nil
}

func (m *model) handleInterrupt() tea.Cmd {
	if !m.runActive() {
		return tea.Quit
	}
	if m.quitting {
		return nil
	}
	m.quitting = true
	m.dialog = dlgNone
	m.notice = "interrupted: aborting the run; waiting for the hosts in flight to finish or revert"
	return m.abortCmd("interrupted")
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
	m.loading = true
	return refreshCmd(m.ctx, m.b)
}

// pickable are the versions the fleet screen's list offers.
func (m *model) pickable() []string {
	return m.targets
}

// handleKey routes a key to the text inputs, the open dialog or the screen.
func (m *model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	m.notice = ""
	switch {
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
	if m.runActive() {
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
		m.cursor, m.offset = 0, 0
		return nil
	}
	var cmd tea.Cmd
	m.filter, cmd = m.filter.Update(msg)
	m.cursor, m.offset = 0, 0
	return cmd
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
	return cmd
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
			return startCmd(m.b, m.plan)
		case key.Matches(msg, k.No):
			m.dialog = dlgNone
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
		}
	case dlgQuit:
		switch {
		case key.Matches(msg, k.Yes):
			cmd := m.abortCmd("the operator quit the TUI")
			m.quitting = true
			m.dialog = dlgNone
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
		return m.filter.Focus()
	case key.Matches(msg, k.Refresh):
		m.loading = true
		return refreshCmd(m.ctx, m.b)
	case key.Matches(msg, k.Downgrade):
		m.downgradePick, m.emergency = true, true
		m.targetCur, m.err = 0, ""
	case key.Matches(msg, k.Back):
		m.downgradePick, m.emergency, m.err = false, false, ""
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
			return m.reason.Focus()
		}
		m.planning = true
		return planUpgradeCmd(m.b, to)
	}
	return nil
}

func (m *model) planKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Up):
		m.planView.ScrollUp(1)
	case key.Matches(msg, k.Down):
		m.planView.ScrollDown(1)
	case key.Matches(msg, k.PageUp):
		m.planView.PageUp()
	case key.Matches(msg, k.PageDown):
		m.planView.PageDown()
	case key.Matches(msg, k.StartPlan):
		m.dialog = dlgStart
	case key.Matches(msg, k.Back):
		m.screen, m.err = screenFleet, ""
		m.emergency, m.downgradePick = false, false
		m.plan = nil
		m.loading = true
		return refreshCmd(m.ctx, m.b)
	}
	return nil
}

func (m *model) runKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	h := m.handle
	switch {
	case key.Matches(msg, k.Up):
		m.cursor = max(m.cursor-1, 0)
		m.outScroll = 0
		m.clampList()
	case key.Matches(msg, k.Down):
		m.cursor++
		m.outScroll = 0
		m.clampList()
	case key.Matches(msg, k.PageUp):
		m.outScroll += max(m.outputHeight()-1, 1)
	case key.Matches(msg, k.PageDown):
		m.outScroll = max(m.outScroll-max(m.outputHeight()-1, 1), 0)
	case key.Matches(msg, k.Filter):
		m.filtering = true
		return m.filter.Focus()
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
		m.notice = "rollback refused: " + why + " (d)"
	case key.Matches(msg, k.Downgrade):
		if m.runActive() {
			m.downgradeAfter = true
			m.notice = "the emergency downgrade opens as soon as this run ends (the run holds the fleet's lock)"
			return nil
		}
		return m.openDowngradePick()
	}
	return nil
}

func (m *model) doneKey(msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case key.Matches(msg, m.keys.ToFleet):
		m.screen, m.emergency, m.downgradePick = screenFleet, false, false
		m.run, m.plan = nil, nil
		m.cursor, m.offset = 0, 0
		m.loading = true
		return refreshCmd(m.ctx, m.b)
	case key.Matches(msg, m.keys.Downgrade):
		m.run = nil
		return m.openDowngradePick()
	}
	return nil
}

// syncKeys enables exactly the bindings that work now, so the help bar
// shows only those.
func (m *model) syncKeys() {
	k := &m.keys
	switch {
	case m.filtering:
		k.only(&k.AcceptFilter, &k.ClearFilter)
		return
	case m.screen == screenReason:
		k.only(&k.SubmitReason, &k.Back)
		k.SubmitReason.SetEnabled(!m.planning)
		return
	case m.dialog != dlgNone:
		m.syncDialogKeys()
		return
	}
	switch m.screen {
	case screenFleet:
		k.only(&k.Up, &k.Down, &k.PageUp, &k.PageDown, &k.Filter, &k.Refresh, &k.Help, &k.Quit)
		k.Downgrade.SetHelp("d", "emergency downgrade")
		k.PickTarget.SetEnabled(len(m.pickable()) > 0 && !m.planning)
		if m.downgradePick {
			k.PickTarget.SetHelp("enter", "downgrade to…")
			k.Back.SetEnabled(true)
		} else {
			k.PickTarget.SetHelp("enter", "plan")
			k.Downgrade.SetEnabled(true)
		}
	case screenPlan:
		k.only(&k.Up, &k.Down, &k.PageUp, &k.PageDown, &k.Back, &k.Help, &k.Quit)
		k.StartPlan.SetEnabled(m.plan != nil && !m.plan.Empty() && !m.starting)
	case screenRun:
		k.only(&k.Up, &k.Down, &k.PageUp, &k.PageDown, &k.Filter, &k.Help, &k.Quit)
		if m.runActive() && !m.quitting {
			k.Pause.SetEnabled(!m.run.paused)
			k.Resume.SetEnabled(m.run.paused)
			k.Abort.SetEnabled(true)
			ok, _ := m.run.canRollback()
			k.Rollback.SetEnabled(ok)
			k.NoRollback.SetEnabled(!ok && m.run.pnr != "")
			k.Downgrade.SetEnabled(m.run.pnr != "" && !m.downgradeAfter)
			k.Downgrade.SetHelp("d", "downgrade…")
		}
	case screenDone:
		k.only(&k.ToFleet, &k.Downgrade, &k.Help, &k.Quit)
		k.Downgrade.SetHelp("d", "emergency downgrade")
	}
}

func (m *model) syncDialogKeys() {
	k := &m.keys
	switch m.dialog {
	case dlgStart, dlgRollback, dlgAbort, dlgQuit:
		k.only(&k.Yes, &k.No, &k.Help)
	case dlgGate:
		k.only(&k.Promote, &k.GateAbort, &k.Help, &k.Quit)
		ok, _ := m.run.canRollback()
		k.GateRollback.SetEnabled(ok)
		failed := m.run.gate != nil && m.run.gate.failed
		k.GateStop.SetEnabled(failed)
		if failed {
			k.Promote.SetHelp("p", "go on")
		} else {
			k.Promote.SetHelp("p", "promote")
		}
	case dlgUnfinished:
		k.only(&k.ResumeRun, &k.No, &k.Quit)
		k.RollbackRun.SetEnabled(m.o.Unfinished != nil && !m.o.Unfinished.PostMigrated)
		k.No.SetHelp("esc", "later")
	}
	if m.dialog != dlgUnfinished {
		k.No.SetHelp("n/esc", "no")
	}
}

// listHeight is how many host rows the current screen shows.
func (m *model) listHeight() int {
	_, h := m.layout()
	return max(h, 1)
}

// clampList keeps the cursor on a row and the row on screen.
func (m *model) clampList() {
	n := m.listLen()
	m.cursor = min(max(m.cursor, 0), max(n-1, 0))
	m.offset = scrollOffset(m.offset, m.cursor, n, m.listHeight(), m.screen == screenRun)
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
