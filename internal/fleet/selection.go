package fleet

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrSelection is wrapped by every problem with a host selection (an
// unknown host, label or role, or a selection that matches no host): bad
// input, nothing touched.
var ErrSelection = errors.New("bad host selection")

// Selection aims an operation at some hosts: --hosts, --labels, --roles.
// Within one list any name matches (web1 or web3); the lists given must all
// match (--roles web --labels canary: the web hosts labelled canary). An
// empty selection is the whole fleet.
type Selection struct {
	Hosts  []string `json:"hosts,omitempty"`
	Labels []string `json:"labels,omitempty"`
	Roles  []string `json:"roles,omitempty"`
}

// Empty reports whether the selection is the whole fleet.
func (s Selection) Empty() bool { return len(s.Hosts) == 0 && len(s.Labels) == 0 && len(s.Roles) == 0 }

// Flags names the flags the selection was given with ("--hosts",
// "--hosts and --roles").
func (s Selection) Flags() string {
	var fs []string
	if len(s.Hosts) > 0 {
		fs = append(fs, "--hosts")
	}
	if len(s.Labels) > 0 {
		fs = append(fs, "--labels")
	}
	if len(s.Roles) > 0 {
		fs = append(fs, "--roles")
	}
	switch len(fs) {
	case 0:
		return ""
	case 1:
		return fs[0]
	}
	return strings.Join(fs[:len(fs)-1], ", ") + " and " + fs[len(fs)-1]
}

// String is the selection as the operator typed it:
// "--hosts web1,web3 --roles worker".
func (s Selection) String() string {
	var parts []string
	for _, f := range []struct {
		flag string
		v    []string
	}{{"--hosts", s.Hosts}, {"--labels", s.Labels}, {"--roles", s.Roles}} {
		if len(f.v) > 0 {
			parts = append(parts, f.flag+" "+strings.Join(f.v, ","))
		}
	}
	return strings.Join(parts, " ")
}

// Select returns the hosts the selection picks, in inventory order. A
// host, label or role the inventory does not know, or a selection that
// picks no host, is an error (ErrSelection) that names it.
func (inv *Inventory) Select(s Selection) ([]Host, error) {
	if s.Empty() {
		return inv.Hosts, nil
	}
	var bad []string
	for _, n := range s.Hosts {
		if !slices.ContainsFunc(inv.Hosts, func(h Host) bool { return h.Name == n }) {
			bad = append(bad, fmt.Sprintf("--hosts: %q is not a host of %s", n, inv.File))
		}
	}
	for _, l := range s.Labels {
		if !slices.ContainsFunc(inv.Hosts, func(h Host) bool { return h.HasLabel(l) }) {
			bad = append(bad, fmt.Sprintf("--labels: no host of %s has label %q", inv.File, l))
		}
	}
	for _, r := range s.Roles {
		_, declared := inv.Roles[r]
		if !declared && !slices.ContainsFunc(inv.Hosts, func(h Host) bool { return inv.RoleOf(h) == r }) {
			bad = append(bad, fmt.Sprintf("--roles: %q is not a role of %s", r, inv.File))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrSelection, strings.Join(bad, "; "))
	}
	var out []Host
	for _, h := range inv.Hosts {
		if (len(s.Hosts) == 0 || slices.Contains(s.Hosts, h.Name)) &&
			(len(s.Labels) == 0 || slices.ContainsFunc(s.Labels, h.HasLabel)) &&
			(len(s.Roles) == 0 || slices.Contains(s.Roles, inv.RoleOf(h))) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s picks no host (the lists given must all match a host)", ErrSelection, s)
	}
	return out, nil
}

// WithHosts returns a copy of the inventory that holds only hosts (its
// other settings, parsed templates and roles shared).
func (inv *Inventory) WithHosts(hosts []Host) *Inventory {
	cp := *inv
	cp.Hosts = hosts
	return &cp
}

// OrAll is the selection s points at, or the whole fleet when s is nil.
func (s *Selection) OrAll() Selection {
	if s == nil {
		return Selection{}
	}
	return *s
}
