package view

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/charmbracelet/x/ansi"
)

// Table is records under a header: relctl status, history and the like.
// Write renders it for a person on a terminal or for a program on a pipe.
type Table struct {
	Header []string
	Rows   [][]string
	// Width is the terminal's width in cells. On a terminal the last
	// column (put the free text there: a reason, an error) wraps to fit;
	// 0 means no wrapping.
	Width int
}

// sep is the gap between columns on a terminal.
const sep = "  "

// minWrap is the narrowest the last column is wrapped to, however narrow the
// terminal: below it a reason is unreadable either way.
const minWrap = 20

// Write renders t to w.
//
// On a terminal (tty) the columns are aligned, two spaces apart, and the
// last column wraps to Width with its continuation lines indented under it.
// Otherwise (a pipe, a file) it writes the header line, then one line per
// record, fields separated by a single tab and nothing else, for cut, awk
// -F'\t', sort -t$'\t' or column -t -s$'\t'.
//
// In both forms an empty field is written "-" (so that whitespace-splitting
// tools keep the columns), and a field never breaks the layout or the
// terminal: tabs and line breaks in it become spaces, other control
// characters (escape sequences a host's audit record could carry) become '?'.
// A row longer than the header is an error; a shorter one is padded with "-".
func (t Table) Write(w io.Writer, tty bool) error {
	n := len(t.Header)
	if n == 0 {
		return fmt.Errorf("table has no header")
	}
	rows := make([][]string, 0, len(t.Rows)+1)
	rows = append(rows, cleanRow(t.Header, n))
	for i, r := range t.Rows {
		if len(r) > n {
			return fmt.Errorf("table row %d has %d fields, the header %d", i, len(r), n)
		}
		rows = append(rows, cleanRow(r, n))
	}
	bw := bufio.NewWriter(w)
	if !tty {
		for _, r := range rows {
			bw.WriteString(strings.Join(r, "\t"))
			bw.WriteByte('\n')
		}
		return bw.Flush()
	}
	widths := make([]int, n)
	for _, r := range rows {
		for j, c := range r {
			widths[j] = max(widths[j], ansi.StringWidth(c))
		}
	}
	indent := 0
	for j := range n - 1 {
		indent += widths[j] + len(sep)
	}
	wrap := 0
	if t.Width > 0 && n > 0 && indent+widths[n-1] > t.Width {
		wrap = max(t.Width-indent, minWrap)
	}
	for _, r := range rows {
		for j, c := range r[:n-1] {
			bw.WriteString(c)
			bw.WriteString(strings.Repeat(" ", widths[j]-ansi.StringWidth(c)))
			bw.WriteString(sep)
		}
		last := r[n-1]
		if wrap > 0 {
			lines := strings.Split(ansi.Wrap(last, wrap, ""), "\n")
			for k, l := range lines {
				if k > 0 {
					bw.WriteByte('\n')
					bw.WriteString(strings.Repeat(" ", indent))
				}
				bw.WriteString(strings.TrimRight(l, " "))
			}
		} else {
			bw.WriteString(last)
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// cleanRow returns r as n printable fields.
func cleanRow(r []string, n int) []string {
	out := make([]string, n)
	for j := range n {
		c := ""
		if j < len(r) {
			c = clean(r[j])
		}
		if c == "" {
			c = "-"
		}
		out[j] = c
	}
	return out
}

// clean makes a field safe for one line of a table.
func clean(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return strings.TrimSpace(s)
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return '?'
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
