package tui

import (
	"time"

	"charm.land/bubbles/v2/textinput"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// fleetPane is the fleet screen's part: the hosts as last observed, the
// balancer, the lock, and the versions to go to (or, in the downgrade
// picker, the ones the planner accepts). It renders itself
// (render_fleet.go).
type fleetPane struct {
	st     *styles
	filter *textinput.Model // the model's host filter

	hosts         []observe.Host
	lock          *rollout.LockInfo
	lockErr       error // why the lock could not be read (then it is unknown)
	servers       map[string][]lb.ServerState
	targets       []string
	targetCur     int
	loading       bool
	fleetErr      string
	downgradePick bool // the target list picks an emergency downgrade target
	// fleetStale: the fleet data is from before the last run; it stays
	// marked until a refresh asked for after the run answers.
	fleetStale bool
	refreshGen int // refreshes asked for
	freshGen   int // the first refresh whose answer is not stale
	// down is the downgrade picker's list, as the planner answered it.
	down downPick
	// the host table's cursor and scroll
	cursor, offset int
}

// apply takes a fresh look at the fleet.
func (f *fleetPane) apply(msg fleetMsg) {
	if msg.gen > 0 && msg.gen < f.refreshGen {
		return // a newer refresh is under way
	}
	f.loading = false
	if msg.gen >= f.freshGen {
		f.fleetStale = false
	}
	f.hosts, f.lock, f.lockErr, f.targets = msg.hosts, msg.lock, msg.lockErr, msg.targets
	f.servers = map[string][]lb.ServerState{}
	for _, s := range msg.servers {
		f.servers[s.Server] = append(f.servers[s.Server], s)
	}
	f.fleetErr = ""
	if msg.err != nil {
		f.fleetErr = msg.err.Error()
	}
	f.targetCur = min(f.targetCur, max(len(f.pickable())-1, 0))
}

// pickable are the versions the target list offers: in the downgrade
// picker only those the planner accepts.
func (f *fleetPane) pickable() []string {
	if f.downgradePick {
		return f.down.ok
	}
	return f.targets
}

// planPane is the plan preview's part: the plan and its scroll. It renders
// itself from plan.Outline (render_plan.go).
type planPane struct {
	st       *styles
	plan     *plan.Plan
	planTop  int // first visible line of the plan
	planning bool
	// lockReading: the preview asked for a fresh look at the lock (as it
	// opened, or on R); lockGen is that read's number.
	lockReading bool
	lockGen     int
}

// scroll moves the preview by d lines, never past its ends.
func (p *planPane) scroll(d, maxTop int) {
	p.planTop = min(max(p.planTop+d, 0), maxTop)
}

// runPane is the run's part, on the run and done screens: what the events
// said (runState), the controls of the run, the host list, the output
// pane's scroll, the log view and the timeline toggle.
type runPane struct {
	st     *styles
	filter *textinput.Model // the model's host filter
	clk    *ticks

	run    *runState
	handle Handle
	events <-chan event.Event

	resuming bool
	starting bool
	ticking  bool
	quitting bool // abort sent: quit once the run has finished
	// interrupted: Ctrl-C (or an interrupt signal) asked the run to stop
	// after the hosts in flight; forced: a second one forced its end.
	// Either way relctl quits once the run has finished, as the CLI does.
	interrupted bool
	forced      bool
	// stopHosts are the hosts in flight when the first interrupt came.
	stopHosts      []string
	downgradeAfter bool // open the emergency downgrade when the run ends
	// pausedForDialog: r paused the run so that the rollback confirmation
	// lists exactly the hosts that will go back; n resumes it.
	pausedForDialog bool
	traffic         *TrafficStats
	lastTraffic     time.Time
	outScroll       int // output pane: lines scrolled back from the bottom

	list         hostList
	logv         *logView
	showTimeline bool
	// gateLB is the balancer's view of the fleet when the canary gate
	// opened.
	gateLB *gateLBMsg

	// the last run's end, for Run's return
	outcome event.Outcome
	summary *event.Summary
}

// ticks is the model's idea of now (the latest event or tick) and the
// spinner's frame, shared with the parts that draw elapsed times.
type ticks struct {
	now   time.Time
	frame int
}
