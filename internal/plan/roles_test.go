package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/fleet"
)

// rolesInventory: web1..web3 behind HAProxy (web1 the canary), work1 and
// work2 with balancer: none and their own batches; order is role_order.
func rolesInventory(t testing.TB, order string) *fleet.Inventory {
	t.Helper()
	src := `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands:
  stop: stop
  start: start
  health: check
  version: cat VERSION
  migrate: migrate
  post_migrate: migrate --post
balancer: {kind: haproxy, backend: shop, endpoints: [{tcp: "127.0.0.1:9999"}]}
releases:
  "2.0.0": {upgrade_from: ">=1.4.0", downgrade_to: ["1.4.0"]}
  "1.4.0": {upgrade_from: ">=1.0.0", downgrade_to: ["1.3.2"]}
roles:
  web: {}
  worker:
    balancer: none
    commands: {stop: stop-worker}
    health: {stable_for: 0s}
    rollout: {batches: [2]}
rollout: {batches: [1, 2]` + order + `}
hosts:
  - {name: work1, address: 10.0.1.1, role: worker}
  - {name: web1, address: 10.0.0.1, role: web, labels: [canary]}
  - {name: web2, address: 10.0.0.2, role: web}
  - {name: web3, address: 10.0.0.3, role: web}
  - {name: work2, address: 10.0.1.2, role: worker}
`
	inv, err := fleet.Parse("fleet.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// layout is the plan's steps in order, deploy steps as "d:host@batch"
// (with the hop's target after a second @ when there are several hops).
func layout(p *Plan) string {
	var out []string
	for _, s := range p.Steps {
		switch s.Kind {
		case StepDeploy:
			x := fmt.Sprintf("d:%s@%d", s.Host, s.Batch)
			if len(p.Hops) > 1 {
				x += "@" + s.To
			}
			out = append(out, x)
		case StepStage, StepCleanup:
			if len(out) > 0 && out[len(out)-1] == string(s.Kind) {
				continue
			}
			out = append(out, string(s.Kind))
		default:
			out = append(out, s.ID)
		}
	}
	return strings.Join(out, " ")
}

func TestRolesPlan(t *testing.T) {
	webActs := "drain wait-idle stop switch start health version enable verify"
	workActs := "stop switch start health version"
	cases := []struct {
		name, order, upfrom, to string
		want                    string
	}{
		{"default order: roles as they first appear in hosts", "", "1.3.2", "1.4.0",
			"preflight lock stage migrate d:work1@1 d:work2@1 gate/canary d:web1@2 d:web2@3 d:web3@3 post-migrate cleanup unlock"},
		{"web then worker", ", role_order: [web, worker]", "1.3.2", "1.4.0",
			"preflight lock stage migrate d:web1@1 gate/canary d:web2@2 d:web3@2 d:work1@3 d:work2@3 post-migrate cleanup unlock"},
		{"worker listed, web follows", ", role_order: [worker]", "1.3.2", "1.4.0",
			"preflight lock stage migrate d:work1@1 d:work2@1 gate/canary d:web1@2 d:web2@3 d:web3@3 post-migrate cleanup unlock"},
		{"together", ", role_order: together", "1.3.2", "1.4.0",
			"preflight lock stage migrate d:work1@1 d:work2@1 d:web1@1 gate/canary d:web2@2 d:web3@2 post-migrate cleanup unlock"},
		{"web then worker, two hops", ", role_order: [web, worker]", "1.3.2", "2.0.0",
			"preflight lock stage migrate@1.4.0 d:web1@1@1.4.0 gate/canary@1.4.0 d:web2@2@1.4.0 d:web3@2@1.4.0 d:work1@3@1.4.0 d:work2@3@1.4.0 post-migrate@1.4.0 " +
				"migrate@2.0.0 d:web1@1@2.0.0 gate/canary@2.0.0 d:web2@2@2.0.0 d:web3@2@2.0.0 d:work1@3@2.0.0 d:work2@3@2.0.0 post-migrate@2.0.0 cleanup unlock"},
		{"together, two hops", ", role_order: together", "1.3.2", "2.0.0",
			"preflight lock stage migrate@1.4.0 d:work1@1@1.4.0 d:work2@1@1.4.0 d:web1@1@1.4.0 gate/canary@1.4.0 d:web2@2@1.4.0 d:web3@2@1.4.0 post-migrate@1.4.0 " +
				"migrate@2.0.0 d:work1@1@2.0.0 d:work2@1@2.0.0 d:web1@1@2.0.0 gate/canary@2.0.0 d:web2@2@2.0.0 d:web3@2@2.0.0 post-migrate@2.0.0 cleanup unlock"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := rolesInventory(t, c.order)
			p, err := Build(inv, Assume(inv, c.upfrom), Options{To: c.to, CanVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := layout(p); got != c.want {
				t.Fatalf("steps:\n got %s\nwant %s", got, c.want)
			}
			if err := p.Check(); err != nil {
				t.Fatal(err)
			}
			// One plan, one lock: a single lock and unlock for the fleet,
			// and migrations once per hop.
			count := func(k StepKind) int {
				n := 0
				for _, s := range p.Steps {
					if s.Kind == k {
						n++
					}
				}
				return n
			}
			if count(StepLock) != 1 || count(StepUnlock) != 1 || count(StepMigrate) != len(p.Hops) || count(StepPostMigrate) != len(p.Hops) {
				t.Errorf("lock/unlock/migrate/post-migrate = %d/%d/%d/%d", count(StepLock), count(StepUnlock), count(StepMigrate), count(StepPostMigrate))
			}
			for _, s := range p.Steps {
				if s.Kind != StepDeploy {
					continue
				}
				want := webActs
				if strings.HasPrefix(s.Host, "work") {
					want = workActs
				}
				if got := joinActions(p.ActionsFor(s.Host)); got != want {
					t.Errorf("%s runs %s, want %s", s.Host, got, want)
				}
				if s.Role == "" || !strings.HasPrefix(s.Host, map[string]string{"web": "web", "worker": "work"}[s.Role]) {
					t.Errorf("%s has role %q", s.ID, s.Role)
				}
			}
			if _, _, st := p.HealthFor("work1"); st != 0 {
				t.Errorf("worker stable_for = %s, want its role's 0s", st)
			}
			if _, _, st := p.HealthFor("web1"); st != p.Settings.StableFor {
				t.Errorf("web stable_for = %s, want the fleet's", st)
			}
			// The rendering has one section per role (or one "together").
			txt := RenderText(p)
			if strings.Contains(c.order, "together") {
				if !strings.Contains(txt, "roles worker, web together") {
					t.Errorf("no together section:\n%s", txt)
				}
			} else if !strings.Contains(txt, "┄┄ role web: 3 hosts, behind the balancer ┄┄") ||
				!strings.Contains(txt, "┄┄ role worker: 2 hosts, not behind the balancer (no drain, wait-idle, enable or verify) ┄┄") {
				t.Errorf("no role sections:\n%s", txt)
			}
			if !strings.Contains(txt, "Each worker host: stop → switch current → start → healthy for 0s") ||
				!strings.Contains(txt, "Each web host: drain → wait idle") {
				t.Errorf("no per-role host sequence:\n%s", txt)
			}
			// A saved plan rebuilds to the same plan, roles included.
			js, _ := MarshalJSONIndent(p)
			q, err := UnmarshalJSON(js)
			if err != nil {
				t.Fatal(err)
			}
			if d := Diff(p, q); d != "" {
				t.Errorf("round trip: %s", d)
			}
		})
	}
}

func joinActions(as []Action) string {
	var s []string
	for _, a := range as {
		s = append(s, string(a))
	}
	return strings.Join(s, " ")
}

// A rollback of a roles plan keeps each host's own sequence: a worker goes
// back without drain or enable.
func TestRolesRollbackAndRepair(t *testing.T) {
	inv := rolesInventory(t, ", role_order: [web, worker]")
	p, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "1.4.0", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	started := map[string]bool{}
	for _, s := range p.Steps {
		if s.Kind == StepDeploy {
			started[s.ID] = true
		}
	}
	rb, err := Rollback(inv, p, Progress{Started: started})
	if err != nil {
		t.Fatal(err)
	}
	if got := joinActions(rb.ActionsFor("work2")); got != "stop switch start health version" {
		t.Errorf("worker rollback actions: %s", got)
	}
	if got := joinActions(rb.ActionsFor("web2")); !strings.HasPrefix(got, "drain ") {
		t.Errorf("web rollback actions: %s", got)
	}
	if got := layout(rb); got != "preflight lock d:work2@1 d:work1@1 d:web3@2 d:web2@2 d:web1@3 unlock" {
		t.Errorf("rollback steps: %s", got)
	}
	rp, err := Repair(inv, Assume(inv, "1.4.0"), []string{"work1", "web1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := joinActions(rp.ActionsFor("work1")); got != "start health version" {
		t.Errorf("worker repair actions: %s", got)
	}
	if got := joinActions(rp.ActionsFor("web1")); got != "start health version enable verify" {
		t.Errorf("web repair actions: %s", got)
	}
}

func observedAs(inv *fleet.Inventory, versions map[string]string, def string) Observed {
	o := Observed{}
	for _, h := range inv.Hosts {
		v, ok := versions[h.Name]
		if !ok {
			v = def
		}
		st := HostState{Name: h.Name, Version: v, Reachable: v != "down"}
		if v == "down" {
			st.Version, st.Error = "", "connection refused"
		}
		o.Hosts = append(o.Hosts, st)
	}
	return o
}

func TestSelectionPlan(t *testing.T) {
	cases := []struct {
		name     string
		sel      fleet.Selection
		versions map[string]string // default 1.3.2
		to       string
		want     string // layout, or the error
		held     string // Selection.Held[0]; "" = none
		leftOut  []string
	}{
		{"hosts: post-migrate refused on a partial fleet", fleet.Selection{Hosts: []string{"web1", "web3"}}, nil, "1.4.0",
			"preflight lock stage migrate d:web1@1 gate/canary d:web3@2 cleanup unlock",
			"post-migrate skipped: work1, web2, work2 are not selected and still run 1.3.2 — run again without --hosts to finish",
			[]string{"work1", "web2", "work2"}},
		{"roles worker: migrations host left out is staged", fleet.Selection{Roles: []string{"worker"}}, nil, "1.4.0",
			"preflight lock stage migrate d:work1@1 d:work2@1 cleanup unlock",
			"post-migrate skipped: web1, web2, web3 are not selected and still run 1.3.2 — run again without --roles to finish",
			[]string{"web1", "web2", "web3"}},
		{"labels canary", fleet.Selection{Labels: []string{"canary"}}, nil, "1.4.0",
			"preflight lock stage migrate d:web1@1 cleanup unlock",
			"post-migrate skipped: work1, web2, web3, work2 are not selected and still run 1.3.2 — run again without --labels to finish",
			[]string{"work1", "web2", "web3", "work2"}},
		{"the rest of a fleet already on the target: post-migrate runs", fleet.Selection{Roles: []string{"web"}},
			map[string]string{"work1": "1.4.0", "work2": "1.4.0"}, "1.4.0",
			"preflight lock stage migrate d:web1@1 gate/canary d:web2@2 d:web3@2 post-migrate cleanup unlock", "", []string{"work1", "work2"}},
		{"a left-out host that cannot be observed holds post-migrate", fleet.Selection{Roles: []string{"web"}},
			map[string]string{"work1": "1.4.0", "work2": "down"}, "1.4.0",
			"preflight lock stage migrate d:web1@1 gate/canary d:web2@2 d:web3@2 cleanup unlock",
			"post-migrate skipped: work2 is not selected and could not be observed — run again without --roles to finish", []string{"work1", "work2"}},
		{"selection × multi-hop: refused behind the required stop", fleet.Selection{Hosts: []string{"web1"}}, nil, "2.0.0",
			"the path 1.3.2 → 1.4.0 → 2.0.0 needs the whole fleet on 1.4.0 before the hop to 2.0.0 starts, and work1, web2, web3, work2 are not selected and still run 1.3.2: upgrade the selection with --to 1.4.0 first, or run without --hosts", "", nil},
		{"selection × multi-hop: the rest already past the stop", fleet.Selection{Roles: []string{"worker"}},
			map[string]string{"web1": "1.4.0", "web2": "1.4.0", "web3": "1.4.0"}, "2.0.0",
			"preflight lock stage migrate@1.4.0 d:work1@1@1.4.0 d:work2@1@1.4.0 post-migrate@1.4.0 migrate@2.0.0 d:work1@1@2.0.0 d:work2@1@2.0.0 cleanup unlock",
			"post-migrate skipped: web1, web2, web3 are not selected and still run 1.4.0 — run again without --roles to finish",
			[]string{"web1", "web2", "web3"}},
		{"unknown host", fleet.Selection{Hosts: []string{"web9"}}, nil, "1.4.0", `--hosts: "web9" is not a host of fleet.yaml`, "", nil},
		{"unknown role", fleet.Selection{Roles: []string{"db"}}, nil, "1.4.0", `--roles: "db" is not a role of fleet.yaml`, "", nil},
		{"unknown label", fleet.Selection{Labels: []string{"blue"}}, nil, "1.4.0", `--labels: no host of fleet.yaml has label "blue"`, "", nil},
		{"selected hosts on two versions", fleet.Selection{Roles: []string{"web"}}, map[string]string{"web2": "1.0.0"}, "1.4.0", "mixed fleet", "", nil},
		{"left-out hosts on other versions do not make a mixed fleet", fleet.Selection{Roles: []string{"web"}}, map[string]string{"work1": "1.0.0"}, "1.4.0",
			"preflight lock stage migrate d:web1@1 gate/canary d:web2@2 d:web3@2 cleanup unlock",
			"post-migrate skipped: work1 is not selected and still runs 1.0.0; work2 is not selected and still runs 1.3.2 — run again without --roles to finish", []string{"work1", "work2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := rolesInventory(t, ", role_order: [web, worker]")
			p, err := Build(inv, observedAs(inv, c.versions, "1.3.2"), Options{To: c.to, CanVerify: true, Select: c.sel})
			if strings.HasPrefix(c.want, "preflight") {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want %q", err, c.want)
				}
				if strings.Contains(c.name, "multi-hop") && !errors.Is(err, ErrSelectionPath) {
					t.Errorf("not ErrSelectionPath: %v", err)
				}
				if strings.HasPrefix(c.name, "unknown") && !errors.Is(err, fleet.ErrSelection) {
					t.Errorf("not fleet.ErrSelection: %v", err)
				}
				return
			}
			if got := layout(p); got != c.want {
				t.Fatalf("steps:\n got %s\nwant %s", got, c.want)
			}
			if p.Selection == nil {
				t.Fatal("no Selection in the plan")
			}
			var held string
			if len(p.Selection.Held) > 0 {
				held = p.Selection.Held[0]
			}
			if held != c.held {
				t.Errorf("held:\n got %q\nwant %q", held, c.held)
			}
			var left []string
			for _, s := range p.Selection.LeftOut {
				left = append(left, s.Host)
			}
			if !slices.Equal(left, c.leftOut) {
				t.Errorf("left out %v, want %v", left, c.leftOut)
			}
			// No step touches a left-out host, except staging the
			// migrations host (work1, the first host) when it is left out.
			for _, s := range p.Steps {
				if slices.Contains(left, s.Host) && !(s.Kind == StepStage && s.Host == inv.Migrations.Host) && s.Kind != StepLock && s.Kind != StepUnlock && s.Kind != StepMigrate && s.Kind != StepPostMigrate {
					t.Errorf("step %s touches left-out host %s", s.ID, s.Host)
				}
			}
			txt := RenderText(p)
			if !strings.Contains(txt, "selected:") || !strings.Contains(txt, "left out:") || (c.held != "" && !strings.Contains(txt, c.held)) {
				t.Errorf("the plan does not name the selection, what it leaves out, or what it holds:\n%s", txt)
			}
			if slices.Contains(left, inv.Migrations.Host) {
				if _, ok := p.Step("stage/" + inv.Migrations.Host); !ok {
					t.Error("the left-out migrations host is not staged")
				}
			}
		})
	}
}

func TestKeepSelected(t *testing.T) {
	inv := rolesInventory(t, "")
	p, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "1.4.0", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	started := map[string]bool{}
	for _, s := range p.Steps {
		if s.Kind == StepDeploy {
			started[s.ID] = true
		}
	}
	rb, err := Rollback(inv, p, Progress{Started: started})
	if err != nil {
		t.Fatal(err)
	}
	q, err := KeepSelected(inv, rb, fleet.Selection{Roles: []string{"worker"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := q.DeployHosts(); !slices.Equal(got, []string{"work1", "work2"}) && !slices.Equal(got, []string{"work2", "work1"}) {
		t.Errorf("kept %v", got)
	}
	if len(q.Selection.LeftOut) != 3 || !strings.Contains(strings.Join(q.Notes, "\n"), "not selected, left on 1.4.0: ") {
		t.Errorf("left out %v, notes %v", q.Selection.LeftOut, q.Notes)
	}
	if _, err := KeepSelected(inv, rb, fleet.Selection{Hosts: []string{"nope"}}); !errors.Is(err, fleet.ErrSelection) {
		t.Errorf("unknown host: %v", err)
	}
}

// Without a post_migrate command a selection holds nothing back: the plan
// still names what it leaves out, and a run of it can end succeeded.
func TestSelectionWithoutPostMigrate(t *testing.T) {
	src := strings.Replace(`app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: stop, start: start, health: check, post_migrate: post}
balancer: {kind: none}
hosts:
  - {name: web1, address: 10.0.0.1}
  - {name: web2, address: 10.0.0.2}
`, ", post_migrate: post", "", 1)
	inv, err := fleet.Parse("fleet.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(inv, observedAs(inv, nil, "1.0.0"), Options{To: "1.1.0", Select: fleet.Selection{Hosts: []string{"web2"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.HeldBack()) != 0 || len(p.Selection.LeftOut) != 1 || p.Selection.LeftOut[0].Host != "web1" {
		t.Errorf("held %v, left out %+v", p.HeldBack(), p.Selection.LeftOut)
	}
	if got := p.DeployHosts(); !slices.Equal(got, []string{"web2"}) {
		t.Errorf("deploys %v", got)
	}
	// web1 (the migrations and lock host) is not staged: no migration runs.
	if _, ok := p.Step("stage/web1"); ok {
		t.Error("staged the left-out lock host with no migration to run")
	}
}
