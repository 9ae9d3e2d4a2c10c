package fleet

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const base = `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands:
  stop: "stop-it"
  start: "start-it"
  health: "check {{.Vars.port}}"
balancer: {kind: none}
vars: {port: "8080"}
hosts:
  - {name: web1, address: 10.0.0.11, labels: [canary]}
  - {name: web2, address: 10.0.0.12}
  - {name: web3, address: 10.0.0.13}
`

func TestLoadExample(t *testing.T) {
	inv, err := Load("../../fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if inv.App != "shop" || len(inv.Hosts) != 5 || inv.Balancer.Kind != "haproxy" {
		t.Fatalf("unexpected inventory: %+v", inv)
	}
	if got := inv.Hosts[1].Path; got != "/opt/shop" {
		t.Errorf("web2 path = %q", got)
	}
	if got := inv.Rollout.Batches[2].String(); got != "25%" {
		t.Errorf("third batch = %q", got)
	}
	if inv.Migrations.Host != "web1" || len(inv.Releases) != 3 {
		t.Errorf("migrations/releases: %+v %+v", inv.Migrations, inv.Releases)
	}
}

func TestDefaults(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if inv.KeepReleases != 5 || inv.SSH.Port != 0 || inv.SSH.MaxParallel != 20 ||
		inv.Health.Timeout != 60*time.Second || inv.Rollout.OnFailure != "rollback" ||
		!*inv.Rollout.PauseAfterCanary || inv.Emergency.DrainTimeout != 5*time.Second ||
		inv.Migrations.Host != "web1" || inv.Hosts[1].Server != "web2" {
		t.Errorf("defaults not applied: %+v", inv)
	}
}

