package fleet

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// DefaultRole is the role of a host that names none. Declaring
// roles.default gives those hosts overrides too.
const DefaultRole = "default"

// RolesTogether is the rollout.role_order value that deploys every role in
// the same batches (each batch takes its share of every role).
const RolesTogether = "together"

// Role is a named group of hosts (`role:` on each host) that may override
// the fleet's stop/start/health/version commands, its health timings, its
// rollout batches, and its balancer membership. Everything a role leaves
// out is the fleet's. Migrations are never a role's: they run once for the
// whole fleet.
type Role struct {
	Commands RoleCommands `yaml:"commands"`
	Health   Health       `yaml:"health"`
	Rollout  RoleRollout  `yaml:"rollout"`
	// Balancer is "none" for hosts that are not behind the fleet's
	// balancer (background workers): they are deployed in the same run
	// without drain, wait-idle, enable or verify. Left out: the fleet's
	// balancer.
	Balancer string `yaml:"balancer"`
}

// RoleCommands are a role's command overrides. Migrate and PostMigrate
// exist only so that setting them is refused with a clear reason.
type RoleCommands struct {
	Stop        string `yaml:"stop"`
	Start       string `yaml:"start"`
	Health      string `yaml:"health"`
	Version     string `yaml:"version"`
	Migrate     string `yaml:"migrate"`
	PostMigrate string `yaml:"post_migrate"`
}

// RoleRollout is what of rollout a role may override.
type RoleRollout struct {
	Batches []BatchSize `yaml:"batches"`
}

// roleInfo is a role's effective settings: the fleet's, with the role's
// overrides applied.
type roleInfo struct {
	templates map[string]*Template // only the role's own overrides
	health    Health
	batches   []BatchSize
	balanced  bool
}

// RoleOf is the role of host h.
func (inv *Inventory) RoleOf(h Host) string {
	if h.Role == "" {
		return DefaultRole
	}
	return h.Role
}

// HasRoles reports whether the inventory's hosts use roles: a host in a
// role other than default, or roles.default declared. Without that every
// plan is exactly what it was before roles existed (a role declared but
// given to no host changes nothing).
func (inv *Inventory) HasRoles() bool {
	if _, ok := inv.Roles[DefaultRole]; ok {
		return true
	}
	for _, h := range inv.Hosts {
		if inv.RoleOf(h) != DefaultRole {
			return true
		}
	}
	return false
}

