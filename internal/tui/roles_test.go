package tui

import (
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
)

// The plan pane shows a roles plan as the text rendering does: a section
// per role and each role's own per-host sequence; and a selection's facts.
func TestPlanPaneShowsRolesAndSelection(t *testing.T) {
	inv, err := fleet.Parse("fleet.yaml", []byte(`app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: stop, start: start, health: check, post_migrate: post}
balancer: {kind: haproxy, backend: shop, endpoints: [{tcp: "127.0.0.1:9999"}]}
roles:
  web: {}
  worker: {balancer: none}
rollout: {role_order: [web, worker]}
hosts:
  - {name: web1, address: 10.0.0.1, role: web}
  - {name: web2, address: 10.0.0.2, role: web}
  - {name: work1, address: 10.0.1.1, role: worker}
`))
	if err != nil {
		t.Fatal(err)
	}
	obs := plan.Assume(inv, "1.0.0")
	obs.Offline = false
	p, err := plan.Build(inv, obs, plan.Options{To: "1.1.0", CanVerify: true, Select: fleet.Selection{Roles: []string{"web"}}})
	if err != nil {
		t.Fatal(err)
	}
	st := newStyles()
	pane := &planPane{st: &st, plan: p}
	text := strings.Join(pane.planLines(100), "\n")
	for _, want := range []string{"┄┄ role web: 2 hosts, behind the balancer ┄┄", "Each web host:", "left out:", "post-migrate skipped: work1 is not selected and still runs 1.0.0"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan pane lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Each host:") {
		t.Errorf("a roles plan shows one sequence for every host:\n%s", text)
	}
}
