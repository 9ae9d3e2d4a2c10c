package testfleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

// inventoryTemplate is the fleet.yaml WriteInventory writes. It is the one place
// that knows the inventory schema (internal/fleet): adjust it here. It uses [[ ]]
// delimiters because the command templates contain relctl's own {{ }}.
const inventoryTemplate = `# fleet.yaml written by relctl's testfleet for [[len .F.Hosts]] local hosts
app: shop
path: [[q (index .F.Hosts 0).Path]]
keep_releases: 5
ssh:
  user: [[q .F.User]]
  port: [[.F.SSHPort]]
  identity_file: [[q .F.IdentityFile]]
  known_hosts: [[q .F.KnownHostsFile]]
  use_ssh_config: false
  connect_timeout: 5s
  max_parallel: 20
artifact:
  source: [[q .ArtifactSource]]
commands:
  start: "{{.Path}}/current/bin/demoapp start --dir {{.Path}} --listen {{.Vars.listen}}"
  stop: "{{.Path}}/current/bin/demoapp stop --dir {{.Path}}"
  health: "{{.Path}}/current/bin/demoapp check --url http://{{.Vars.listen}} --version {{.Version}}"
  version: "cat {{.Path}}/current/VERSION"
  migrate: [[q .Migrate]]
  post_migrate: [[q .PostMigrate]]
migrations:
  host: [[q (index .F.Hosts 0).Name]]
health:
  timeout: 20s
  interval: 200ms
  stable_for: 500ms
rollout:
  batches: [1, 2, "50%"]
  pause_after_canary: false
  wait_between_batches: 0s
  max_failed_hosts: 0
  on_failure: rollback
emergency:
  batches: ["50%"]
  drain_timeout: 2s
[[- if not .F.LB]]
balancer:
  kind: none
[[- else if eq .F.LB.Kind "haproxy"]]
balancer:
  kind: haproxy
  backend: [[q .F.LB.Backend]]
  drain_timeout: 10s
  endpoints:
    - {tcp: [[q .F.LB.AdminTCP]]}
[[- else]]
balancer:
  kind: nginx
  backend: [[q .F.LB.Backend]]
  drain_timeout: 2s
  upstream_file: [[q .F.LB.UpstreamFile]]
  nginx: [[q .F.LB.NginxCommand]]
  endpoints:
    - {ssh: [[q (index .F.Hosts 0).SSHAddr]]}
[[- end]]
hosts:
[[- range $i, $h := .F.Hosts]]
  - name: [[q $h.Name]]
    address: [[q $h.SSHAddr]]
    server: [[q $h.Name]]
    upstream: [[q $h.AppAddr]]
    path: [[q $h.Path]]
[[- if eq $i 0]]
    labels: [canary]
[[- end]]
    vars: {listen: [[q $h.AppAddr]]}
[[- end]]
`

var topLevelKey = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*):`)

// Inventory returns the fleet.yaml text for this fleet. extra is YAML appended at
// the end; a top-level key in extra replaces the default section of that key (so
// extra "rollout:\n  batches: [2]\n" swaps the whole rollout section).
func (f *Fleet) Inventory(extra string) (string, error) {
	tmpl, err := template.New("fleet.yaml").Delims("[[", "]]").Funcs(template.FuncMap{
		"q": func(s string) string { b, _ := json.Marshal(s); return string(b) },
	}).Parse(inventoryTemplate)
	if err != nil {
		return "", err
	}
	migrate := func(phase string) string {
		return fmt.Sprintf("{{.Release}}/bin/demoapp migrate --log %s --version {{.Version}} --phase %s", f.MigrationsLog, phase)
	}
	var b strings.Builder
	err = tmpl.Execute(&b, map[string]any{
		"F":              f,
		"ArtifactSource": filepath.Join(f.ArtifactDir, "shop-{{.Version}}.tar.gz"),
		"Migrate":        migrate("pre"),
		"PostMigrate":    migrate("post"),
	})
	if err != nil {
		return "", err
	}
	return mergeSections(b.String(), extra), nil
}

// WriteInventory writes Inventory(extra) to path.
func (f *Fleet) WriteInventory(path, extra string) {
	f.t.Helper()
	s, err := f.Inventory(extra)
	if err != nil {
		f.t.Fatalf("testfleet: inventory: %v", err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		f.t.Fatalf("testfleet: %v", err)
	}
}

// mergeSections drops the sections of base whose top-level keys extra defines,
// then appends extra.
func mergeSections(base, extra string) string {
	if strings.TrimSpace(extra) == "" {
		return base
	}
	override := map[string]bool{}
	for _, line := range strings.Split(extra, "\n") {
		if m := topLevelKey.FindStringSubmatch(line); m != nil {
			override[m[1]] = true
		}
	}
	var out []string
	skipping := false
	for _, line := range strings.Split(strings.TrimRight(base, "\n"), "\n") {
		if m := topLevelKey.FindStringSubmatch(line); m != nil {
			skipping = override[m[1]]
		}
		if !skipping {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n" + strings.TrimRight(extra, "\n") + "\n"
}
