package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/shell"
)

// inventoryTemplate is the demo's fleet.yaml. It uses [[ ]] delimiters
// because the command templates hold relctl's own {{ }}; every value is
// written as a JSON string, which YAML reads back unchanged.
const inventoryTemplate = `# fleet.yaml of a relctl demo, written [[.When]].
#
# This fleet runs on your machine only: [[len .D.Hosts]] "hosts" are SSH servers on
# 127.0.0.1, each with its own directory under [[.D.Dir]]/hosts/,
# running the demo "shop" app behind a [[.D.BalancerKind]] load balancer.
# Every host runs shop [[.Seed]]; releases [[.VersionList]] are in [[.D.ArtifactDir]].
#
# Try:
#   relctl -f [[.D.FleetFile]]                       # the TUI
#   relctl plan -f [[.D.FleetFile]] --to 2.0.0       # 1.0.0 -> 1.1.0 -> 2.0.0: 1.1.0 is a required stop
#   relctl apply -f [[.D.FleetFile]] --to 1.1.0      # watch every host drain, switch, pass health, come back
#   curl [[.D.Frontend]]/version                     # what the balancer serves right now
#
# Everything below is a normal relctl inventory (see fleet.example.yaml for
# every key); only the addresses and paths are the demo's.

app: shop                        # journal, lock and audit records are filed under this name
# The base directory on each host. In the demo all hosts share one machine, so
# each host overrides it below with a directory of its own.
path: [[q (index .D.Hosts 0).Path]]
keep_releases: 5                 # releases kept per host after a run

ssh:
  user: [[q .D.User]]                   # you: the demo's SSH servers run commands as the user running relctl demo
  identity_file: [[q .D.IdentityFile]]  # an unencrypted key made for this demo only
  known_hosts: [[q .D.KnownHosts]]      # every host's key: host keys are always verified
  use_ssh_config: false          # ignore ~/.ssh/config: these hosts exist only here
  connect_timeout: 5s
  max_parallel: 20

artifact:
  # One file per version, uploaded to every host and checked by sha256.
  source: [[q .ArtifactSource]]

# Run with sh -c on a host, in its directory. Template values are shell-quoted.
# {{.Vars.listen}} is the host's own app address (see vars under each host).
commands:
  start: "{{.Path}}/current/bin/demoapp start --dir {{.Path}} --listen {{.Vars.listen}}"    # idempotent
  stop: "{{.Path}}/current/bin/demoapp stop --dir {{.Path}}"                                # the app finishes in-flight requests on SIGTERM
  health: "{{.Path}}/current/bin/demoapp check --url http://{{.Vars.listen}} --version {{.Version}}"   # exit 0 = ready for traffic
  version: "cat {{.Path}}/current/VERSION"
  # Migrations only append a line to [[.D.MigrationsLog]], so you can see that
  # each ran exactly once, and when.
  migrate: [[q .Migrate]]            # once, before any host switches
  post_migrate: [[q .PostMigrate]]   # once, after every host runs the new version: the point of no return

migrations:
  host: [[q (index .D.Hosts 0).Name]]

health:
  timeout: 20s                   # a host must be healthy within this after start
  interval: 200ms
  stable_for: 400ms              # ... and stay healthy this long before it gets traffic again

rollout:
  batches: [1, 2, "50%"]         # a canary, then 2 hosts, then half the fleet at a time
  pause_after_canary: true       # relctl waits for you (or --yes) after the canary
  on_failure: rollback           # a failing host reverts every switched host to the version before

emergency:                       # relctl downgrade: bigger batches, shorter drains
  batches: ["50%"]
  drain_timeout: 2s

balancer:
  kind: haproxy                  # [[if eq .D.BalancerKind "haproxy"]]real HAProxy[[else]]relctl's built-in balancer, which speaks HAProxy's runtime API[[end]]
  backend: shop
  drain_timeout: 5s              # how long a drain waits for in-flight requests
  endpoints:
    - {tcp: [[q .D.AdminAddr]]}   # the admin socket (runtime API)

releases:                        # which upgrades and downgrades are allowed
  "1.1.0": {upgrade_from: ">=1.0.0", downgrade_to: ["1.0.0"]}
  "2.0.0": {upgrade_from: ">=1.1.0", downgrade_to: ["1.1.0"]}   # from 1.0.0, relctl goes through 1.1.0 first
[[- if .FailHealth]]
# shop [[.FailHealth]] is built to fail its health check: deploy it to watch the
# canary fail and the rollback put it back.
[[- end]]

hosts:
[[- range $i, $h := .D.Hosts]]
  - name: [[q $h.Name]]
    address: [[q $h.SSHAddr]]    # its SSH server
    server: [[q $h.Name]]                # its name in the balancer
[[- if eq $i 0]]
    labels: [canary]             # goes first
[[- end]]
    path: [[q $h.Path]]
    upstream: [[q $h.AppAddr]]   # where the balancer sends its traffic
    vars: {listen: [[q $h.AppAddr]]}
[[- end]]
`

// Inventory returns the demo's fleet.yaml text.
func (d *Demo) Inventory() (string, error) {
	tmpl, err := template.New("fleet.yaml").Delims("[[", "]]").Funcs(template.FuncMap{
		"q": func(s string) string { b, _ := json.Marshal(s); return string(b) },
	}).Parse(inventoryTemplate)
	if err != nil {
		return "", err
	}
	migrate := func(phase string) string {
		return fmt.Sprintf("{{.Release}}/bin/demoapp migrate --log %s --version {{.Version}} --phase %s", shell.Quote(d.MigrationsLog), phase)
	}
	var b strings.Builder
	err = tmpl.Execute(&b, map[string]any{
		"D":              d,
		"When":           time.Now().Format(time.RFC3339),
		"Seed":           SeedVersion,
		"VersionList":    strings.Join(d.Versions, ", "),
		"FailHealth":     d.o.FailHealth,
		"ArtifactSource": filepath.Join(d.ArtifactDir, "shop-{{.Version}}.tar.gz"),
		"Migrate":        migrate("pre"),
		"PostMigrate":    migrate("post"),
	})
	return b.String(), err
}

// writeInventory writes FleetFile and checks that relctl loads it.
func (d *Demo) writeInventory() error {
	s, err := d.Inventory()
	if err != nil {
		return fmt.Errorf("sandbox: fleet.yaml: %w", err)
	}
	if err := os.WriteFile(d.FleetFile, []byte(s), 0o644); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if _, err := fleet.Load(d.FleetFile); err != nil {
		return fmt.Errorf("sandbox: the demo's own fleet.yaml does not load: %w", err)
	}
	return nil
}
