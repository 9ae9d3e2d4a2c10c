package tui

import (
	"charm.land/bubbles/v2/key"
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
	StartPlan key.Binding

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
}

func newKeyMap() keyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return keyMap{
		Quit: b([]string{"q", "ctrl+c"}, "q", "quit"),
		Help: b([]string{"?"}, "?", "more keys"),

		Up:       b([]string{"up", "k"}, "↑/k", "up"),
		Down:     b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:   b([]string{"pgup", "ctrl+u"}, "pgup", "scroll up"),
		PageDown: b([]string{"pgdown", "ctrl+d"}, "pgdn", "scroll down"),
		Filter:   b([]string{"/"}, "/", "filter hosts"),
		Back:     b([]string{"esc"}, "esc", "back"),

		PickTarget: b([]string{"enter"}, "enter", "plan"),
		Downgrade:  b([]string{"d"}, "d", "emergency downgrade"),
		Refresh:    b([]string{"R"}, "R", "refresh"),

		StartPlan: b([]string{"enter"}, "enter", "start…"),

		Pause:      b([]string{"space"}, "space", "pause after hosts in flight"),
		Resume:     b([]string{"space"}, "space", "resume"),
		Abort:      b([]string{"a"}, "a", "abort…"),
		Rollback:   b([]string{"r"}, "r", "roll back…"),
		NoRollback: b([]string{"r"}, "r", "off — past post-migrate: use an emergency downgrade (d)"),

		Yes:          b([]string{"y", "enter"}, "y", "yes"),
		No:           b([]string{"n", "esc"}, "n/esc", "no"),
		Promote:      b([]string{"p"}, "p", "promote"),
		GateRollback: b([]string{"r"}, "r", "roll back"),
		GateAbort:    b([]string{"a"}, "a", "abort"),
		GateStop:     b([]string{"s"}, "s", "stop (resume later)"),
		ResumeRun:    b([]string{"c"}, "c", "continue the run"),
		RollbackRun:  b([]string{"r"}, "r", "roll it back"),
		SubmitReason: b([]string{"enter"}, "enter", "plan the downgrade"),
		ToFleet:      b([]string{"enter"}, "enter", "back to the fleet"),
		AcceptFilter: b([]string{"enter"}, "enter", "keep filter"),
		ClearFilter:  b([]string{"esc"}, "esc", "clear filter"),
	}
}

func (k *keyMap) all() []*key.Binding {
	return []*key.Binding{&k.Quit, &k.Help, &k.Up, &k.Down, &k.PageUp, &k.PageDown, &k.Filter, &k.Back,
		&k.PickTarget, &k.Downgrade, &k.Refresh, &k.StartPlan,
		&k.Pause, &k.Resume, &k.Abort, &k.Rollback, &k.NoRollback,
		&k.Yes, &k.No, &k.Promote, &k.GateRollback, &k.GateAbort, &k.GateStop, &k.ResumeRun, &k.RollbackRun,
		&k.SubmitReason, &k.ToFleet, &k.AcceptFilter, &k.ClearFilter}
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
		k.PickTarget, k.StartPlan, k.ToFleet, k.Rollback, k.NoRollback, k.Downgrade, k.Pause, k.Resume, k.Abort,
		k.Refresh, k.Filter, k.Back, k.Help, k.Quit, k.Up, k.Down,
	}
}

// FullHelp implements help.KeyMap.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Yes, k.No, k.Promote, k.GateRollback, k.GateAbort, k.GateStop, k.ResumeRun, k.RollbackRun, k.SubmitReason},
		{k.PickTarget, k.StartPlan, k.ToFleet, k.Rollback, k.NoRollback, k.Pause, k.Resume, k.Abort, k.Downgrade, k.Refresh},
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Filter, k.AcceptFilter, k.ClearFilter, k.Back, k.Help, k.Quit},
	}
}
