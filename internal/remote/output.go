package remote

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultMaxOutput is the per-command cap on output handed to the
// Stdout/Stderr callbacks when Command.MaxOutput is 0.
const DefaultMaxOutput = 1 << 20

// Sanitize returns line with everything a terminal would interpret
// removed: ANSI escape sequences (CSI, OSC, DCS, SOS, PM, APC and the short
// ESC forms), their 8-bit C1 forms, every other C0 and C1 control except
// tab, DEL, and the bidirectional embedding/override/isolate marks that
// reorder what an operator reads. Invalid UTF-8 becomes U+FFFD; valid
// text, tabs included, is kept as it is.
func Sanitize(line string) string {
	clean := true
	for i := 0; i < len(line); i++ {
		if b := line[i]; b < 0x20 && b != '\t' || b >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return line // plain ASCII: the common case, no allocation
	}
	var b strings.Builder
	b.Grow(len(line))
	for i := 0; i < len(line); {
		r, n := utf8.DecodeRuneInString(line[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteRune(utf8.RuneError)
			i += n
		case r == 0x1b:
			i = skipEscape(line, i+1)
		case r == 0x9b: // C1 CSI
			i = skipCSI(line, i+n)
		case r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f: // C1 OSC, DCS, SOS, PM, APC
			i = skipString(line, i+n)
		case r == '\t':
			b.WriteByte('\t')
			i += n
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
			i += n
		case r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069:
			i += n
		default:
			b.WriteString(line[i : i+n])
			i += n
		}
	}
	return b.String()
}

// skipEscape skips what follows an ESC at s[i:] and returns the index
// after the sequence.
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch c := s[i]; {
	case c == '[':
		return skipCSI(s, i+1)
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		return skipString(s, i+1)
	case c >= 0x20 && c <= 0x2f: // intermediates, then one final byte (ESC ( B)
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	case c >= 0x30 && c <= 0x7e: // two-byte forms: ESC c, ESC 7, ESC =, ...
		return i + 1
	default: // a lone ESC before something else: drop the ESC only
		return i
	}
}

// skipCSI skips a control sequence's parameter and intermediate bytes and
// its final byte.
func skipCSI(s string, i int) int {
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipString skips an OSC/DCS/SOS/PM/APC body up to and including its
// terminator (BEL, ESC \ or C1 ST), or to the end of the line.
func skipString(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == 0x07:
			return i + 1
		case s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\':
			return i + 2
		case s[i] == 0xc2 && i+1 < len(s) && s[i+1] == 0x9c: // U+009C ST
			return i + 2
		}
		i++
	}
	return i
}

// output is what Run does with a command's lines: sanitize them, keep the
// stderr tail for errors, and hand them to the callbacks until the
// command's output cap is reached, one call at a time and never after Run
// returns. Lines past the cap are dropped and counted; finish reports the
// count as one last line per stream that lost lines.
type output struct {
	stdout, stderr func(string)
	max            int // bytes; < 0: no cap

	mu     sync.Mutex
	closed bool
	used   int
	cutOut int // bytes dropped from stdout
	cutErr int
	tail   tailBuffer
}

func newOutput(cmd Command) *output {
	max := cmd.MaxOutput
	if max == 0 {
		max = DefaultMaxOutput
	}
	return &output{stdout: cmd.Stdout, stderr: cmd.Stderr, max: max, tail: tailBuffer{max: stderrTailBytes}}
}

func (o *output) line(stderr bool, raw string) {
	line := Sanitize(raw)
	o.mu.Lock()
	defer o.mu.Unlock()
	if stderr {
		o.tail.add(line)
	}
	if o.closed {
		return
	}
	size := len(line) + 1
	if o.max >= 0 && o.used+size > o.max {
		if stderr {
			o.cutErr += size
		} else {
			o.cutOut += size
		}
		o.used = o.max + 1 // once cut, every later line is cut too (no holes)
		return
	}
	o.used += size
	if f := o.callback(stderr); f != nil {
		f(line)
	}
}

func (o *output) callback(stderr bool) func(string) {
	if stderr {
		return o.stderr
	}
	return o.stdout
}

// finish reports what the cap cut and stops every later callback.
func (o *output) finish() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.closed = true
	if o.cutOut > 0 && o.stdout != nil {
		o.stdout(cutNote(o.cutOut))
	}
	if o.cutErr > 0 && o.stderr != nil {
		o.stderr(cutNote(o.cutErr))
	}
}

func cutNote(n int) string { return fmt.Sprintf("… %d bytes of output cut", n) }

func (o *output) stderrTail() string { return o.tail.String() }

// tailBuffer keeps the last max bytes of stderr, whole lines where
// possible. Its owner serialises access.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) add(line string) {
	t.buf = append(t.buf, line...)
	t.buf = append(t.buf, '\n')
	if over := len(t.buf) - t.max; over > 0 {
		cut := over
		if i := strings.IndexByte(string(t.buf[over:]), '\n'); i >= 0 && i+1 < len(t.buf)-over {
			cut = over + i + 1
		}
		t.buf = append(t.buf[:0], t.buf[cut:]...)
	}
}

func (t *tailBuffer) String() string { return strings.TrimRight(string(t.buf), "\n") }
