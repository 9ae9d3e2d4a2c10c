package fleet

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const envBase = `app: shop
path: /srv/shop
ssh: {user: deploy, port: 22}
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands:
  stop: "stop-it"
  start: "start-it"
  health: "check {{.Vars.port}}"
balancer: {kind: none}
health: {timeout: 30s, interval: 2s}
vars: {port: "8080", region: eu}
hosts:
  - {name: web1, address: 10.0.0.11}
  - {name: web2, address: 10.0.0.12}
environments:
  staging:
    ssh: {user: stg}
    vars: {port: "9090"}
    hosts:
      - {name: stg1, address: 10.1.0.11}
  production:
    health: {timeout: 90s}
`

func TestEnvironmentOverlay(t *testing.T) {
	inv, err := ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte(envBase)}, "staging")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Environment != "staging" || inv.File != "fleet.yaml" {
		t.Errorf("environment %q file %q", inv.Environment, inv.File)
	}
	// Mappings merge key by key; lists are replaced whole.
	if inv.SSH.User != "stg" || inv.SSH.Port != 22 {
		t.Errorf("ssh = %+v, want user stg (overlay) and port 22 (base)", inv.SSH)
	}
	if inv.Vars["port"] != "9090" || inv.Vars["region"] != "eu" {
		t.Errorf("vars = %v, want port from the overlay and region from the base", inv.Vars)
	}
	if len(inv.Hosts) != 1 || inv.Hosts[0].Name != "stg1" {
		t.Errorf("hosts = %+v, want the overlay's list only", inv.Hosts)
	}
	if inv.Health.Timeout != 30*time.Second || inv.Health.Interval != 2*time.Second {
		t.Errorf("health = %+v, want the base's", inv.Health)
	}

	// No environment chosen: the base.
	inv, err = ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte(envBase)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Environment != "" || inv.SSH.User != "deploy" || len(inv.Hosts) != 2 || inv.Health.Timeout != 30*time.Second {
		t.Errorf("base: env %q user %q hosts %d", inv.Environment, inv.SSH.User, len(inv.Hosts))
	}

	inv, err = ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte(envBase)}, "production")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Health.Timeout != 90*time.Second || inv.Health.Interval != 2*time.Second || len(inv.Hosts) != 2 || inv.SSH.User != "deploy" {
		t.Errorf("production: health %+v hosts %d user %q", inv.Health, len(inv.Hosts), inv.SSH.User)
	}
}

func TestLayeredFiles(t *testing.T) {
	over := `ssh: {user: site}
health: {interval: ~}
environments:
  staging: {vars: {region: us}}
`
	inv, err := ParseFiles([]string{"fleet.yaml", "site.yaml"}, [][]byte{[]byte(envBase), []byte(over)}, "staging")
	if err != nil {
		t.Fatal(err)
	}
	// site.yaml's ssh.user, then staging's (from fleet.yaml) wins over it.
	if inv.SSH.User != "stg" {
		t.Errorf("ssh.user = %q", inv.SSH.User)
	}
	// environments merge across files too: staging from both.
	if inv.Vars["region"] != "us" || inv.Vars["port"] != "9090" {
		t.Errorf("vars = %v", inv.Vars)
	}
	// null removes a key: the default applies again.
	if inv.Health.Interval != DefaultHealthInterval || inv.Health.Timeout != 30*time.Second {
		t.Errorf("health = %+v", inv.Health)
	}
	if strings.Join(inv.Files, ",") != "fleet.yaml,site.yaml" {
		t.Errorf("files = %v", inv.Files)
	}
	// Without environments, files merge in order and no environment is needed.
	plain := strings.Split(envBase, "environments:")[0]
	inv, err = ParseFiles([]string{"a.yaml", "b.yaml"}, [][]byte{[]byte(plain), []byte("keep_releases: 7\nvars: {port: \"1\"}\n")}, "")
	if err != nil {
		t.Fatal(err)
	}
	if inv.KeepReleases != 7 || inv.Vars["port"] != "1" || inv.Vars["region"] != "eu" || inv.Environment != "" {
		t.Errorf("merged: keep %d vars %v env %q", inv.KeepReleases, inv.Vars, inv.Environment)
	}
}

