package plan

import (
	"fmt"
	"strings"
)

// selectionFacts are the header lines of a plan aimed at part of the
// fleet: what was selected, what is left out, and what that holds back.
func (p *Plan) selectionFacts() [][2]string {
	s := p.Selection
	if s == nil {
		return nil
	}
	n := len(p.Basis.Hosts) - len(s.LeftOut)
	if n < 0 || len(p.Basis.Hosts) == 0 {
		n = len(p.DeployHosts())
	}
	out := [][2]string{{"selected", fmt.Sprintf("%s: %d of %d hosts", s.Selection, n, n+len(s.LeftOut))}}
	if len(s.LeftOut) > 0 {
		var parts []string
		for _, h := range s.LeftOut {
			v := h.Version
			if v == "" {
				v = "not observed"
			}
			parts = append(parts, fmt.Sprintf("%s (%s)", h.Host, v))
		}
		out = append(out, [2]string{"left out", strings.Join(parts, ", ") + " — not touched by this plan"})
	}
	for _, h := range s.Held {
		out = append(out, [2]string{"held", h})
	}
	return out
}

// roleHeading is the section heading of deploy step st's role.
func (p *Plan) roleHeading(st Step) string {
	if len(p.Roles) == 0 {
		return ""
	}
	if p.RolesTogether {
		var names []string
		for _, r := range p.Roles {
			names = append(names, r.Name)
		}
		return fmt.Sprintf("roles %s together: each batch takes its share of every role", strings.Join(names, ", "))
	}
	r := p.RoleOf(st.Host)
	if r == nil {
		return ""
	}
	return fmt.Sprintf("role %s: %s, %s", r.Name, hostCount(len(r.Hosts)), roleMembership(r))
}

func roleMembership(r *RolePlan) string {
	if r.Balancer {
		return "behind the balancer"
	}
	return "not behind the balancer (no drain, wait-idle, enable or verify)"
}

// roleCounts is " (web: 1, worker: 2)" for a batch of several roles.
func (p *Plan) roleCounts(hosts []string) string {
	var parts []string
	for _, r := range p.Roles {
		n := 0
		for _, h := range hosts {
			if rp := p.RoleOf(h); rp != nil && rp.Name == r.Name {
				n++
			}
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", r.Name, n))
		}
	}
	if len(parts) < 2 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// rolePerHost is every role's per-host sequence, for "Each web host: ...".
func (p *Plan) rolePerHost() [][2]string {
	var out [][2]string
	for i := range p.Roles {
		r := &p.Roles[i]
		s := p.Settings
		s.HealthTimeout, s.HealthInterval, s.StableFor = r.HealthTimeout, r.HealthInterval, r.StableFor
		var acts []string
		for _, a := range r.Actions {
			acts = append(acts, actionText(a, s))
		}
		bs := make([]string, len(r.Batches))
		for j, b := range r.Batches {
			bs[j] = b.String()
		}
		out = append(out, [2]string{r.Name + " host", fmt.Sprintf("%s (batches %s)", strings.Join(acts, " → "), strings.Join(bs, ", "))})
	}
	return out
}