func TestServerAlive(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	// Left out: zero, so the transport reads ssh_config, then 15s × 3.
	if inv.SSH.ServerAliveInterval != 0 || inv.SSH.ServerAliveCountMax != 0 {
		t.Errorf("left out: %s × %d", inv.SSH.ServerAliveInterval, inv.SSH.ServerAliveCountMax)
	}
	inv, err = Parse("fleet.yaml", []byte(strings.Replace(base, "app: shop", "app: shop\nssh: {server_alive_interval: 5s, server_alive_count_max: 6}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if inv.SSH.ServerAliveInterval != 5*time.Second || inv.SSH.ServerAliveCountMax != 6 {
		t.Errorf("set: %s × %d", inv.SSH.ServerAliveInterval, inv.SSH.ServerAliveCountMax)
	}
	inv, err = Load("../../fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if inv.SSH.ServerAliveInterval != 15*time.Second || inv.SSH.ServerAliveCountMax != 3 {
		t.Errorf("example: %s × %d", inv.SSH.ServerAliveInterval, inv.SSH.ServerAliveCountMax)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(string) string
		want   string // substring of the error
		line   int    // expected line of the first error, 0 = don't check
		wantIn string // another substring, optional
	}{
		{"yaml syntax", func(s string) string { return s + "hosts: [\n" }, "YAML:", 0, "fleet.yaml:"},
		{"bad indentation", func(s string) string { return strings.Replace(s, "  start:", " start:", 1) }, "fleet.yaml:", 0, "YAML"},
		{"unknown key", func(s string) string { return strings.Replace(s, "app: shop", "app: shop\nkeep_relases: 3", 1) }, `unknown key "keep_relases" (did you mean "keep_releases"?)`, 2, ""},
		{"unknown host key", func(s string) string {
			return strings.Replace(s, "{name: web2, address: 10.0.0.12}", "{name: web2, adress: 10.0.0.12}", 1)
		}, `hosts[1] (web2): unknown key "adress" (did you mean "address"?)`, 12, ""},
		{"missing address", func(s string) string {
			return strings.Replace(s, "{name: web3, address: 10.0.0.13}", "{name: web3}", 1)
		}, "fleet.yaml:13: hosts[2] (web3): address is required", 13, ""},
		{"missing app", func(s string) string { return strings.Replace(s, "app: shop\n", "", 1) }, "app is required", 0, ""},
		{"missing path", func(s string) string { return strings.Replace(s, "path: /srv/shop\n", "", 1) }, "path is required", 0, ""},
		{"relative path", func(s string) string { return strings.Replace(s, "path: /srv/shop", "path: srv/shop", 1) }, "must be an absolute path", 2, ""},
		{"missing start", func(s string) string { return strings.Replace(s, "  start: \"start-it\"\n", "", 1) }, "commands.start is required", 4, ""},
		{"no hosts", func(s string) string { return s[:strings.Index(s, "hosts:")] }, "at least one host is required", 0, ""},
		{"duplicate host name", func(s string) string { return strings.Replace(s, "name: web3", "name: web2", 1) }, `name "web2" is already used by hosts[1]`, 13, ""},
		{"duplicate address", func(s string) string { return strings.Replace(s, "10.0.0.13", "10.0.0.12:22", 1) }, `address "10.0.0.12:22" is already used by hosts[1] (web2)`, 13, ""},
		{"duplicate yaml key", func(s string) string { return strings.Replace(s, "app: shop", "app: shop\napp: other", 1) }, "duplicate key (first at line 1)", 2, ""},
		{"version metachar in releases", func(s string) string { return s + "releases:\n  \"1.0;rm -rf /\": {upgrade_from: \">=1.0.0\"}\n" }, "may hold only letters", 15, ""},
		{"version with space in downgrade_to", func(s string) string { return s + "releases:\n  \"2.0.0\": {downgrade_to: [\"1.0 .0\"]}\n" }, "downgrade_to[0]", 15, ""},
		{"batch zero", func(s string) string { return s + "rollout: {batches: [1, 0]}\n" }, "rollout.batches[1]: batch size must be at least 1 (got 0)", 14, ""},
		{"batch negative", func(s string) string { return s + "rollout: {batches: [-2]}\n" }, "batch size must be at least 1 (got -2)", 14, ""},
		{"batch over 100%", func(s string) string { return s + "rollout: {batches: [\"150%\"]}\n" }, "batch size 150% must be between 1% and 100%", 14, ""},
		{"batch 0%", func(s string) string { return s + "emergency: {batches: [\"0%\"]}\n" }, "emergency.batches[0]: batch size 0% must be between", 14, ""},
		{"batch garbage", func(s string) string { return s + "rollout: {batches: [lots]}\n" }, `batch size "lots" is not a number`, 14, ""},
		{"unknown balancer kind", func(s string) string { return strings.Replace(s, "kind: none", "kind: f5", 1) }, `unknown balancer kind "f5"`, 8, ""},
		{"missing balancer", func(s string) string { return strings.Replace(s, "balancer: {kind: none}\n", "", 1) }, "balancer.kind is required", 0, ""},
		{"haproxy without backend", func(s string) string {
			return strings.Replace(s, "kind: none", "kind: haproxy, endpoints: [{tcp: \"127.0.0.1:9999\"}]", 1)
		}, "balancer.backend is required", 8, ""},
		{"haproxy endpoint with both", func(s string) string {
			return strings.Replace(s, "kind: none", "kind: haproxy, backend: b, endpoints: [{tcp: \"127.0.0.1:9999\", socket: /x}]", 1)
		}, "exactly one of socket or tcp", 8, ""},
		{"template does not parse", func(s string) string { return strings.Replace(s, `"start-it"`, `"start {{.Version"`, 1) }, "commands.start: template does not parse", 6, ""},
		{"template unknown field", func(s string) string { return strings.Replace(s, `"start-it"`, `"start {{.Verison}}"`, 1) }, "can't evaluate field Verison", 6, ""},
		{"template missing var", func(s string) string { return strings.Replace(s, `"start-it"`, `"start {{.Vars.nope}}"`, 1) }, "commands.start", 6, "nope"},
		{"migrations host unknown", func(s string) string { return s + "migrations: {host: db9}\n" }, `migrations.host "db9" is not one of the hosts`, 14, ""},
		{"unknown on_failure", func(s string) string { return s + "rollout: {on_failure: retry}\n" }, `on_failure must be "rollback" or "pause", not "retry"`, 14, ""},
		{"missing artifact", func(s string) string {
			return strings.Replace(s, "artifact: {source: \"./dist/shop-{{.Version}}.tar.gz\"}\n", "", 1)
		}, "artifact.source is required", 0, ""},
		{"artifact without version", func(s string) string { return strings.Replace(s, "shop-{{.Version}}", "shop", 1) }, "must contain {{.Version}}", 3, ""},
		{"artifact bad template", func(s string) string { return strings.Replace(s, "{{.Version}}.tar.gz", "{{.Version}.tar.gz", 1) }, "artifact.source: template does not parse", 3, ""},
		{"bad duration", func(s string) string { return s + "health: {timeout: 60}\n" }, `health.timeout: "60" is not a duration`, 14, ""},
		{"bad int", func(s string) string { return strings.Replace(s, "app: shop", "app: shop\nkeep_releases: many", 1) }, `keep_releases: "many" is not a whole number`, 2, ""},
		{"hosts not a list", func(s string) string { return s[:strings.Index(s, "hosts:")] + "hosts: web1\n" }, "hosts must be a list", 10, ""},
		{"bad upgrade_from", func(s string) string { return s + "releases:\n  \"2.0.0\": {upgrade_from: \">=banana\"}\n" }, "upgrade_from", 15, ""},
		{"host name with shell chars", func(s string) string { return strings.Replace(s, "name: web3", "name: \"web3;reboot\"", 1) }, "may hold only letters", 13, ""},
		{"keep_releases 0", func(s string) string { return strings.Replace(s, "app: shop", "app: shop\nkeep_releases: 0", 1) }, "keep_releases must be at least 2", 2, ""},
		{"max_parallel 0", func(s string) string { return strings.Replace(s, "app: shop", "app: shop\nssh: {max_parallel: 0}", 1) }, "max_parallel must be at least 1", 2, ""},
		{"server_alive_interval 0", func(s string) string {
			return strings.Replace(s, "app: shop", "app: shop\nssh:\n  server_alive_interval: 0s", 1)
		}, "fleet.yaml:3: ssh.server_alive_interval: server_alive_interval must be positive (got 0s)", 3, ""},
		{"server_alive_interval negative", func(s string) string {
			return strings.Replace(s, "app: shop", "app: shop\nssh: {server_alive_interval: -5s}", 1)
		}, "server_alive_interval must be positive (got -5s)", 2, ""},
		{"server_alive_interval not a duration", func(s string) string {
			return strings.Replace(s, "app: shop", "app: shop\nssh: {server_alive_interval: 15}", 1)
		}, `ssh.server_alive_interval: "15" is not a duration`, 2, ""},
		{"server_alive_count_max 0", func(s string) string {
			return strings.Replace(s, "app: shop", "app: shop\nssh: {server_alive_count_max: 0}", 1)
		}, "ssh.server_alive_count_max: server_alive_count_max must be at least 1 (got 0)", 2, ""},
		{"keep_releases 1", func(s string) string { return strings.Replace(s, "app: shop", "app: shop\nkeep_releases: 1", 1) }, "keep_releases must be at least 2", 2, ""},
		{"empty file", func(s string) string { return "" }, "inventory is empty", 1, ""},
		{"timeout zero", func(s string) string { return s + "timeouts:\n  version: 0s\n" }, "timeouts.version: version must be positive", 15, "deadline"},
		{"timeout negative", func(s string) string { return s + "timeouts: {stop: -1s}\n" }, "timeouts.stop: stop must be positive", 14, ""},
		{"timeout forever", func(s string) string { return s + "timeouts:\n  lock: 1s\n  migrate: 48h\n" }, "timeouts.migrate: migrate 48h0m0s is longer than 24h", 16, ""},
		{"timeout unknown key", func(s string) string { return s + "timeouts: {verison: 5s}\n" }, `unknown key "verison" (did you mean "version"?)`, 14, ""},
		{"timeout not a duration", func(s string) string { return s + "timeouts: {upload: soon}\n" }, `timeouts.upload: "soon" is not a duration`, 14, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("fleet.yaml", []byte(c.edit(base)))
			if err == nil {
				t.Fatalf("no error; want %q", c.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, c.wantIn) {
				t.Fatalf("error = %q\nwant it to contain %q and %q", msg, c.want, c.wantIn)
			}
			if !strings.HasPrefix(msg, "fleet.yaml") {
				t.Errorf("error does not name the file: %q", msg)
			}
			if c.line > 0 {
				var es Errors
				if !errors.As(err, &es) || es[0].Line != c.line {
					t.Errorf("line = %v, want %d (%q)", es, c.line, msg)
				}
			}
		})
	}
}

func TestTimeoutDefaults(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(base+"timeouts: {version: 3s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	to := inv.Timeouts
	if to.Version != 3*time.Second || to.Stop != DefaultStopTimeout || to.Migrate != DefaultMigrateTimeout ||
		to.Lock != DefaultLockTimeout || to.Observe != DefaultObserveTimeout || to.Upload != DefaultUploadTimeout {
		t.Errorf("timeouts %+v", to)
	}
	if to.Version > time.Minute || to.Lock > time.Minute || to.Observe > time.Minute || to.Migrate < 10*time.Minute {
		t.Errorf("defaults must be short for version/lock/observe and long for migrations: %+v", to)
	}
}

func TestExplicitZeroStays(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(base+"health: {timeout: 5s, stable_for: 0s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Health.StableFor != 0 {
		t.Errorf("stable_for: 0s became %s", inv.Health.StableFor)
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	s := strings.Replace(base, "kind: none", "kind: f5", 1) + "rollout: {batches: [0], on_failure: retry}\n"
	_, err := Parse("fleet.yaml", []byte(s))
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
}

// TestOnePass: structural problems (unknown keys, wrong kinds, bad scalars)
// and validation problems come out together, in file order, each with its
// file:line and key path; nothing is said twice about one mistake.
func TestOnePass(t *testing.T) {
	s := strings.Replace(base, "app: shop", "app: shop\nkeep_relases: 3\nkeep_releases: many", 1)
	s = strings.Replace(s, "{name: web2, address: 10.0.0.12}", "{name: web2, adress: 10.0.0.12}", 1)
	s = strings.Replace(s, "kind: none", "kind: f5", 1)
	s = strings.Replace(s, "./dist/shop-{{.Version}}.tar.gz", "https://example.com/shop-{{.Version}}.tar.gz", 1)
	s += "rollout: {batches: [0, lots, 2, 0, 0, 0, 0, 0, 0, 0, 0], on_failure: retry}\nhealth: {timeout: soon}\n"
	_, err := Parse("fleet.yaml", []byte(s))
	want := `fleet.yaml:2: unknown key "keep_relases" (did you mean "keep_releases"?)
fleet.yaml:3: keep_releases: "many" is not a whole number
fleet.yaml:5: artifact.source: URLs are not fetched yet; give a local path template such as ./dist/shop-{{.Version}}.tar.gz (got "https://example.com/shop-{{.Version}}.tar.gz")
fleet.yaml:10: balancer.kind: unknown balancer kind "f5": use haproxy, nginx, exec or none
fleet.yaml:14: hosts[1] (web2): unknown key "adress" (did you mean "address"?)
fleet.yaml:16: rollout.batches[0]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.batches[1]: batch size "lots" is not a number or a percentage such as "25%"
fleet.yaml:16: rollout.batches[3]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.batches[4]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.batches[5]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.batches[6]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.batches[7]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.batches[8]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.batches[9]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.batches[10]: batch size must be at least 1 (got 0)
fleet.yaml:16: rollout.on_failure: on_failure must be "rollback" or "pause", not "retry"
fleet.yaml:17: health.timeout: "soon" is not a duration (such as 500ms, 30s or 2m)`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatal("not Errors")
	}
	for _, e := range es {
		if e.File != "fleet.yaml" || e.Line == 0 || !errors.Is(e, ErrInvalid) {
			t.Errorf("error without its place: %+v", e)
		}
	}
}

// TestNoEchoes: a key the walk already reported gets no second message
// from validation ("is required", "must be at least"), and the items after
// a bad list item keep their index.
func TestNoEchoes(t *testing.T) {
	cases := []struct {
		name string
		edit func(string) string
		want string // the one error
	}{
		{"misspelt required key", func(s string) string {
			return strings.Replace(s, "{name: web2, address: 10.0.0.12}", "{name: web2, adress: 10.0.0.12}", 1)
		}, `fleet.yaml:12: hosts[1] (web2): unknown key "adress" (did you mean "address"?)`},
		{"a misspelt key beside the real one hides nothing", func(s string) string {
			return strings.Replace(s, "{name: web2, address: 10.0.0.12}", "{name: web2, address: \"10.0.0.12;x\", adress: 10.0.0.12}", 1)
		}, `fleet.yaml:12: hosts[1] (web2): unknown key "adress" (did you mean "address"?)
fleet.yaml:12: hosts[1] (web2).address: address "10.0.0.12;x" holds characters an address cannot have`},
		{"required key of the wrong kind", func(s string) string { return strings.Replace(s, "app: shop", "app: [shop]", 1) },
			`fleet.yaml:1: app: must be a single value, not a list`},
		{"hosts not a list", func(s string) string { return s[:strings.Index(s, "hosts:")] + "hosts: web1\n" },
			`fleet.yaml:10: hosts: hosts must be a list, not the value "web1"`},
		{"a host that is not a mapping", func(s string) string {
			s = strings.Replace(s, "{name: web1, address: 10.0.0.11, labels: [canary]}", "web1", 1)
			return strings.Replace(s, "10.0.0.13", "10.0.0.13;x", 1)
		}, `fleet.yaml:11: hosts[0]: hosts[0] must be a mapping of keys, not the value "web1"
fleet.yaml:13: hosts[2] (web3).address: address "10.0.0.13;x" holds characters an address cannot have`},
		{"a bad batch keeps the index of the next", func(s string) string { return s + "rollout: {batches: [lots, 0]}\n" },
			`fleet.yaml:14: rollout.batches[0]: batch size "lots" is not a number or a percentage such as "25%"
fleet.yaml:14: rollout.batches[1]: batch size must be at least 1 (got 0)`},
		{"bad int keeps the default", func(s string) string { return strings.Replace(s, "app: shop", "app: shop\nkeep_releases: many", 1) },
			`fleet.yaml:2: keep_releases: "many" is not a whole number`},
		{"misspelt balancer kind key", func(s string) string { return strings.Replace(s, "kind: none", "knd: none", 1) },
			`fleet.yaml:8: balancer: unknown key "knd" (did you mean "kind"?)`},
		{"balancer not a mapping", func(s string) string { return strings.Replace(s, "balancer: {kind: none}", "balancer: none", 1) },
			`fleet.yaml:8: balancer: balancer must be a mapping of keys, not the value "none"`},
		{"commands of the wrong kind", func(s string) string { return strings.Replace(s, `start: "start-it"`, `start: [a, b]`, 1) },
			`fleet.yaml:6: commands.start: must be a single value, not a list`},
		{"the document is a list", func(string) string { return "- a\n- b\n" },
			`fleet.yaml:1: the document must be a mapping of keys, not a list`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("fleet.yaml", []byte(c.edit(base)))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("err = %v", err)
			}
			if err.Error() != c.want {
				t.Errorf("got:\n%v\nwant:\n%s", err, c.want)
			}
		})
	}
}

func TestArtifactURLs(t *testing.T) {
	for _, src := range []string{
		"https://dl.example.com/shop-{{.Version}}.tar.gz",
		"http://dl.example.com/shop-{{.Version}}.tar.gz",
		"s3://releases/shop-{{.Version}}.tar.gz",
		"file:///srv/dist/shop-{{.Version}}.tar.gz",
		" HTTPS://x/{{.Version}}",
		"{{if .Version}}https://{{end}}x/{{.Version}}", // a template that renders a URL
	} {
		s := strings.Replace(base, `"./dist/shop-{{.Version}}.tar.gz"`, `'`+src+`'`, 1)
		_, err := Parse("fleet.yaml", []byte(s))
		if err == nil {
			t.Errorf("source %q accepted", src)
			continue
		}
		if !strings.HasPrefix(err.Error(), "fleet.yaml:3: artifact.source: URLs are not fetched yet; give a local path template") || strings.Contains(err.Error(), "\n") {
			t.Errorf("source %q: %v", src, err)
		}
	}
	for _, src := range []string{"./dist/shop-{{.Version}}.tar.gz", "/srv/dist/shop:{{.Version}}.tgz", "dist/s3-{{.Version}}.tar.gz"} {
		s := strings.Replace(base, `"./dist/shop-{{.Version}}.tar.gz"`, `'`+src+`'`, 1)
		if _, err := Parse("fleet.yaml", []byte(s)); err != nil {
			t.Errorf("local source %q refused: %v", src, err)
		}
	}
}

func TestRenderQuotes(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(strings.Replace(base, `"start-it"`, `"start {{.Release}} {{.Vars.port}}"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	h := inv.Hosts[0]
	h.Vars = map[string]string{"port": "80; reboot"}
	got, err := inv.Template(CmdStart).Render(inv.HostValues(h, "1.0.0", "1.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `start /srv/shop/releases/1.1.0 '80; reboot'`; got != want {
		t.Errorf("rendered %q, want %q", got, want)
	}
}

func TestBatchOf(t *testing.T) {
	cases := []struct {
		b     BatchSize
		total int
		want  int
	}{
		{BatchSize{N: 1}, 100, 1},
		{BatchSize{N: 5}, 3, 5},
		{BatchSize{Percent: 25, IsPercent: true}, 7, 2},
		{BatchSize{Percent: 25, IsPercent: true}, 100, 25},
		{BatchSize{Percent: 1, IsPercent: true}, 3, 1},
	}
	for _, c := range cases {
		if got := c.b.Of(c.total); got != c.want {
			t.Errorf("%s of %d = %d, want %d", c.b, c.total, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("app: x\nhosts: [{name: a}]\n"))
	f.Add([]byte("rollout: {batches: [\"25%\", 0, -1]}\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("releases: {\"1\": {upgrade_from: \">=\"}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(inv.Hosts) == 0 || inv.Template(CmdStart) == nil {
			t.Fatalf("accepted an inventory without hosts or start: %+v", inv)
		}
	})
}

// ssh.port left out stays 0, so that ssh_config's Port is consulted before
// 22; written out, 0 is an error.
func TestSSHPortLeftToSSHConfig(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(base))
	if err != nil || inv.SSH.Port != 0 {
		t.Fatalf("port %d, err %v: want 0 (unset)", inv.SSH.Port, err)
	}
	if _, err := Parse("fleet.yaml", []byte("ssh: {port: 0}\n"+base)); err == nil || !strings.Contains(err.Error(), "ssh.port") {
		t.Fatalf("explicit port 0: %v", err)
	}
}
