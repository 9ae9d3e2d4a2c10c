package plan

import (
	"fmt"
	"slices"
	"sort"
)

// CheckBasis tells whether p may start on the fleet as obs sees it now: the
// one stale-plan guard of every start path (apply, apply --plan, the TUI's
// start, resume, rollback, downgrade, repair).
//
// A host the plan does not change must be exactly as the plan saw it
// (p.Basis): reachable and on the same version. A host the plan changes
// must be reachable and on a version its steps go through (the From or To
// of one of its deploy steps): where the plan found it, or further along
// (a resumed run, or a host already on the target, which idempotence
// skips). Anything else is ErrStalePlan, naming the first host in name
// order. An observation made offline (--upfrom) is not evidence: a plan
// is never started on one.
func CheckBasis(p *Plan, obs Observed) error {
	if obs.Offline {
		return fmt.Errorf("%w: the fleet was not observed (offline): observe it before starting", ErrStalePlan)
	}
	chain := map[string][]string{}
	for _, s := range p.Steps {
		if s.Kind == StepDeploy {
			chain[s.Host] = append(chain[s.Host], s.From, s.To)
		}
	}
	basis := map[string]HostState{}
	for _, h := range p.Basis.Hosts {
		basis[h.Name] = h
	}
	var names []string
	for n := range basis {
		names = append(names, n)
	}
	for n := range chain {
		if _, ok := basis[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		now, seen := obs.State(n)
		then, known := basis[n]
		vs, changes := chain[n]
		switch {
		case changes && (!seen || !now.Reachable):
			return fmt.Errorf("%w: %s is unreachable now (%s), and the plan changes it", ErrStalePlan, n, now.Error)
		case changes && !slices.Contains(vs, now.Version):
			return fmt.Errorf("%w: %s runs %s now; the plan takes it from %s to %s: run relctl plan again", ErrStalePlan, n, now.Version, vs[0], vs[len(vs)-1])
		case changes:
		case !seen:
			return fmt.Errorf("%w: %s was in the plan's fleet and is not in the inventory now", ErrStalePlan, n)
		case known && now.Reachable != then.Reachable:
			return fmt.Errorf("%w: %s was %s when the plan was made and is %s now", ErrStalePlan, n, reach(then.Reachable), reach(now.Reachable))
		case known && now.Version != then.Version:
			return fmt.Errorf("%w: %s ran %s when the plan was made and runs %s now: run relctl plan again", ErrStalePlan, n, then.Version, now.Version)
		}
	}
	for _, h := range obs.Hosts {
		if _, ok := basis[h.Name]; !ok {
			if _, ok := chain[h.Name]; !ok && len(p.Basis.Hosts) > 0 {
				return fmt.Errorf("%w: %s is in the inventory now but was not when the plan was made", ErrStalePlan, h.Name)
			}
		}
	}
	return nil
}

func reach(ok bool) string {
	if ok {
		return "reachable"
	}
	return "unreachable"
}