// TestLayerMistakes: every mistake names the file and line of the value
// that is wrong, whichever layer it came from.
func TestLayerMistakes(t *testing.T) {
	plain := strings.Split(envBase, "environments:")[0]
	for _, tc := range []struct {
		name  string
		files []string // contents of a.yaml, b.yaml, ...
		env   string
		want  []string // each must appear in the error
		kind  error
	}{
		{"bad value in the selected environment", []string{envBase + "    rollout: {on_failure: explode}\n"}, "production",
			[]string{"a.yaml:23: rollout.on_failure: on_failure must be"}, ErrInvalid},
		{"bad duration in the selected environment", []string{strings.Replace(envBase, "timeout: 90s", "timeout: 90x", 1)}, "production",
			[]string{"a.yaml:22: health.timeout: \"90x\" is not a duration"}, ErrInvalid},
		{"mistake in an environment not selected", []string{strings.Replace(envBase, "timeout: 90s", "timeuot: 90s", 1)}, "staging",
			[]string{"a.yaml:22: environments.production.health: unknown key \"timeuot\" (did you mean \"timeout\"?)"}, ErrInvalid},
		{"bad value in the second file", []string{plain, "ssh:\n  port: many\n"}, "",
			[]string{"b.yaml:2: ssh.port: \"many\" is not a whole number"}, ErrInvalid},
		{"unknown key in the second file", []string{plain, "\nhelth: {timeout: 1s}\n"}, "",
			[]string{"b.yaml:2: unknown key \"helth\" (did you mean \"health\"?)"}, ErrInvalid},
		{"validation error from the second file", []string{plain, "keep_releases: 1\n"}, "",
			[]string{"b.yaml:1: keep_releases: keep_releases must be at least 2"}, ErrInvalid},
		{"base value still named in the first file", []string{strings.Replace(plain, "interval: 2s", "interval: 2", 1), "keep_releases: 3\n"}, "",
			[]string{"a.yaml:10: health.interval: \"2\" is not a duration"}, ErrInvalid},
		{"syntax error in the second file", []string{plain, "ssh: {user: [\n"}, "",
			[]string{"b.yaml:"}, ErrInvalid},
		{"second file not a mapping", []string{plain, "- a\n- b\n"}, "",
			[]string{"b.yaml:1: the document must be a mapping of keys, not a list"}, ErrInvalid},
		{"unknown environment", []string{envBase}, "prod",
			[]string{`a.yaml:15: environments: unknown environment "prod": the inventory defines production, staging`}, ErrUnknownEnvironment},
		{"mistake in an environment, none chosen", []string{strings.Replace(envBase, "timeout: 90s", "timeout: [90s]", 1)}, "",
			[]string{"a.yaml:22: environments.production.health.timeout: must be a single value, not a list"}, ErrInvalid},
		{"environment given, none defined", []string{plain}, "staging",
			[]string{`a.yaml: unknown environment "staging": the inventory defines no environments`}, ErrUnknownEnvironment},
		{"environments not a mapping", []string{plain + "environments: [staging]\n"}, "staging",
			[]string{"a.yaml:15: environments: environments must be a mapping of environment names to overlays, not a list"}, ErrInvalid},
		{"environment not a mapping", []string{plain + "environments:\n  staging: yes\n"}, "staging",
			[]string{"a.yaml:16: environments.staging: an environment must be a mapping of inventory keys, not the value \"yes\""}, ErrInvalid},
		{"duplicate environment", []string{plain + "environments:\n  staging: {}\n  staging: {}\n"}, "staging",
			[]string{"a.yaml:17: environments.staging: duplicate environment (first at line 16)"}, ErrInvalid},
		{"bad environment name", []string{plain + "environments:\n  \"st age\": {}\n"}, "staging",
			[]string{"a.yaml:16: environments.st age: environment name \"st age\" may hold only letters"}, ErrInvalid},
		{"nested environments", []string{plain + "environments:\n  staging:\n    environments: {}\n"}, "staging",
			[]string{"a.yaml:17: environments.staging: an environment cannot define environments"}, ErrInvalid},
		{"wrong kind in an environment of the second file", []string{envBase, "environments:\n  staging:\n    hosts: {web1: x}\n"}, "staging",
			[]string{"b.yaml:3: hosts: hosts must be a list, not a mapping"}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			var data [][]byte
			for i, c := range tc.files {
				names = append(names, string(rune('a'+i))+".yaml")
				data = append(data, []byte(c))
			}
			_, err := ParseFiles(names, data, tc.env)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
			if !errors.Is(err, tc.kind) || !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v) false for %v", err, tc.kind)
			}
		})
	}
}

// Problems in several layers come file by file, in merge order, each file's
// in line order.
func TestLayerErrorsInFileOrder(t *testing.T) {
	plain := strings.Split(envBase, "environments:")[0]
	a := strings.Replace(plain, "interval: 2s", "interval: 2", 1) // line 10
	_, err := ParseFiles([]string{"a.yaml", "b.yaml"}, [][]byte{[]byte(a), []byte("keep_releases: x\n")}, "")
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 || es[0].File != "a.yaml" || es[0].Line != 10 || es[1].File != "b.yaml" || es[1].Line != 1 {
		t.Fatalf("errors in the wrong order:\n%v", err)
	}
}

// require_environment: an operator who forgets -e is refused (exit 2, the
// key's line named) instead of deploying the base hosts.
func TestRequireEnvironment(t *testing.T) {
	src := "require_environment: true\n" + envBase
	_, err := ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte(src)}, "")
	if !errors.Is(err, ErrEnvironmentRequired) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("no environment chosen: err = %v, want ErrEnvironmentRequired", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "fleet.yaml:1: require_environment:") || !strings.Contains(msg, "production, staging") || !strings.Contains(msg, "--env") {
		t.Errorf("message %q: want the file:line, the key, the environments and how to choose", msg)
	}
	inv, err := ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte(src)}, "staging")
	if err != nil || inv.Hosts[0].Name != "stg1" || !inv.RequireEnvironment {
		t.Fatalf("with staging chosen: %v", err)
	}
	// Only the chosen overlay counts: a later -f layer may set the key too.
	_, err = ParseFiles([]string{"a.yaml", "b.yaml"}, [][]byte{[]byte(envBase), []byte("require_environment: true\n")}, "")
	if !errors.Is(err, ErrEnvironmentRequired) || !strings.Contains(err.Error(), "b.yaml:1") {
		t.Fatalf("key in the second layer: %v", err)
	}
	// false, or left out: the base, as before.
	if _, err := ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte("require_environment: false\n" + envBase)}, ""); err != nil {
		t.Fatalf("require_environment: false: %v", err)
	}
	// The key without environments is a mistake, not a silent no-op.
	noEnv := strings.Split(envBase, "environments:")[0]
	_, err = ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte("require_environment: true\n" + noEnv)}, "")
	if err == nil || !strings.Contains(err.Error(), "fleet.yaml:1: require_environment: require_environment is true but the inventory defines no environments") {
		t.Fatalf("key without environments: %v", err)
	}
}
