package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// logView is the full-screen log of one host: timestamps, wrap on/off,
// follow on/off, search with / and n. It owns its state and renders
// itself; the model routes keys to it while it is open.
type logView struct {
	host   string
	wrap   bool
	follow bool
	// top is the first visible display line when not following.
	top       int
	searching bool
	search    textinput.Model
	query     string
	// hit is the log line of the current match, -1 when none.
	hit int
	msg string
}

func newLogView(host string) *logView {
	in := textinput.New()
	in.Prompt = "search /"
	in.Placeholder = "text in the log"
	return &logView{host: host, wrap: true, follow: true, search: in, hit: -1}
}

// display is the host's log as display lines of width w, and for each log
// line the index of its first display line.
func (v *logView) display(lines []logLine, w int) ([]string, []int) {
	var out []string
	first := make([]int, len(lines))
	for i, l := range lines {
		first[i] = len(out)
		stamp := "--:--:--"
		if !l.t.IsZero() {
			stamp = l.t.Local().Format("15:04:05")
		}
		text := stamp + " " + l.text
		if !v.wrap {
			out = append(out, cell(text, w))
			continue
		}
		for j, wl := range strings.Split(ansi.Hardwrap(text, max(w-9, 10), true), "\n") {
			if j > 0 {
				wl = strings.Repeat(" ", 9) + wl
			}
			out = append(out, wl)
		}
	}
	return out, first
}

// maxTop is the last top that still fills the screen.
func maxTop(n, h int) int { return max(n-h, 0) }

// update handles a key; h is the height of the log area, lines the log.
func (v *logView) update(msg tea.KeyPressMsg, k keyMap, lines []logLine, w, h int) (closed bool, cmd tea.Cmd) {
	v.msg = ""
	if v.searching {
		switch {
		case key.Matches(msg, k.AcceptFilter):
			v.searching = false
			v.search.Blur()
			v.query = v.search.Value()
			v.hit = -1
			v.next(lines, w, h, 1)
		case key.Matches(msg, k.ClearFilter):
			v.searching = false
			v.search.Blur()
		default:
			v.search, cmd = v.search.Update(msg)
		}
		return false, cmd
	}
	disp, _ := v.display(lines, w)
	if v.follow {
		v.top = maxTop(len(disp), h)
	}
	switch {
	case key.Matches(msg, k.Back):
		return true, nil
	case key.Matches(msg, k.Up):
		v.follow, v.top = false, max(v.top-1, 0)
	case key.Matches(msg, k.Down):
		v.top = min(v.top+1, maxTop(len(disp), h))
	case key.Matches(msg, k.PageUp):
		v.follow, v.top = false, max(v.top-max(h-1, 1), 0)
	case key.Matches(msg, k.PageDown):
		v.top = min(v.top+max(h-1, 1), maxTop(len(disp), h))
	case key.Matches(msg, k.Follow):
		v.follow = !v.follow
	case key.Matches(msg, k.Wrap):
		v.wrap = !v.wrap
		if !v.follow {
			d, _ := v.display(lines, w)
			v.top = min(v.top, maxTop(len(d), h))
		}
	case key.Matches(msg, k.Search):
		v.searching = true
		v.search.SetValue("")
		v.search.SetWidth(max(w-12, 10))
		return false, v.search.Focus()
	case key.Matches(msg, k.NextMatch):
		v.next(lines, w, h, 1)
	case key.Matches(msg, k.PrevMatch):
		v.next(lines, w, h, -1)
	}
	return false, nil
}

// matches are the log lines that contain the query.
func (v *logView) matches(lines []logLine) []int {
	if v.query == "" {
		return nil
	}
	q := strings.ToLower(v.query)
	var out []int
	for i, l := range lines {
		if strings.Contains(strings.ToLower(l.text), q) {
			out = append(out, i)
		}
	}
	return out
}

// next moves to the next (dir 1) or previous (-1) match, wrapping around.
func (v *logView) next(lines []logLine, w, h, dir int) {
	ms := v.matches(lines)
	if len(ms) == 0 {
		if v.query != "" {
			v.msg = fmt.Sprintf("%q: not found", v.query)
		}
		v.hit = -1
		return
	}
	pick := -1
	if dir > 0 {
		pick = ms[0]
		for _, i := range ms {
			if i > v.hit {
				pick = i
				break
			}
		}
	} else {
		pick = ms[len(ms)-1]
		for j := len(ms) - 1; j >= 0; j-- {
			if ms[j] < v.hit || v.hit < 0 {
				pick = ms[j]
				break
			}
		}
	}
	v.hit = pick
	disp, first := v.display(lines, w)
	v.follow = false
	v.top = min(max(first[pick]-h/3, 0), maxTop(len(disp), h))
	n := 0
	for i, m := range ms {
		if m == pick {
			n = i + 1
		}
	}
	v.msg = fmt.Sprintf("match %d of %d for %q", n, len(ms), v.query)
}

// render is the log view: a title line, the log, and a status line.
func (v *logView) render(st styles, lines []logLine, state string, w, h int) string {
	bodyH := max(h-2, 1)
	disp, first := v.display(lines, w)
	top := v.top
	if v.follow {
		top = maxTop(len(disp), bodyH)
	}
	top = min(top, maxTop(len(disp), bodyH))
	mode := []string{}
	if v.follow {
		mode = append(mode, "follow on")
	} else {
		mode = append(mode, "follow off")
	}
	if v.wrap {
		mode = append(mode, "wrap on")
	} else {
		mode = append(mode, "wrap off")
	}
	pos := "no lines yet"
	if len(disp) > 0 {
		pos = fmt.Sprintf("lines %d–%d of %d", top+1, min(top+bodyH, len(disp)), len(disp))
	}
	title := spread(st.bold.Render("log: "+v.host)+" "+st.dim.Render(state), st.dim.Render(strings.Join(mode, " · ")+" · "+pos), w)
	hitFrom, hitTo := -1, -1
	if v.hit >= 0 && v.hit < len(first) {
		hitFrom = first[v.hit]
		hitTo = len(disp)
		if v.hit+1 < len(first) {
			hitTo = first[v.hit+1]
		}
	}
	var b strings.Builder
	b.WriteString(title)
	for i := top; i < min(top+bodyH, len(disp)); i++ {
		l := disp[i]
		if i >= hitFrom && i < hitTo {
			l = st.selected.Render(l)
		}
		b.WriteString("\n" + l)
	}
	if len(disp) == 0 {
		b.WriteString("\n" + st.dim.Render("  (no output yet)"))
	}
	for i := min(top+bodyH, len(disp)) - top; i < bodyH; i++ {
		if len(disp) == 0 && i == 0 {
			continue
		}
		b.WriteString("\n")
	}
	status := ""
	switch {
	case v.searching:
		status = v.search.View()
	case v.msg != "":
		status = st.notice.Render(v.msg)
	case v.query != "":
		status = st.dim.Render(fmt.Sprintf("search: %q (n next · N previous)", v.query))
	}
	b.WriteString("\n" + status)
	return b.String()
}
