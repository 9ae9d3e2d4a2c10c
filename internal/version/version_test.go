package version

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	good := []string{
		"0.0.0", "1.0.0", "1.2.3", "10.20.30",
		"2.0.0-rc.1", "1.0.0-alpha", "1.0.0-alpha.beta.1", "1.0.0-0.3.7", "1.0.0-x-y-z.--",
		"1.0.0+build.7", "1.0.0-rc.1+20260101.sha.5114f85", "1.0.0+0001",
		"999999999.0.0",
	}
	for _, s := range good {
		if err := Valid(s); err != nil {
			t.Errorf("Valid(%q) = %v, want nil", s, err)
		}
	}
}

func TestValidRejects(t *testing.T) {
	cases := []struct {
		in   string
		hint string // a part of the message that says how to fix it
	}{
		{"latest", ""},
		{"banana", ""},
		{"abc", ""},
		{"v1.2.0", `drop the leading "v": 1.2.0`},
		{"V1.2.0-rc.1", `drop the leading "V": 1.2.0-rc.1`},
		{"1.2", "give all three numbers: 1.2.0"},
		{"1", "give all three numbers: 1.0.0"},
		{"1.2-rc.1", "give all three numbers: 1.2.0-rc.1"},
		{"1.0", "give all three numbers: 1.0.0"},
		{"1.2.3.4", ""},
		{"01.2.0", "leading zero"},
		{"1.02.0", "leading zero"},
		{"1.0.0-rc.01", "pre-release"},
		{"1.0.0-", "pre-release"},
		{"1.0.0-rc..1", "pre-release"},
		{"1.0.0+", "build"},
		{"1.0.0+a..b", "build"},
		{"1.0.0_1", ""},
		{"2024.05.01+build7", "leading zero"},
		{"", "it is empty"},
		{"1.0 ", "may hold only"},
		{" 1.0.0", "may hold only"},
		{"1.0.0;rm -rf /", "may hold only"},
		{"1.4.0;rm -rf /", "may hold only"},
		{"$(id)", "may hold only"},
		{"1.0.0`x`", "may hold only"},
		{"-1.0.0", "may hold only"},
		{"a b", "may hold only"},
		{"1.0.0'", "may hold only"},
		{"../1.0.0", "may hold only"},
		{"1.0.0/..", "may hold only"},
		{"1.0.0\n", "may hold only"},
		{"1.0.0-" + strings.Repeat("a", 60), "at most 64"},
	}
	for _, c := range cases {
		err := Valid(c.in)
		if err == nil {
			t.Errorf("Valid(%q) = nil, want an error", c.in)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Valid(%q) = %v, does not wrap ErrInvalid", c.in, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "a release version is MAJOR.MINOR.PATCH, e.g. 1.2.0") {
			t.Errorf("Valid(%q) = %q, does not say what is expected", c.in, msg)
		}
		if !strings.Contains(msg, c.hint) {
			t.Errorf("Valid(%q) = %q, want it to contain %q", c.in, msg, c.hint)
		}
		if _, perr := Parse(c.in); perr == nil || perr.Error() != msg {
			t.Errorf("Parse(%q) error %v differs from Valid's %q", c.in, perr, msg)
		}
	}
	if got := Valid("latest").Error(); got != `"latest" is not a release version; `+Expected {
		t.Errorf("Valid(latest) = %q", got)
	}
}

