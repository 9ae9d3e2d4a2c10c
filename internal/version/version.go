// Package version is relctl's one definition of a release version: strict
// SemVer 2.0 (MAJOR.MINOR.PATCH, an optional -pre-release and +build), the
// same for --to and --upfrom, the releases table, plan files and what a host
// reports. It also parses the compatibility constraints of the releases table
// (upgrade_from: ">=1.4.0, <2.0.0", "~1.4", "^1.2.0 || 2.0.0").
//
// Parsing, ordering and constraints are github.com/Masterminds/semver/v3; on
// top of it relctl keeps its own shell-safety check (a version names a
// directory on every host and is put into host-side commands).
//
// It owns version syntax and ordering only; it never decides upgrade paths
// (that is package plan) and does no I/O.
package version

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Expected says what a release version looks like; every syntax error ends
// with it.
const Expected = "a release version is MAJOR.MINOR.PATCH, e.g. 1.2.0 (SemVer 2.0: optionally -pre-release and +build, e.g. 1.3.0-rc.1)"

// MaxLen is the longest version relctl accepts (it names a directory).
const MaxLen = 64

// safeRe is the shell-safety check kept on top of SemVer: letters, digits and
// . _ + - only, starting with a letter or digit, at most MaxLen bytes. Every
// strict SemVer version of that length passes it; it stays as a second line
// of defence should the parser ever accept more.
var safeRe = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$`)

// Valid reports whether s is a release version, with a reason that says what
// is expected when not: `"latest" is not a release version; a release
// version is MAJOR.MINOR.PATCH, e.g. 1.2.0 (…)`. The error wraps ErrInvalid.
func Valid(s string) error {
	_, err := parse(s)
	return err
}

// V is a parsed release version. The zero V is invalid; get one from Parse.
type V struct {
	sv *semver.Version
}

// Parse parses a release version such as 1.4.0, 2.0.0-rc.1 or 1.4.0+build.7.
func Parse(s string) (V, error) {
	sv, err := parse(s)
	if err != nil {
		return V{}, err
	}
	return V{sv: sv}, nil
}

func parse(s string) (*semver.Version, error) {
	bad := func(shown, why string) error {
		return fmt.Errorf("%q is %w%s; %s", shown, ErrInvalid, why, Expected)
	}
	switch {
	case s == "":
		return nil, bad(s, " (it is empty)")
	case len(s) > MaxLen:
		return nil, bad(s[:20]+"…", fmt.Sprintf(" (it is %d bytes long; at most %d)", len(s), MaxLen))
	case !safeRe.MatchString(s):
		return nil, bad(s, " (it may hold only letters, digits and . + -, starting with a digit)")
	}
	sv, err := semver.StrictNewVersion(s)
	if err != nil {
		return nil, bad(s, hint(s, err))
	}
	return sv, nil
}

// hint names the most likely fix for a version that is nearly right.
func hint(s string, err error) string {
	if (s[0] == 'v' || s[0] == 'V') && Valid(s[1:]) == nil {
		return fmt.Sprintf(" (drop the leading %q: %s)", s[:1], s[1:])
	}
	core, build, hasBuild := strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	if n := strings.Count(core, "."); n < 2 && numericDots.MatchString(core) {
		full := core + strings.Repeat(".0", 2-n)
		if hasPre {
			full += "-" + pre
		}
		if hasBuild {
			full += "+" + build
		}
		if Valid(full) == nil {
			return fmt.Sprintf(" (give all three numbers: %s)", full)
		}
	}
	switch {
	case errors.Is(err, semver.ErrSegmentStartsZero):
		return " (a number has a leading zero)"
	case errors.Is(err, semver.ErrInvalidPrerelease):
		return " (the pre-release after '-' is dot-separated identifiers of letters, digits and '-'; numeric ones without leading zeros)"
	case errors.Is(err, semver.ErrInvalidMetadata):
		return " (the build after '+' is dot-separated identifiers of letters, digits and '-')"
	}
	return ""
}

// numericDots is a version core of one or two numbers ("1", "1.2").
var numericDots = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?$`)

// String returns the version as written.
func (v V) String() string {
	if v.sv == nil {
		return ""
	}
	return v.sv.Original()
}

// Prerelease returns the pre-release part (after '-'), or "".
func (v V) Prerelease() string {
	if v.sv == nil {
		return ""
	}
	return v.sv.Prerelease()
}

// Compare orders two versions by SemVer 2.0 precedence: -1, 0 or +1. A
// pre-release sorts before its release, pre-release identifiers compare
// numerically when numeric (1.0.0-rc.2 < 1.0.0-rc.10), and build metadata
// is ignored (1.0.0+a and 1.0.0+b compare equal). A zero V sorts first.
func Compare(a, b V) int {
	switch {
	case a.sv == nil && b.sv == nil:
		return 0
	case a.sv == nil:
		return -1
	case b.sv == nil:
		return 1
	}
	return a.sv.Compare(b.sv)
}

// Less reports whether a sorts before b. A string that is not a release
// version sorts before every release version, and such strings compare as
// text, so a sort of mixed input stays total.
func Less(a, b string) bool {
	va, ea := Parse(a)
	vb, eb := Parse(b)
	switch {
	case ea != nil && eb != nil:
		return a < b
	case ea != nil:
		return true
	case eb != nil:
		return false
	}
	if c := Compare(va, vb); c != 0 {
		return c < 0
	}
	return a < b // equal precedence (build metadata): keep the order stable
}

// Constraint is a releases-table compatibility constraint: comparisons
// (=, !=, >, >=, <, <=, ~, ^) joined by commas or spaces (all must hold),
// alternatives joined by ||, hyphen ranges (1.2.0 - 1.4.0), and wildcards
// (1.4.x, *). "*" or an empty constraint accepts every version.
//
// Pre-releases are ordered, not excluded: >=1.4.0 allows 1.5.0-rc.1, since
// the constraint checks a version a host runs, not a version to pick.
type Constraint struct {
	c   *semver.Constraints // nil: accepts everything
	raw string
}

// leadingV finds a version written with a leading v inside a constraint.
var leadingV = regexp.MustCompile(`(^|[\s,|<>=~^!])[vV][0-9]`)

// ParseConstraint parses a constraint (see Constraint).
func ParseConstraint(s string) (Constraint, error) {
	if strings.TrimSpace(s) == "" {
		return Constraint{raw: s}, nil
	}
	if leadingV.MatchString(s) {
		return Constraint{}, fmt.Errorf("constraint %q: write versions without a leading v; %s", s, Expected)
	}
	c, err := semver.NewConstraint(s)
	if err != nil {
		return Constraint{}, fmt.Errorf("constraint %q: %v; use comparisons such as \">=1.4.0, <2.0.0\", \"~1.4\", \"^1.2.0\", alternatives with ||", s, err)
	}
	c.IncludePrerelease = true
	return Constraint{c: c, raw: s}, nil
}

// String returns the constraint as written.
func (c Constraint) String() string { return c.raw }

// Allows reports whether v satisfies c.
func (c Constraint) Allows(v V) bool {
	if c.c == nil {
		return true
	}
	if v.sv == nil {
		return false
	}
	return c.c.Check(v.sv)
}

// Check reports why the version s does not satisfy c, or nil when it does.
func (c Constraint) Check(s string) error {
	v, err := Parse(s)
	if err != nil {
		return err
	}
	if c.c == nil {
		return nil
	}
	if ok, errs := c.c.Validate(v.sv); !ok {
		return fmt.Errorf("%s does not satisfy %q: %w", s, c.raw, errors.Join(errs...))
	}
	return nil
}
