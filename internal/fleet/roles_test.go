package fleet

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// rolesBase is base with two roles: web behind the balancer, worker not.
const rolesBase = `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands:
  stop: "stop-it"
  start: "start-it"
  health: "check {{.Vars.port}}"
balancer: {kind: haproxy, backend: shop, endpoints: [{tcp: "127.0.0.1:9999"}]}
vars: {port: "8080"}
roles:
  worker:
    balancer: none
    commands: {stop: "stop-worker", health: "worker-ok {{.Host}}"}
    health: {stable_for: 0s}
    rollout: {batches: ["50%"]}
hosts:
  - {name: web1, address: 10.0.0.11, labels: [canary], role: web}
  - {name: web2, address: 10.0.0.12, role: web}
  - {name: work1, address: 10.0.0.21, role: worker}
  - {name: work2, address: 10.0.0.22, role: worker}
rollout: {role_order: [worker]}
`

func withWeb(s string) string {
	return strings.Replace(s, "roles:\n", "roles:\n  web: {}\n", 1)
}

func TestRolesLoad(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(withWeb(rolesBase)))
	if err != nil {
		t.Fatal(err)
	}
	if !inv.HasRoles() {
		t.Fatal("HasRoles = false")
	}
	if got := inv.RoleNames(); !slices.Equal(got, []string{"worker", "web"}) {
		t.Errorf("RoleNames = %v, want role_order first, then the rest in host order", got)
	}
	web, work := inv.Hosts[0], inv.Hosts[2]
	if !inv.HostBalanced(web) || inv.HostBalanced(work) {
		t.Errorf("balanced: web %v, worker %v", inv.HostBalanced(web), inv.HostBalanced(work))
	}
	if got := inv.HostTemplate(work, CmdStop).String(); got != "stop-worker" {
		t.Errorf("worker stop = %q", got)
	}
	if got := inv.HostTemplate(work, CmdStart).String(); got != "start-it" {
		t.Errorf("worker start (inherited) = %q", got)
	}
	if got := inv.HostTemplate(web, CmdStop).String(); got != "stop-it" {
		t.Errorf("web stop = %q", got)
	}
	h := inv.RoleHealth("worker")
	if h.StableFor != 0 || h.Timeout != DefaultHealthTimeout || h.Interval != DefaultHealthInterval {
		t.Errorf("worker health = %+v: stable_for overridden, the rest inherited", h)
	}
	if h := inv.RoleHealth("web"); h.StableFor != DefaultStableFor {
		t.Errorf("web health = %+v", h)
	}
	if b := inv.RoleBatches("worker"); len(b) != 1 || b[0].String() != "50%" {
		t.Errorf("worker batches = %v", b)
	}
	if b := inv.RoleBatches("web"); len(b) != 2 || b[0].N != 1 {
		t.Errorf("web batches (the fleet's) = %v", b)
	}
	inv, err = Parse("fleet.yaml", []byte(strings.Replace(withWeb(rolesBase), "role_order: [worker]", "role_order: together", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !inv.RolesTogether() || !slices.Equal(inv.RoleNames(), []string{"web", "worker"}) {
		t.Errorf("together: %v %v", inv.RolesTogether(), inv.RoleNames())
	}
}

// Without roles on any host, nothing changes: one implicit role with the
// fleet's settings. A role declared but given to no host changes nothing.
func TestNoRolesIsOneImplicitRole(t *testing.T) {
	for _, src := range []string{base, base + "roles: {worker: {balancer: none}}\n"} {
		inv, err := Parse("fleet.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if inv.HasRoles() {
			t.Error("HasRoles = true for an inventory whose hosts have no role")
		}
		if got := inv.RoleNames(); !slices.Equal(got, []string{DefaultRole}) {
			t.Errorf("RoleNames = %v", got)
		}
		h := inv.Hosts[0]
		if inv.RoleOf(h) != DefaultRole || !inv.HostBalanced(h) || inv.HostTemplate(h, CmdStop) != inv.Template(CmdStop) ||
			inv.RoleHealth(DefaultRole) != inv.Health || len(inv.RoleBatches(DefaultRole)) != len(inv.Rollout.Batches) {
			t.Errorf("the implicit role is not the fleet's settings")
		}
	}
	inv, err := Parse("fleet.yaml", []byte(base+"roles: {default: {health: {timeout: 9s}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !inv.HasRoles() || inv.RoleHealth(DefaultRole).Timeout != 9*time.Second {
		t.Errorf("roles.default does not apply to hosts without a role: %v %+v", inv.HasRoles(), inv.RoleHealth(DefaultRole))
	}
}

func TestRolesBadInput(t *testing.T) {
	cases := []struct {
		name string
		edit func(string) string
		want string
		line int
	}{
		{"unknown role on a host", func(s string) string { return strings.Replace(s, "role: worker}", "role: wroker}", 1) },
			`fleet.yaml:20: hosts[2] (work1).role: unknown role "wroker" (did you mean "worker"?): declared roles are web, worker`, 20},
		{"role without roles", func(s string) string {
			return base[:strings.Index(base, "hosts:")] + "hosts:\n  - {name: web1, address: 10.0.0.11, role: web}\n"
		}, `hosts[0] (web1).role: unknown role "web": no roles are declared (add it under roles:)`, 11},
		{"role override of an unknown key", func(s string) string {
			return strings.Replace(s, "health: {stable_for: 0s}", "helth: {stable_for: 0s}", 1)
		},
			`fleet.yaml:15: roles."worker": unknown key "helth" (did you mean "health"?)`, 15},
		{"role command unknown key", func(s string) string { return strings.Replace(s, `{stop: "stop-worker",`, `{stpo: "stop-worker",`, 1) },
			`fleet.yaml:14: roles."worker".commands: unknown key "stpo" (did you mean "stop"?)`, 14},
		{"role rollout key it cannot override", func(s string) string {
			return strings.Replace(s, `rollout: {batches: ["50%"]}`, `rollout: {on_failure: pause}`, 1)
		},
			`fleet.yaml:16: roles."worker".rollout: unknown key "on_failure"`, 16},
		{"role migrate", func(s string) string {
			return strings.Replace(s, `{stop: "stop-worker",`, `{migrate: "m", stop: "stop-worker",`, 1)
		},
			`fleet.yaml:14: roles."worker".commands.migrate: migrations run once for the whole fleet: set commands.migrate at the top level, not in a role`, 14},
		{"role post_migrate", func(s string) string {
			return strings.Replace(s, `{stop: "stop-worker",`, `{post_migrate: "m", stop: "stop-worker",`, 1)
		},
			`roles."worker".commands.post_migrate: migrations run once for the whole fleet`, 14},
		{"role balancer kind", func(s string) string { return strings.Replace(s, "balancer: none", "balancer: nginx", 1) },
			`fleet.yaml:13: roles."worker".balancer: balancer "nginx": a role is either behind the fleet's balancer (leave balancer out) or not behind any (none)`, 13},
		{"role template unknown field", func(s string) string { return strings.Replace(s, `"worker-ok {{.Host}}"`, `"worker-ok {{.Hots}}"`, 1) },
			`roles."worker".commands.health: template: can't evaluate field Hots`, 14},
		{"role template missing var", func(s string) string {
			return strings.Replace(s, `"worker-ok {{.Host}}"`, `"worker-ok {{.Vars.queue}}"`, 1)
		},
			`(for host work1)`, 14},
		{"role batch zero", func(s string) string { return strings.Replace(s, `batches: ["50%"]`, `batches: [0]`, 1) },
			`roles."worker".rollout.batches[0]: batch size must be at least 1 (got 0)`, 16},
		{"role health stable_for too long", func(s string) string { return strings.Replace(s, "stable_for: 0s", "stable_for: 90s", 1) },
			`fleet.yaml:15: roles."worker".health.stable_for: stable_for 1m30s must be shorter than timeout 1m0s`, 15},
		{"role health bad duration", func(s string) string { return strings.Replace(s, "stable_for: 0s", "stable_for: soon", 1) },
			`roles."worker".health.stable_for: "soon" is not a duration`, 15},
		{"role name with shell chars", func(s string) string { return strings.Replace(s, "  worker:\n", "  \"w;x\":\n", 1) },
			`roles."w;x": role name "w;x" may hold only letters`, 12},
		{"role named together", func(s string) string { return strings.Replace(s, "roles:\n", "roles:\n  together: {}\n", 1) },
			`role name "together" is reserved`, 11},
		{"role_order unknown role", func(s string) string {
			return strings.Replace(s, "role_order: [worker]", "role_order: [worker, wbe]", 1)
		},
			`fleet.yaml:22: rollout.role_order[1]: unknown role "wbe" (did you mean "web"?)`, 22},
		{"role_order together mixed", func(s string) string {
			return strings.Replace(s, "role_order: [worker]", "role_order: [together, web]", 1)
		},
			`rollout.role_order[0]: "together" cannot be mixed with role names`, 22},
		{"role_order duplicate", func(s string) string {
			return strings.Replace(s, "role_order: [worker]", "role_order: [worker, worker]", 1)
		},
			`rollout.role_order[1]: role "worker" is already listed at role_order[0]`, 22},
		{"host role with shell chars", func(s string) string { return strings.Replace(s, "role: web}", "role: \"w b\"}", 1) },
			`hosts[0] (web1).role: role "w b" may hold only letters`, 18},
		{"roles not a mapping", func(s string) string {
			return strings.Replace(s, s[strings.Index(s, "roles:"):strings.Index(s, "hosts:")], "roles: [web, worker]\n", 1)
		}, `roles must be a mapping, not a list`, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("fleet.yaml", []byte(c.edit(withWeb(rolesBase))))
			if err == nil {
				t.Fatalf("no error; want %q", c.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Fatalf("error = %q\nwant it to contain %q", msg, c.want)
			}
			var es Errors
			if !errors.As(err, &es) || es[0].Line != c.line {
				t.Errorf("line = %v, want %d (%q)", es, c.line, msg)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(withWeb(rolesBase)))
	if err != nil {
		t.Fatal(err)
	}
	names := func(hs []Host) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return out
	}
	cases := []struct {
		sel  Selection
		want []string
		err  string
	}{
		{Selection{}, []string{"web1", "web2", "work1", "work2"}, ""},
		{Selection{Hosts: []string{"work2", "web1"}}, []string{"web1", "work2"}, ""},
		{Selection{Labels: []string{"canary"}}, []string{"web1"}, ""},
		{Selection{Roles: []string{"worker"}}, []string{"work1", "work2"}, ""},
		{Selection{Roles: []string{"worker", "web"}}, []string{"web1", "web2", "work1", "work2"}, ""},
		{Selection{Roles: []string{"web"}, Labels: []string{"canary"}}, []string{"web1"}, ""},
		{Selection{Hosts: []string{"web9", "web1"}}, nil, `--hosts: "web9" is not a host of fleet.yaml`},
		{Selection{Labels: []string{"blue"}}, nil, `--labels: no host of fleet.yaml has label "blue"`},
		{Selection{Roles: []string{"db"}}, nil, `--roles: "db" is not a role of fleet.yaml`},
		{Selection{Roles: []string{"worker"}, Labels: []string{"canary"}}, nil, "--labels canary --roles worker picks no host"},
	}
	for _, c := range cases {
		got, err := inv.Select(c.sel)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrSelection) {
				t.Errorf("%s: err = %v, want %q", c.sel, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.sel, err)
		case !slices.Equal(names(got), c.want):
			t.Errorf("%s: %v, want %v", c.sel, names(got), c.want)
		}
	}
	if got := (Selection{Hosts: []string{"a"}, Roles: []string{"b"}}).Flags(); got != "--hosts and --roles" {
		t.Errorf("Flags = %q", got)
	}
	// The default role is selectable by name.
	plain, err := Parse("fleet.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := plain.Select(Selection{Roles: []string{DefaultRole}}); err != nil || len(got) != 3 {
		t.Errorf("--roles default: %v %v", names(got), err)
	}
}
