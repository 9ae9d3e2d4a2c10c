package version

import "testing"

func TestValid(t *testing.T) {
	good := []string{"1.0.0", "v2.0.0-rc.1", "2024.05.01+build7", "abc"}
	bad := []string{"", "1.0 ", "1.0;rm -rf /", "$(id)", "1.0.0`x`", "-1.0", "a b", "1.0'", "../1.0"}
	for _, s := range good {
		if err := Valid(s); err != nil {
			t.Errorf("Valid(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range bad {
		if Valid(s) == nil {
			t.Errorf("Valid(%q) = nil, want an error", s)
		}
	}
}

func TestCompare(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.0", "1.0.0", 0},
		{"1.3.2", "1.4.0", -1},
		{"1.10.0", "1.9.0", 1},
		{"2.0.0-rc1", "2.0.0", -1},
		{"2.0.0-rc1", "2.0.0-rc2", -1},
		{"v1.2.3", "1.2.3", 0},
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
		{"1.3.2", "1.3.2", true},
		{"=1.3.2", "1.3.3", false},
		{"!=1.3.2", "1.3.3", true},
		{"*", "0.0.1", true},
		{"", "9.9.9", true},
	}
	for _, c := range cases {
		con, err := ParseConstraint(c.c)
		if err != nil {
			t.Fatalf("ParseConstraint(%q): %v", c.c, err)
		}
		v, _ := Parse(c.v)
		if got := con.Allows(v); got != c.want {
			t.Errorf("%q allows %s = %v, want %v", c.c, c.v, got, c.want)
		}
	}
	for _, bad := range []string{">=", ">=1.0;x", "~>1.0"} {
		if _, err := ParseConstraint(bad); err == nil {
			t.Errorf("ParseConstraint(%q) = nil error", bad)
		}
	}
}
