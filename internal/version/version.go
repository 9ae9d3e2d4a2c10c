// Package version parses release versions and the compatibility constraints of
// the inventory's releases table (upgrade_from: ">=1.4.0, <2.0.0").
//
// It owns version syntax and ordering only; it never decides upgrade paths
// (that is package plan) and does no I/O.
package version

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// validRe is the syntax every version must have before it is put anywhere near
// a shell: letters, digits and . _ + - only, starting with a letter or digit.
var validRe = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$`)

// Valid reports whether s is a usable version string, with a reason when not.
func Valid(s string) error {
	if s == "" {
		return fmt.Errorf("version is empty")
	}
	if !validRe.MatchString(s) {
		return fmt.Errorf("version %q may hold only letters, digits and . _ + - (at most 64, starting with a letter or digit)", s)
	}
	return nil
}

// V is a parsed version: numeric dot-separated parts and an optional
// pre-release suffix after '-'. Build metadata after '+' is ignored in ordering.
type V struct {
	Nums []int
	Pre  string
	Raw  string
}

// Parse parses a dotted numeric version such as 1.4.0, v2.0.0-rc.1 or 10.2.
func Parse(s string) (V, error) {
	if err := Valid(s); err != nil {
		return V{}, err
	}
	raw := s
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	var pre string
	if i := strings.IndexByte(s, '-'); i >= 0 {
		s, pre = s[:i], s[i+1:]
	}
	parts := strings.Split(s, ".")
	v := V{Pre: pre, Raw: raw, Nums: make([]int, len(parts))}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return V{}, fmt.Errorf("version %q: %q is not a number", raw, p)
		}
		v.Nums[i] = n
	}
	return v, nil
}

// Compare orders two versions: -1, 0 or +1. Missing parts count as 0, and a
// pre-release sorts before its release (1.0.0-rc1 < 1.0.0).
func Compare(a, b V) int {
	n := max(len(a.Nums), len(b.Nums))
	for i := range n {
		x, y := at(a.Nums, i), at(b.Nums, i)
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	switch {
	case a.Pre == b.Pre:
		return 0
	case a.Pre == "":
		return 1
	case b.Pre == "":
		return -1
	case a.Pre < b.Pre:
		return -1
	default:
		return 1
	}
}

func at(n []int, i int) int {
	if i < len(n) {
		return n[i]
	}
	return 0
}

// Less reports whether a sorts before b, comparing unparsable strings as text.
func Less(a, b string) bool {
	va, ea := Parse(a)
	vb, eb := Parse(b)
	if ea != nil || eb != nil {
		return a < b
	}
	return Compare(va, vb) < 0
}

// Constraint is a conjunction of comparisons, e.g. ">=1.0.0, <2.0.0".
// "*" (or an empty constraint) accepts every version.
type Constraint struct {
	terms []term
	raw   string
}

type term struct {
	op string
	v  V
}

// ParseConstraint parses comparators separated by commas or spaces. Each is
// one of >=, >, <=, <, =, ==, != followed by a version, or a bare version
// (meaning equality).
func ParseConstraint(s string) (Constraint, error) {
	c := Constraint{raw: s}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if f == "*" {
			continue
		}
		op := ""
		for _, o := range []string{">=", "<=", "==", "!=", ">", "<", "="} {
			if strings.HasPrefix(f, o) {
				op = o
				break
			}
		}
		rest := strings.TrimPrefix(f, op)
		if rest == "" && op != "" && i+1 < len(fields) { // ">= 1.0.0"
			i++
			rest = fields[i]
		}
		if op == "" || op == "==" {
			op = "="
		}
		v, err := Parse(rest)
		if err != nil {
			return Constraint{}, fmt.Errorf("constraint %q: %w", s, err)
		}
		c.terms = append(c.terms, term{op: op, v: v})
	}
	return c, nil
}

// String returns the constraint as written.
func (c Constraint) String() string { return c.raw }

// Allows reports whether v satisfies every comparison of c.
func (c Constraint) Allows(v V) bool {
	for _, t := range c.terms {
		r := Compare(v, t.v)
		ok := false
		switch t.op {
		case ">=":
			ok = r >= 0
		case ">":
			ok = r > 0
		case "<=":
			ok = r <= 0
		case "<":
			ok = r < 0
		case "=":
			ok = r == 0
		case "!=":
			ok = r != 0
		}
		if !ok {
			return false
		}
	}
	return true
}