// RoleNames returns the roles that have hosts, in deploy order:
// rollout.role_order first, then the others in the order they first
// appear in hosts.
func (inv *Inventory) RoleNames() []string {
	var seen []string
	for _, h := range inv.Hosts {
		if r := inv.RoleOf(h); !slices.Contains(seen, r) {
			seen = append(seen, r)
		}
	}
	var out []string
	if !inv.RolesTogether() {
		for _, r := range inv.Rollout.RoleOrder {
			if slices.Contains(seen, r) && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	for _, r := range seen {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// RolesTogether reports whether rollout.role_order is "together".
func (inv *Inventory) RolesTogether() bool {
	o := inv.Rollout.RoleOrder
	return len(o) == 1 && o[0] == RolesTogether
}

func (inv *Inventory) role(name string) *roleInfo {
	if inv.roles == nil {
		return nil
	}
	return inv.roles[name]
}

// HostTemplate is the command template called name for host h: its role's
// override, or the fleet's (nil when neither defines it).
func (inv *Inventory) HostTemplate(h Host, name string) *Template {
	if ri := inv.role(inv.RoleOf(h)); ri != nil {
		if t := ri.templates[name]; t != nil {
			return t
		}
	}
	return inv.Template(name)
}

// RoleHealth is role's health timings.
func (inv *Inventory) RoleHealth(role string) Health {
	if ri := inv.role(role); ri != nil {
		return ri.health
	}
	return inv.Health
}

// RoleBatches is role's rollout batches.
func (inv *Inventory) RoleBatches(role string) []BatchSize {
	if ri := inv.role(role); ri != nil && len(ri.batches) > 0 {
		return ri.batches
	}
	return inv.Rollout.Batches
}

// RoleBalanced reports whether role's hosts are behind the fleet's
// balancer (false for `balancer: none`).
func (inv *Inventory) RoleBalanced(role string) bool {
	if ri := inv.role(role); ri != nil {
		return ri.balanced
	}
	return true
}

// HostBalanced reports whether host h is behind the fleet's balancer.
func (inv *Inventory) HostBalanced(h Host) bool { return inv.RoleBalanced(inv.RoleOf(h)) }

// validateRoles checks roles, role: on hosts and rollout.role_order, and
// fills in every role's effective settings. It runs after the fleet's own
// commands and timings are checked.
func (l *loader) validateRoles(inv *Inventory) {
	inv.roles = map[string]*roleInfo{}
	names := make([]string, 0, len(inv.Roles))
	for n := range inv.Roles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := "roles." + strconv.Quote(n)
		switch {
		case !nameRe.MatchString(n):
			l.at(p, "role name %q may hold only letters, digits and . _ -", n)
			continue
		case n == RolesTogether:
			l.at(p, "role name %q is reserved: rollout.role_order: together means every role at once", n)
			continue
		}
		inv.roles[n] = l.roleInfo(inv, n, inv.Roles[n], p)
	}
	used := map[string]bool{}
	for i, h := range inv.Hosts {
		r := inv.RoleOf(h)
		used[r] = true
		if r == DefaultRole || !nameRe.MatchString(r) {
			continue // a bad name is reported by validateHosts
		}
		if _, ok := inv.Roles[r]; !ok {
			msg := fmt.Sprintf("unknown role %q", r)
			if s := suggest(r, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			if len(names) == 0 {
				msg += ": no roles are declared (add it under roles:)"
			} else {
				msg += fmt.Sprintf(": declared roles are %s", strings.Join(names, ", "))
			}
			l.at(fmt.Sprintf("hosts[%d].role", i), "%s", msg)
		}
	}
	if _, ok := inv.roles[DefaultRole]; !ok {
		inv.roles[DefaultRole] = &roleInfo{health: inv.Health, batches: inv.Rollout.Batches, balanced: true}
	}
	// A role other than default with no hosts is allowed (an environment
	// may have none of them); a role every host lacks is simply unused.
	order := inv.Rollout.RoleOrder
	seen := map[string]int{}
	for i, r := range order {
		p := fmt.Sprintf("rollout.role_order[%d]", i)
		if len(order) == 1 && r == RolesTogether {
			break
		}
		if r == RolesTogether {
			l.at(p, "%q cannot be mixed with role names: write role_order: together, or a list of roles", RolesTogether)
			continue
		}
		if j, dup := seen[r]; dup {
			l.at(p, "role %q is already listed at role_order[%d]", r, j)
			continue
		}
		seen[r] = i
		if _, ok := inv.Roles[r]; !ok && !(r == DefaultRole && used[r]) {
			msg := fmt.Sprintf("unknown role %q", r)
			if s := suggest(r, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			l.at(p, "%s", msg)
		}
	}
}

// roleInfo validates one role and returns its effective settings.
func (l *loader) roleInfo(inv *Inventory, name string, r Role, p string) *roleInfo {
	ri := &roleInfo{templates: map[string]*Template{}, health: inv.Health, batches: inv.Rollout.Batches, balanced: true}
	switch r.Balancer {
	case "":
	case BalancerNone:
		ri.balanced = false
	default:
		l.at(p+".balancer", "balancer %q: a role is either behind the fleet's balancer (leave balancer out) or not behind any (none)", r.Balancer)
	}
	for _, m := range []struct{ key, src string }{{CmdMigrate, r.Commands.Migrate}, {CmdPostMigrate, r.Commands.PostMigrate}} {
		if m.src != "" {
			l.at(p+".commands."+m.key, "migrations run once for the whole fleet: set commands.%s at the top level, not in a role", m.key)
		}
	}
	var hosts []Host
	for _, h := range inv.Hosts {
		if inv.RoleOf(h) == name {
			hosts = append(hosts, h)
		}
	}
	for _, c := range []struct{ name, src string }{
		{CmdStop, r.Commands.Stop}, {CmdStart, r.Commands.Start}, {CmdHealth, r.Commands.Health}, {CmdVersion, r.Commands.Version},
	} {
		if c.src == "" {
			continue
		}
		key := p + ".commands." + c.name
		t, err := ParseTemplate(c.name, c.src)
		if err != nil {
			l.at(key, "%v", err)
			continue
		}
		for _, h := range hosts {
			if _, err := t.Render(inv.HostValues(h, "1.0.0", "1.0.1")); err != nil {
				l.at(key, "%v (for host %s)", err, h.Name)
				break
			}
		}
		ri.templates[c.name] = t
	}
	h := &ri.health
	if l.has(p + ".health.timeout") {
		h.Timeout = r.Health.Timeout
	}
	if l.has(p + ".health.interval") {
		h.Interval = r.Health.Interval
	}
	if l.has(p + ".health.stable_for") {
		h.StableFor = r.Health.StableFor
	}
	if l.has(p + ".health") {
		switch {
		case h.Timeout <= 0:
			l.at(p+".health.timeout", "timeout must be positive")
		case h.Interval <= 0:
			l.at(p+".health.interval", "interval must be positive")
		case h.Interval > h.Timeout:
			l.at(p+".health.interval", "interval %s is longer than timeout %s", h.Interval, h.Timeout)
		case h.StableFor < 0:
			l.at(p+".health.stable_for", "stable_for must not be negative")
		case h.StableFor >= h.Timeout:
			l.at(p+".health.stable_for", "stable_for %s must be shorter than timeout %s", h.StableFor, h.Timeout)
		}
	}
	if len(r.Rollout.Batches) > 0 {
		l.validateBatches(p+".rollout.batches", r.Rollout.Batches)
		ri.batches = r.Rollout.Batches
	}
	return ri
}
