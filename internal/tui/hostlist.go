package tui

import (
	"sort"
	"strings"
	"unicode"

	"github.com/relctl/relctl/internal/event"
)

// hostList is the run's host list (run and done screens): its order, the
// selected host and the scroll. It owns that state; the model hands it the
// run and the filter.
type hostList struct {
	// byName sorts by host name; otherwise failed hosts come first, then
	// the hosts in flight, then the rest in plan order.
	byName bool
	// sel is the selected host; "" follows the hosts in flight.
	sel    string
	offset int

	// the last order, for the same run, events, filter and sort
	cache struct {
		run    *runState
		rev    int
		filter string
		byName bool
		order  []int
	}
}

// rank orders the rows when not sorted by name.
func rank(h *hostRow, finished bool) int {
	switch {
	case h.state == event.HostFailed || h.state == event.HostLeftDrained:
		return 0
	case h.active() && !finished:
		return 1
	}
	return 2
}

// order is the rows the filter keeps, in display order.
func (l *hostList) order(r *runState, filter string) []int {
	c := &l.cache
	if c.run == r && c.rev == r.rev && c.filter == filter && c.byName == l.byName && c.order != nil && len(r.rows) > 0 {
		return c.order
	}
	out := l.sorted(r, filter)
	c.run, c.rev, c.filter, c.byName, c.order = r, r.rev, filter, l.byName, out
	return out
}

func (l *hostList) sorted(r *runState, filter string) []int {
	f := strings.ToLower(strings.TrimSpace(filter))
	out := make([]int, 0, len(r.rows))
	for i, h := range r.rows {
		if f == "" || strings.Contains(strings.ToLower(h.name), f) || strings.Contains(h.label(), f) || strings.Contains(h.version, f) {
			out = append(out, i)
		}
	}
	if l.byName {
		sort.SliceStable(out, func(a, b int) bool { return natLess(r.rows[out[a]].name, r.rows[out[b]].name) })
		return out
	}
	sort.SliceStable(out, func(a, b int) bool { return rank(r.rows[out[a]], r.finished) < rank(r.rows[out[b]], r.finished) })
	return out
}

// cursor is the position of the selected host in order: when following,
// the first host in flight (or the first row).
func (l *hostList) cursor(r *runState, order []int) int {
	if l.sel != "" {
		for i, ri := range order {
			if r.rows[ri].name == l.sel {
				return i
			}
		}
	}
	for i, ri := range order {
		if r.rows[ri].active() && !r.finished {
			return i
		}
	}
	return 0
}

// move selects the row d rows away from the cursor.
func (l *hostList) move(r *runState, order []int, d int) {
	if len(order) == 0 {
		return
	}
	i := min(max(l.cursor(r, order)+d, 0), len(order)-1)
	l.sel = r.rows[order[i]].name
}

// selected is the host under the cursor, or nil.
func (l *hostList) selected(r *runState, order []int) *hostRow {
	if r == nil || len(order) == 0 {
		return nil
	}
	return r.rows[order[min(l.cursor(r, order), len(order)-1)]]
}

// natLess orders "web2" before "web10".
func natLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da != "" && db != "" {
			na, nb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitsPrefix(s string) string {
	i := 0
	for i < len(s) && unicode.IsDigit(rune(s[i])) {
		i++
	}
	return s[:i]
}

// stateCounts is "in flight 2 · in service 10 · failed 1 · waiting 47".
func stateCounts(r *runState) (flight, service, failed, waiting, back, drained int) {
	for _, h := range r.rows {
		switch {
		case h.state == event.HostLeftDrained:
			drained++
		case h.state == event.HostFailed:
			failed++
		case h.active() && !r.finished:
			flight++
		case h.state == event.HostInService:
			service++
		case h.state == event.HostRolledBack:
			back++
		default:
			waiting++
		}
	}
	return
}
