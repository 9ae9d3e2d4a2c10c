package observe

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
		"web1": "current=/srv/shop/releases/1.0.0\nrelease=1.0.0\nversion=1.0.0\n",
		"web2": "current=/srv/shop/releases/1.0.0\nrelease=1.0.0\nversion=1.0.0 $(touch /tmp/x)\n",
		"web3": "current=/srv/shop/releases/1.0.0;reboot\nrelease=1.0.0\nversion=\n",
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

// shRunner runs the observe script in a local sh, so the script itself is
// what is tested, not a fake's idea of its output.
type shRunner struct{}

func (shRunner) Output(ctx context.Context, _ string, script string) (string, error) {
	out, err := exec.CommandContext(ctx, "sh", "-c", script).Output()
	return string(out), err
}

// Releases are read one per line: a directory name with a space stays one
// name, hidden and relctl-tmp directories and plain files are skipped, and
// a failing health command reports its last line without a temp file.
func TestObserveScriptOnARealShell(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"1.0.0", "1.1.0", "odd name", ".incoming", "2.0.0.relctl-tmp-1"} {
		if err := os.MkdirAll(filepath.Join(dir, "releases", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "releases", "shop.tar.gz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "releases", "1.1.0"), filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(inv, "/srv/shop", dir)
	src = strings.ReplaceAll(src, "health: check", `health: "echo first; echo 'last line' >&2; exit 1"`)
	src = strings.ReplaceAll(src, `version: "app --version"`, `version: "echo 1.1.0"`)
	i, err := fleet.Parse("fleet.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := Fleet(context.Background(), i, shRunner{}, Options{Health: true})
	h := hosts[0]
	if h.Error != "" || h.Version != "1.1.0" {
		t.Fatalf("web1: %+v", h)
	}
	if want := []string{"1.0.0", "1.1.0", "odd name"}; !slices.Equal(h.Releases, want) {
		t.Errorf("releases %q, want %q", h.Releases, want)
	}
	if h.HealthOK || h.Health != "failing: last line" {
		t.Errorf("health %q ok=%v, want failing: last line", h.Health, h.HealthOK)
	}
}
