package remote

import (
	"strings"
	"sync"
	"testing"
)

func TestSanitize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"tab\tkept", "tab\tkept"},
		{"héllo wörld ✓ 日本", "héllo wörld ✓ 日本"},
		{"\x1b[31mred\x1b[0m", "red"},
		{"\x1b[1;32;40mbold\x1b[m", "bold"},
		{"\x1b[2J\x1b[Hcleared", "cleared"},                     // clear screen, home
		{"\x1b[?1049hall\x1b[?25l", "all"},                      // alt screen, hide cursor
		{"\x1b]0;pwned title\x07after", "after"},                // OSC title, BEL
		{"\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"}, // OSC 8 hyperlink, ST
		{"\x1b]52;c;ZWNobyBwd25lZA==\x07x", "x"},                // OSC 52 clipboard write
		{"\x1bPq#0;2;0;0;0\x1b\\dcs", "dcs"},                    // DCS (sixel)
		{"\x1b_apc\x1b\\ok", "ok"},                              // APC
		{"\x1b(Bcharset", "charset"},                            // ESC ( B
		{"\x1bcreset", "reset"},                                 // RIS
		{"\x1b7save\x1b8", "save"},                              // DECSC/DECRC
		{"\u009b31mc1 csi", "c1 csi"},                           // 8-bit CSI
		{"\u009d0;t\u009cc1 osc", "c1 osc"},                     // 8-bit OSC … ST
		{"bell\x07 bs\x08 cr\r nul\x00 del\x7f", "bell bs cr nul del"},
		{"\u202eevil\u202c", "evil"}, // bidi override
		{"bad \xff\xfe utf8", "bad \ufffd\ufffd utf8"},
		{"unterminated \x1b]0;title", "unterminated "},
		{"lone esc at end\x1b", "lone esc at end"},
		{"\x1b[31", ""}, // cut CSI
	}
	for _, c := range cases {
		if got := Sanitize(c.in); got != c.want {
			t.Errorf("Sanitize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzSanitize(f *testing.F) {
	f.Add("\x1b[31mred\x1b]0;x\x07\u009b1m\u202e")
	f.Fuzz(func(t *testing.T, s string) {
		out := Sanitize(s)
		for _, r := range out {
			if r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
				t.Fatalf("Sanitize(%q) = %q keeps control %U", s, out, r)
			}
		}
		if !strings.ContainsRune(s, 0x1b) && !strings.ContainsAny(s, "\u009b\u009d\u0090\u0098\u009e\u009f") && len(out) > len(s)*3 {
			t.Fatalf("output grew: %q → %q", s, out)
		}
	})
}

func TestRunOutputHostile(t *testing.T) { bothModes(t, testRunOutputHostile) }

func testRunOutputHostile(t *testing.T, plain bool) {
	t.Parallel()
	c := newModeFixture(t, nil, plain).client()
	var mu sync.Mutex
	var out, errs []string
	// Escape sequences on both streams, and in the stderr tail of the error.
	script := `printf '\033[2J\033]0;owned\007ok \033[31mred\033[0m\n'; printf 'x\033]52;c;cGF5bG9hZA==\007\tdone\r\n'; ` +
		`printf '\033[1mfailed\033[0m \033]8;;http://evil\033\\click\033]8;;\033\\\n' >&2; exit 2`
	_, err := c.Run(testCtx(t), Command{
		Script: script,
		Stdout: func(l string) { mu.Lock(); out = append(out, l); mu.Unlock() },
		Stderr: func(l string) { mu.Lock(); errs = append(errs, l); mu.Unlock() },
	})
	ee, ok := err.(*ExitError)
	if !ok || ee.Code != 2 {
		t.Fatalf("want exit 2, got %v", err)
	}
	if strings.Join(out, "|") != "ok red|x\tdone" || strings.Join(errs, "|") != "failed click" {
		t.Fatalf("stdout %q stderr %q", out, errs)
	}
	if ee.StderrTail != "failed click" || err.Error() != "web1: exit status 2: failed click" {
		t.Fatalf("error %q tail %q", err, ee.StderrTail)
	}
}

func TestRunOutputCapped(t *testing.T) { bothModes(t, testRunOutputCapped) }

func testRunOutputCapped(t *testing.T, plain bool) {
	t.Parallel()
	c := newModeFixture(t, nil, plain).client()
	// 100,000 lines of 100 bytes on stdout (10 MB) and an error line at the
	// end on stderr: the callbacks see 64 KiB, then one note; the error
	// still carries the last stderr line.
	script := `awk 'BEGIN { s = sprintf("%099d", 0); for (i = 0; i < 100000; i++) print s }'; echo "the end" >&2; exit 1`
	var mu sync.Mutex
	var lines []string
	var bytes int
	var errs []string
	_, err := c.Run(testCtx(t), Command{
		Script:    script,
		MaxOutput: 64 << 10,
		Stdout:    func(l string) { mu.Lock(); lines = append(lines, l); bytes += len(l) + 1; mu.Unlock() },
		Stderr:    func(l string) { mu.Lock(); errs = append(errs, l); mu.Unlock() },
	})
	ee, ok := err.(*ExitError)
	if !ok || ee.StderrTail != "the end" {
		t.Fatalf("want exit 1 with stderr tail, got %v", err)
	}
	if len(lines) < 2 {
		t.Fatalf("%d lines", len(lines))
	}
	kept := len(lines) - 1
	if kept != (64<<10)/100 {
		t.Fatalf("kept %d lines, want %d", kept, (64<<10)/100)
	}
	wantCut := 100000*100 - kept*100
	if got := lines[kept]; got != cutNote(wantCut) {
		t.Fatalf("last line %q, want %q", got, cutNote(wantCut))
	}
	// The stderr line came after the cap: cut too, with its own note.
	if len(errs) != 1 || errs[0] != cutNote(len("the end")+1) {
		t.Fatalf("stderr %q", errs)
	}

	// No cap.
	n := 0
	if _, err := c.Run(testCtx(t), Command{Script: `awk 'BEGIN { for (i = 0; i < 30000; i++) printf "%0100d\n", i }'`, MaxOutput: -1,
		Stdout: func(string) { n++ }}); err != nil || n != 30000 {
		t.Fatalf("uncapped: %d lines, %v", n, err)
	}
}
