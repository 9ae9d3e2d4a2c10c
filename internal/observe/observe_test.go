package observe

import (
	"context"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
)

type fakeRunner map[string]string // host → output

func (f fakeRunner) Output(_ context.Context, host, script string) (string, error) {
	return f[host], nil
}

const inv = `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: stop, start: start, health: check, version: "app --version"}
balancer: {kind: none}
hosts:
  - {name: web1, address: 10.0.0.1}
  - {name: web2, address: 10.0.0.2}
  - {name: web3, address: 10.0.0.3}
`

func TestVersionLine(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.0":                        "1.2.0",
		"\n  1.2.0  \nbuilt by ci\n":   "1.2.0",
		"\r\n\t\n1.2.0-rc.1\r\nmore\n": "1.2.0-rc.1",
		"":                             "",
	} {
		if got := VersionLine(in); got != want {
			t.Errorf("VersionLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// What a host reports is validated like --to: shell text in a version is
// an error naming the host, and the planner refuses to plan from it.
func TestObservedVersionsValidated(t *testing.T) {
	i, err := fleet.Parse("fleet.yaml", []byte(inv))
	if err != nil {
		t.Fatal(err)
	}
	r := fakeRunner{
		"web1": "current=/srv/shop/releases/1.0.0\nreleases=1.0.0 \nversion=1.0.0\n",
		"web2": "current=/srv/shop/releases/1.0.0\nreleases=1.0.0 \nversion=1.0.0 $(touch /tmp/x)\n",
		"web3": "current=/srv/shop/releases/1.0.0;reboot\nreleases=1.0.0 \nversion=\n",
	}
	hosts, obs := Fleet(context.Background(), i, r, Options{})
	if hosts[0].Version != "1.0.0" || hosts[0].Error != "" {
		t.Errorf("web1: %+v", hosts[0])
	}
	for _, h := range hosts[1:] {
		if h.Version != "" || !strings.Contains(h.Error, "invalid version") {
			t.Errorf("%s: version %q, error %q", h.Name, h.Version, h.Error)
		}
	}
	_, err = plan.Build(i, obs, plan.Options{To: "1.1.0"})
	if err == nil || !strings.Contains(err.Error(), "web2: reports an invalid version") || !strings.Contains(err.Error(), "web3") {
		t.Errorf("plan from invalid versions: %v", err)
	}
}
