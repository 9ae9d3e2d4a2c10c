package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	"github.com/charmbracelet/x/ansi"
)

// keyMap holds every binding. Bindings are enabled and disabled as the
// state changes (see model.syncKeys), so the help shows only what can be
// pressed now.
type keyMap struct {
	Quit key.Binding
	Help key.Binding

	Up       key.Binding
	Down     key.Binding
	PageUp   key.Binding
	PageDown key.Binding
	Filter   key.Binding
	Back     key.Binding

	// fleet
	PickTarget key.Binding
	Downgrade  key.Binding
	Refresh    key.Binding

	// plan preview
	StartPlan   key.Binding
	StartLocked key.Binding // shown instead of StartPlan while another run holds the lock

	// run
	Pause      key.Binding
	Resume     key.Binding
	Abort      key.Binding
	Rollback   key.Binding
	NoRollback key.Binding // shown instead of Rollback past the point of no return

	// dialogs
	Yes          key.Binding
	No           key.Binding
	Promote      key.Binding
	GateRollback key.Binding
	GateAbort    key.Binding
	GateStop     key.Binding
	ResumeRun    key.Binding
	RollbackRun  key.Binding
	SubmitReason key.Binding
	ToFleet      key.Binding
	AcceptFilter key.Binding
	ClearFilter  key.Binding

	// host list and log view (run and done screens)
	OpenLog      key.Binding
	Sort         key.Binding
	FollowFlight key.Binding
	Timeline     key.Binding
	Follow       key.Binding
	Wrap         key.Binding
	Search       key.Binding
	NextMatch    key.Binding
	PrevMatch    key.Binding
}

func newKeyMap() keyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return keyMap{
		Quit: b([]string{"q", "ctrl+c"}, "q", "quit"),
		Help: b([]string{"?"}, "?", "keys"),

		Up:       b([]string{"up", "k"}, "↑/k", "up"),
		Down:     b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:   b([]string{"pgup", "ctrl+u"}, "pgup", "scroll up"),
		PageDown: b([]string{"pgdown", "ctrl+d"}, "pgdn", "scroll down"),
		Filter:   b([]string{"/"}, "/", "filter hosts"),
		Back:     b([]string{"esc"}, "esc", "back"),

		PickTarget: b([]string{"enter"}, "enter", "plan"),
		Downgrade:  b([]string{"d"}, "d", "emergency downgrade"),
		Refresh:    b([]string{"R"}, "R", "refresh"),

		StartPlan:   b([]string{"enter"}, "enter", "start…"),
		StartLocked: b([]string{"enter"}, "enter", "start: off (fleet locked)"),

		Pause:      b([]string{"space"}, "space", "pause after hosts in flight"),
		Resume:     b([]string{"space"}, "space", "resume"),
		Abort:      b([]string{"a"}, "a", "abort…"),
		Rollback:   b([]string{"r"}, "r", "roll back…"),
		NoRollback: b([]string{"r"}, "r", "off (past post-migrate)"),

		Yes:          b([]string{"y", "enter"}, "y", "yes"),
		No:           b([]string{"n", "esc"}, "n/esc", "no"),
		Promote:      b([]string{"p"}, "p", "promote"),
		GateRollback: b([]string{"r"}, "r", "roll back"),
		GateAbort:    b([]string{"a"}, "a", "abort"),
		GateStop:     b([]string{"s"}, "s", "stop (resume later)"),
		ResumeRun:    b([]string{"c"}, "c", "continue the run"),
		RollbackRun:  b([]string{"r"}, "r", "roll it back"),
		SubmitReason: b([]string{"enter"}, "enter", "plan the downgrade"),
		ToFleet:      b([]string{"esc"}, "esc", "back to the fleet"),
		AcceptFilter: b([]string{"enter"}, "enter", "keep filter"),
		ClearFilter:  b([]string{"esc"}, "esc", "clear filter"),

		OpenLog:      b([]string{"enter", "l"}, "enter", "host log"),
		Sort:         b([]string{"s"}, "s", "sort by name"),
		FollowFlight: b([]string{"esc"}, "esc", "follow hosts in flight"),
		Timeline:     b([]string{"t"}, "t", "timeline"),
		Follow:       b([]string{"f"}, "f", "follow off"),
		Wrap:         b([]string{"w"}, "w", "wrap off"),
		Search:       b([]string{"/"}, "/", "search"),
		NextMatch:    b([]string{"n"}, "n", "next match"),
		PrevMatch:    b([]string{"N"}, "N", "previous match"),
	}
}

