package shell

import (
	"os/exec"
	"testing"
)

func TestQuoteRoundTripThroughSh(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh on PATH")
	}
	cases := []string{
		"",
		"plain",
		"with space",
		"it's",
		"''",
		"'",
		`\'`,
		"$(touch /tmp/relctl-quote-pwned)",
		"`id`",
		"$HOME ${HOME} $1 $@ $*",
		"line1\nline2\n",
		"\ttab",
		"semi;colon && or || pipe | amp &",
		"glob * ? [a-z]",
		`back\slash "double" quotes`,
		"-n",
		"~user",
		"#comment",
		"unicode: héllo ✓",
		"a=b",
		"!bang",
	}
	for _, in := range cases {
		q := Quote(in)
		// printf %s does not interpret escapes in its argument.
		out, err := exec.Command("sh", "-c", "printf '%s' "+q).Output()
		if err != nil {
			t.Fatalf("sh -c with %q (quoted %s): %v", in, q, err)
		}
		if string(out) != in {
			t.Errorf("round trip of %q: quoted %s, got %q", in, q, out)
		}
	}
}

func TestQuoteForms(t *testing.T) {
	for in, want := range map[string]string{
		"":          "''",
		"abc":       "abc",
		"/srv/shop": "/srv/shop",
		"1.4.0":     "1.4.0",
		"a b":       "'a b'",
		"it's":      `'it'\''s'`,
		"$(x)":      "'$(x)'",
		"a\nb":      "'a\nb'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}
