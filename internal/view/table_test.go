package view_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/view"
)

// history is the shape of relctl history: the free text (the reason) last.
var history = view.Table{
	Header: []string{"TIME", "HOST", "RUN", "WHAT", "RESULT", "REASON"},
	Rows: [][]string{
		{"2026-11-29T15:00:00Z", "web1", "20261129T150000Z-ab12", "downgrade 2.0.0 → 1.4.0", "succeeded", "checkout returns 500 for every EU card since 2.0.0; rolling back until the payment fix ships"},
		{"2026-11-29T14:00:00Z", "web10", "20261129T140000Z-cd34", "upgrade 1.4.0 → 2.0.0", "succeeded", ""},
		{"2026-11-29T13:00:00Z", "web2", "-", "lock break", "ok", "lease of alice@ops1 expired\n(run killed)\tby OOM"},
	},
}

// readPipe writes t through a real pipe, as `relctl history | ...` does, and
// returns what the reading end got.
func readPipe(t *testing.T, tb view.Table) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	if err := tb.Write(w, false); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out := <-got
	r.Close()
	return string(out)
}

func TestTablePiped(t *testing.T) {
	out := readPipe(t, history)
	want := "TIME\tHOST\tRUN\tWHAT\tRESULT\tREASON\n" +
		"2026-11-29T15:00:00Z\tweb1\t20261129T150000Z-ab12\tdowngrade 2.0.0 → 1.4.0\tsucceeded\tcheckout returns 500 for every EU card since 2.0.0; rolling back until the payment fix ships\n" +
		"2026-11-29T14:00:00Z\tweb10\t20261129T140000Z-cd34\tupgrade 1.4.0 → 2.0.0\tsucceeded\t-\n" +
		"2026-11-29T13:00:00Z\tweb2\t-\tlock break\tok\tlease of alice@ops1 expired (run killed) by OOM\n"
	if out != want {
		t.Fatalf("piped:\n%q\nwant:\n%q", out, want)
	}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if f := strings.Split(line, "\t"); len(f) != len(history.Header) {
			t.Errorf("line %d has %d fields, want %d: %q", i, len(f), len(history.Header), line)
		}
	}
}

// TestTablePipedThroughTools runs the piped form through the tools a
// newcomer reaches for.
func TestTablePipedThroughTools(t *testing.T) {
	out := readPipe(t, history)
	run := func(name string, args ...string) string {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s not installed", name)
		}
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(out)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", name, err, b)
		}
		return string(b)
	}
	if got := run("cut", "-f2"); got != "HOST\nweb1\nweb10\nweb2\n" {
		t.Errorf("cut -f2 = %q", got)
	}
	if got := run("awk", "-F\t", "NR > 1 { print $5 \"/\" $6 }"); !strings.HasPrefix(got, "succeeded/checkout returns 500") || !strings.Contains(got, "succeeded/-\nok/lease of") {
		t.Errorf("awk = %q", got)
	}
}

func TestTableTerminal(t *testing.T) {
	var b bytes.Buffer
	tb := view.Table{
		Header: []string{"HOST", "VERSION", "HEALTH", "BALANCER", "RELEASES"},
		Rows: [][]string{
			{"web1", "1.0.0", "ok", "UP", "1.0.0"},
			{"web10", "1.0.0-rc.10", "", "DRAIN (3 sess)", "1.0.0 1.0.0-rc.10"},
		},
	}
	if err := tb.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"HOST   VERSION      HEALTH  BALANCER        RELEASES\n" +
		"web1   1.0.0        ok      UP              1.0.0\n" +
		"web10  1.0.0-rc.10  -       DRAIN (3 sess)  1.0.0 1.0.0-rc.10\n"
	if b.String() != want {
		t.Fatalf("terminal:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestTableTerminalWrapsLastColumn: on a 100-column terminal the REASON
// wraps under itself, no line is wider than the terminal, and no word is lost.
func TestTableTerminalWrapsLastColumn(t *testing.T) {
	tb := history
	tb.Width = 100
	var b bytes.Buffer
	if err := tb.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	// 88 cells before REASON leave 12 of 100: the reason gets its minimum, 20.
	want := "" +
		"TIME                  HOST   RUN                    WHAT                     RESULT     REASON\n" +
		"2026-11-29T15:00:00Z  web1   20261129T150000Z-ab12  downgrade 2.0.0 → 1.4.0  succeeded  checkout returns 500\n" +
		"                                                                                        for every EU card\n" +
		"                                                                                        since 2.0.0; rolling\n" +
		"                                                                                        back until the\n" +
		"                                                                                        payment fix ships\n" +
		"2026-11-29T14:00:00Z  web10  20261129T140000Z-cd34  upgrade 1.4.0 → 2.0.0    succeeded  -\n" +
		"2026-11-29T13:00:00Z  web2   -                      lock break               ok         lease of alice@ops1\n" +
		"                                                                                        expired (run killed)\n" +
		"                                                                                        by OOM\n"
	if b.String() != want {
		t.Fatalf("terminal:\n%s\nwant:\n%s", b.String(), want)
	}
	// A wide terminal leaves the reason on one line.
	tb.Width = 200
	b.Reset()
	if err := tb.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 4 {
		t.Errorf("at 200 columns the table has %d lines, want 4:\n%s", n, b.String())
	}
}

func TestTableTerminalWidth(t *testing.T) {
	for _, width := range []int{60, 100, 120, 200} {
		tb := history
		tb.Width = width
		var b bytes.Buffer
		if err := tb.Write(&b, true); err != nil {
			t.Fatal(err)
		}
		var words []string
		indent := strings.Index(strings.Split(b.String(), "\n")[0], "REASON")
		for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			if w := len([]rune(line)); w > max(width, indent+20) {
				t.Errorf("width %d: line is %d wide: %q", width, w, line)
			}
			if strings.HasSuffix(line, " ") {
				t.Errorf("width %d: trailing space: %q", width, line)
			}
			if len([]rune(line)) > indent {
				words = append(words, strings.Fields(string([]rune(line)[indent:]))...)
			}
		}
		if got := strings.Join(words, " "); !strings.Contains(got, "checkout returns 500 for every EU card since 2.0.0; rolling back until the payment fix ships") {
			t.Errorf("width %d: the reason lost words: %q", width, got)
		}
	}
}

func TestTableFieldsCannotBreakOut(t *testing.T) {
	tb := view.Table{Header: []string{"HOST", "REASON"}, Rows: [][]string{{"web1", "fine\x1b]52;c;ZXZpbA==\x07\x1b[2J then\r\nmore"}, {"web2"}}}
	for _, tty := range []bool{true, false} {
		var b bytes.Buffer
		if err := tb.Write(&b, tty); err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(b.String(), "\x1b\x07\r") || strings.Count(b.String(), "\n") != 3 {
			t.Errorf("tty=%v: a field broke the table: %q", tty, b.String())
		}
		if !strings.Contains(b.String(), "web2") || !strings.HasSuffix(b.String(), "-\n") {
			t.Errorf("tty=%v: short row not padded: %q", tty, b.String())
		}
	}
	if err := (view.Table{Header: []string{"A"}, Rows: [][]string{{"x", "y"}}}).Write(io.Discard, false); err == nil {
		t.Error("a row longer than the header was written")
	}
	if err := (view.Table{}).Write(io.Discard, true); err == nil {
		t.Error("a table without a header was written")
	}
}
