package plan

import (
	"errors"
	"strings"
	"testing"
)

func observed(vs map[string]string, unreachable ...string) Observed {
	o := Observed{}
	for _, n := range []string{"web1", "web2", "web3"} {
		if v, ok := vs[n]; ok {
			o.Hosts = append(o.Hosts, HostState{Name: n, Version: v, Reachable: true})
		}
	}
	for i := range o.Hosts {
		for _, u := range unreachable {
			if o.Hosts[i].Name == u {
				o.Hosts[i].Reachable, o.Hosts[i].Error = false, "connection refused"
			}
		}
	}
	return o
}

func TestCheckBasis(t *testing.T) {
	inv := inventory(t, 3, "")
	then := observed(map[string]string{"web1": "1.3.2", "web2": "1.3.2", "web3": "1.4.0"})
	p, err := Build(inv, then, Options{To: "1.4.0"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		now  Observed
		want string // "" = may start
	}{
		{"unchanged", then, ""},
		{"a planned host already on the target (idempotent)", observed(map[string]string{"web1": "1.4.0", "web2": "1.3.2", "web3": "1.4.0"}), ""},
		{"a planned host moved elsewhere", observed(map[string]string{"web1": "1.3.3", "web2": "1.3.2", "web3": "1.4.0"}), "web1 runs 1.3.3 now; the plan takes it from 1.3.2 to 1.4.0"},
		{"a skipped host changed", observed(map[string]string{"web1": "1.3.2", "web2": "1.3.2", "web3": "1.3.2"}), "web3 ran 1.4.0 when the plan was made and runs 1.3.2 now"},
		{"a planned host unreachable", observed(map[string]string{"web1": "1.3.2", "web2": "1.3.2", "web3": "1.4.0"}, "web2"), "web2 is unreachable now"},
		{"a skipped host unreachable", observed(map[string]string{"web1": "1.3.2", "web2": "1.3.2", "web3": "1.4.0"}, "web3"), "web3 was reachable when the plan was made and is unreachable now"},
		{"a host gone", observed(map[string]string{"web1": "1.3.2", "web2": "1.3.2"}), "web3 was in the plan's fleet and is not in the inventory now"},
		{"offline", Assume(inv, "1.3.2"), "not observed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckBasis(p, c.now)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !errors.Is(err, ErrStalePlan) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err %v; want ErrStalePlan with %q", err, c.want)
			}
		})
	}
}

func TestDiffNamesTheFirstDifference(t *testing.T) {
	inv := inventory(t, 3, "")
	obs := observed(map[string]string{"web1": "1.3.2", "web2": "1.3.2", "web3": "1.3.2"})
	build := func() *Plan {
		p, err := Build(inv, obs, Options{To: "1.4.0"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	drop := func(kind StepKind) func(*Plan) {
		return func(p *Plan) {
			for i, s := range p.Steps {
				if s.Kind == kind {
					p.Steps = append(p.Steps[:i], p.Steps[i+1:]...)
					return
				}
			}
		}
	}
	cases := []struct {
		name string
		edit func(*Plan)
		want string
	}{
		{"same", func(*Plan) {}, ""},
		{"migrate deleted", drop(StepMigrate), `is "deploy/web1" (deploy web1 (1.3.2 → 1.4.0)) in the file, "migrate" (migrate 1.4.0 on web1) when rebuilt`},
		{"lock deleted", drop(StepLock), `"lock" (lock the fleet (on web1)) when rebuilt`},
		{"target changed", func(p *Plan) { p.To = "2.0.0" }, `to is "2.0.0" in the file, "1.4.0" when rebuilt`},
		{"last step cut", func(p *Plan) { p.Steps = p.Steps[:len(p.Steps)-1] }, "(unlock the fleet (on web1)) is missing from the file"},
		{"a step's target changed", func(p *Plan) { p.Steps[len(p.Steps)-2].To = "9.9.9" }, "differs"},
		{"notes are words", func(p *Plan) { p.Notes = append(p.Notes, "edited") }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := build()
			c.edit(a)
			got := Diff(a, build())
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Fatalf("Diff = %q; want %q", got, c.want)
			}
		})
	}
}