func TestCompare(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.3.2", "1.4.0", -1},
		{"1.10.0", "1.9.0", 1},
		{"1.0.10", "1.0.9", 1},
		{"10.0.0", "9.99.99", 1},
		{"2.0.0-rc1", "2.0.0", -1},
		{"2.0.0-rc1", "2.0.0-rc2", -1},
		{"1.0.0-rc.2", "1.0.0-rc.10", -1}, // numeric identifiers compare as numbers
		{"1.0.0-rc.10", "1.0.0-rc.2", 1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1}, // a longer set of fields wins
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-1", "1.0.0-alpha", -1}, // numeric before alphanumeric
		{"1.0.0+a", "1.0.0+b", 0},      // build metadata is ignored
		{"1.0.0-rc.1+x", "1.0.0-rc.1", 0},
	}
	for _, c := range cases {
		a, err := Parse(c.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Parse(c.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := Compare(a, b); got != c.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Compare(b, a); got != -c.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
	if Compare(V{}, V{}) != 0 || Compare(V{}, mustParse(t, "0.0.0")) != -1 || Compare(mustParse(t, "0.0.0"), V{}) != 1 {
		t.Error("a zero V must sort first and equal itself")
	}
}

// TestSortSemVerOrder shuffles the precedence example of SemVer 2.0 §11 (and
// more) and checks Less puts it back in order.
func TestSortSemVerOrder(t *testing.T) {
	want := []string{
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0",
		"1.0.1", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0", "10.0.0",
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		got := slices.Clone(want)
		r.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		slices.SortFunc(got, func(a, b string) int {
			switch {
			case Less(a, b):
				return -1
			case Less(b, a):
				return 1
			}
			return 0
		})
		if !slices.Equal(got, want) {
			t.Fatalf("sorted:\n got %v\nwant %v", got, want)
		}
	}
}

func TestLessInvalid(t *testing.T) {
	// Strings that are not versions sort before every version, as text
	// among themselves: a sort of mixed input stays total.
	if !Less("latest", "0.0.1") || Less("0.0.1", "latest") {
		t.Error("an invalid string must sort before a version")
	}
	if !Less("apple", "banana") || Less("banana", "apple") {
		t.Error("invalid strings compare as text")
	}
	if !Less("1.0.0+a", "1.0.0+b") || Less("1.0.0+b", "1.0.0+a") {
		t.Error("equal precedence falls back to the text, for a stable order")
	}
}

func TestString(t *testing.T) {
	v := mustParse(t, "1.4.0-rc.1+b7")
	if v.String() != "1.4.0-rc.1+b7" || v.Prerelease() != "rc.1" {
		t.Errorf("String %q Prerelease %q", v.String(), v.Prerelease())
	}
	if (V{}).String() != "" || (V{}).Prerelease() != "" {
		t.Error("zero V")
	}
}

func TestConstraint(t *testing.T) {
	cases := []struct {
		c, v string
		want bool
	}{
		{">=1.4.0", "1.4.0", true},
		{">=1.4.0", "1.3.2", false},
		{">= 1.0.0, <2.0.0", "1.9.9", true},
		{">=1.0.0 <2.0.0", "2.0.0", false},
		{">=1.0.0,<2.0.0", "0.9.0", false},
		{"1.3.2", "1.3.2", true},
		{"=1.3.2", "1.3.3", false},
		{"!=1.3.2", "1.3.3", true},
		{"!=1.3.2", "1.3.2", false},
		{">1.3.2", "1.3.2", false},
		{"<=1.3.2", "1.3.2", true},
		{"*", "0.0.1", true},
		{"", "9.9.9", true},
		{"  ", "9.9.9", true},
		// tilde: same minor
		{"~1.4.0", "1.4.9", true},
		{"~1.4.2", "1.4.1", false},
		{"~1.4", "1.5.0", false},
		{"~1", "1.9.0", true},
		{"~>1.4.0", "1.4.3", true},
		// caret: same major (same minor below 1.0.0)
		{"^1.2.0", "1.9.9", true},
		{"^1.2.0", "2.0.0", false},
		{"^1.2.0", "1.1.9", false},
		{"^0.3.1", "0.3.9", true},
		{"^0.3.1", "0.4.0", false},
		// alternatives
		{"^1.2.0 || 2.0.0", "2.0.0", true},
		{"^1.2.0 || 2.0.0", "2.0.1", false},
		{"~1.3.0 || >=1.5.0 <1.6.0", "1.5.2", true},
		{"~1.3.0 || >=1.5.0 <1.6.0", "1.4.0", false},
		// hyphen ranges and wildcards
		{"1.2.0 - 1.4.0", "1.4.0", true},
		{"1.2.0 - 1.4.0", "1.4.1", false},
		{"1.4.x", "1.4.7", true},
		{"1.4.x", "1.5.0", false},
		// pre-releases are ordered, not excluded
		{">=1.4.0", "1.5.0-rc.1", true},
		{">=1.4.0", "1.4.0-rc.1", false},
		{">=1.4.0, <2.0.0", "1.9.0-beta", true},
		{"^1.2.0", "1.3.0-rc.2", true},
		{">=1.0.0-rc.2", "1.0.0-rc.10", true},
		// build metadata does not change the order
		{"=1.3.2", "1.3.2+build.9", true},
	}
	for _, c := range cases {
		con, err := ParseConstraint(c.c)
		if err != nil {
			t.Fatalf("ParseConstraint(%q): %v", c.c, err)
		}
		v := mustParse(t, c.v)
		if got := con.Allows(v); got != c.want {
			t.Errorf("%q allows %s = %v, want %v", c.c, c.v, got, c.want)
		}
		err = con.Check(c.v)
		if (err == nil) != c.want {
			t.Errorf("%q Check(%s) = %v, want ok=%v", c.c, c.v, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), c.c) {
			t.Errorf("Check error %q does not name the constraint", err)
		}
		if con.String() != c.c {
			t.Errorf("String() = %q, want %q", con.String(), c.c)
		}
	}
}

func TestConstraintRejects(t *testing.T) {
	for _, bad := range []string{">=", ">=1.0;x", ">=1.0.0; rm -rf /", "latest", ">=banana", "1.0.0 || ", ">>1.0.0", ">=v1.0.0", "v1.2.0", "^v1", "1.0.0 || v2.0.0"} {
		if _, err := ParseConstraint(bad); err == nil {
			t.Errorf("ParseConstraint(%q) = nil error", bad)
		} else if !strings.Contains(err.Error(), "constraint") {
			t.Errorf("ParseConstraint(%q) = %q, does not say it is the constraint", bad, err)
		}
	}
	// A constraint checks release versions only.
	c, err := ParseConstraint(">=1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check("latest"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Check(latest) = %v, want ErrInvalid", err)
	}
	if c.Allows(V{}) {
		t.Error("a zero V satisfies nothing")
	}
	// ">=1.0.0-v2" has a pre-release that starts with v: not a leading v.
	if _, err := ParseConstraint(">=1.0.0-v2"); err != nil {
		t.Errorf("ParseConstraint(>=1.0.0-v2) = %v", err)
	}
}

func mustParse(t *testing.T, s string) V {
	t.Helper()
	v, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// FuzzValid: whatever Valid accepts is shell-safe, parses, and reads back.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"1.0.0", "1.0.0-rc.1+b", "latest", "v1.2.0", "1.2", "1.0.0;x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Valid(s) != nil {
			return
		}
		if !safeRe.MatchString(s) || len(s) > MaxLen {
			t.Fatalf("Valid accepted unsafe %q", s)
		}
		v, err := Parse(s)
		if err != nil || v.String() != s || Compare(v, v) != 0 {
			t.Fatalf("Parse(%q) = %v, %v", s, v, err)
		}
	})
}