func (k *keyMap) all() []*key.Binding {
	return []*key.Binding{&k.Quit, &k.Help, &k.Up, &k.Down, &k.PageUp, &k.PageDown, &k.Filter, &k.Back,
		&k.PickTarget, &k.Downgrade, &k.Refresh, &k.StartPlan, &k.StartLocked,
		&k.Pause, &k.Resume, &k.Abort, &k.Rollback, &k.NoRollback,
		&k.Yes, &k.No, &k.Promote, &k.GateRollback, &k.GateAbort, &k.GateStop, &k.ResumeRun, &k.RollbackRun,
		&k.SubmitReason, &k.ToFleet, &k.AcceptFilter, &k.ClearFilter,
		&k.OpenLog, &k.Sort, &k.FollowFlight, &k.Timeline, &k.Follow, &k.Wrap, &k.Search, &k.NextMatch, &k.PrevMatch}
}

// only enables exactly the given bindings.
func (k *keyMap) only(on ...*key.Binding) {
	for _, b := range k.all() {
		b.SetEnabled(false)
	}
	for _, b := range on {
		b.SetEnabled(true)
	}
}

// ShortHelp implements help.KeyMap: the most useful keys first; disabled
// ones are left out by the help bubble.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{
		k.Yes, k.No, k.Promote, k.GateRollback, k.GateAbort, k.GateStop, k.ResumeRun, k.RollbackRun,
		k.SubmitReason, k.AcceptFilter, k.ClearFilter,
		k.PickTarget, k.StartPlan, k.StartLocked, k.Rollback, k.NoRollback, k.Downgrade, k.Pause, k.Resume, k.Abort,
		k.OpenLog, k.ToFleet, k.Timeline, k.Search, k.NextMatch, k.Follow, k.Wrap,
		k.Refresh, k.Filter, k.Sort, k.FollowFlight, k.Back, k.Up, k.Down, k.PageUp, k.PageDown, k.PrevMatch, k.Help, k.Quit,
	}
}

// FullHelp implements help.KeyMap.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Yes, k.No, k.Promote, k.GateRollback, k.GateAbort, k.GateStop, k.ResumeRun, k.RollbackRun, k.SubmitReason},
		{k.PickTarget, k.StartPlan, k.StartLocked, k.ToFleet, k.Rollback, k.NoRollback, k.Pause, k.Resume, k.Abort, k.Downgrade, k.Refresh},
		{k.OpenLog, k.Timeline, k.Sort, k.FollowFlight, k.Follow, k.Wrap, k.Search, k.NextMatch, k.PrevMatch},
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Filter, k.AcceptFilter, k.ClearFilter, k.Back, k.Help, k.Quit},
	}
}

// shortHelp is the one-line help for width w: the enabled keys in
// ShortHelp's order, cut to fit, with ? and q always kept at the end
// (when they are enabled, which they are outside text inputs).
func (k keyMap) shortHelp(st styles, w int, typing bool) string {
	render := func(b key.Binding) string {
		h := b.Help()
		return st.help.ShortKey.Render(h.Key) + " " + st.help.ShortDesc.Render(h.Desc)
	}
	sep := st.help.ShortSeparator.Render(" · ")
	var tail []string
	for _, b := range []key.Binding{k.Help, k.Quit} {
		if b.Enabled() {
			tail = append(tail, render(b))
		}
	}
	if typing {
		// q and ? type into the input: ctrl+c still quits.
		tail = append(tail, st.help.ShortKey.Render("ctrl+c")+" "+st.help.ShortDesc.Render("quit"))
	}
	tailS := strings.Join(tail, sep)
	used := ansi.StringWidth(tailS)
	var parts []string
	for _, b := range k.ShortHelp() {
		if !b.Enabled() || b.Help().Key == k.Help.Help().Key && b.Help().Desc == k.Help.Help().Desc || b.Help().Key == k.Quit.Help().Key && b.Help().Desc == k.Quit.Help().Desc {
			continue
		}
		r := render(b)
		need := ansi.StringWidth(r) + 3
		if used+need > w {
			continue // a shorter one may still fit
		}
		parts = append(parts, r)
		used += need
	}
	if tailS != "" {
		parts = append(parts, tailS)
	}
	return strings.Join(parts, sep)
}
