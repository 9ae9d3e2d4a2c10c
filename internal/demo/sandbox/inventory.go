package sandbox

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/demo/fleetfile"
	"github.com/relctl/relctl/internal/fleet"
)

// Inventory returns the demo's fleet.yaml text: the shared local-fleet
// inventory (fleetfile.Base) behind the demo's balancer, with the releases
// table that makes 1.1.0 a required stop, and comments for a newcomer.
func (d *Demo) Inventory() (string, error) {
	f := fleetfile.Fleet{User: d.User, IdentityFile: d.IdentityFile, KnownHosts: d.KnownHosts,
		ArtifactDir: d.ArtifactDir, MigrationsLog: d.MigrationsLog}
	for _, h := range d.Hosts {
		f.Hosts = append(f.Hosts, fleetfile.Host{Name: h.Name, SSHAddr: h.SSHAddr, AppAddr: h.AppAddr, Path: h.Path})
	}
	inv := fleetfile.Base(f)
	inv.Balancer = fleet.Balancer{Kind: "haproxy", Backend: Backend, DrainTimeout: 5 * time.Second,
		Endpoints: []fleet.Endpoint{{TCP: d.AdminAddr}}}
	inv.Releases = map[string]fleet.Release{
		"1.1.0": {UpgradeFrom: ">=1.0.0", DowngradeTo: []string{"1.0.0"}},
		"2.0.0": {UpgradeFrom: ">=1.1.0", DowngradeTo: []string{"1.1.0"}},
	}
	if d.o.BadRelease != "" {
		inv.Analysis = demoAnalysis()
	}
	b, err := fleetfile.Marshal(inv, d.notes())
	return string(b), err
}

// notes are the comments of the demo's fleet.yaml.
func (d *Demo) notes() fleetfile.Notes {
	head := fmt.Sprintf(`fleet.yaml of a relctl demo, written %s.

This fleet runs on your machine only: %d "hosts" are SSH servers on
127.0.0.1, each with its own directory under %s/hosts/,
running the demo "shop" app behind a %s load balancer.
Every host runs shop %s; releases %s are in %s.

Try:
  relctl -f %[8]s                       # the TUI
  relctl plan -f %[8]s --to 2.0.0       # 1.0.0 -> 1.1.0 -> 2.0.0: 1.1.0 is a required stop
  relctl apply -f %[8]s --to 1.1.0      # watch every host drain, switch, pass health, come back
  curl %[9]s/version                     # what the balancer serves right now

Everything below is a normal relctl inventory (see fleet.example.yaml for
every key); only the addresses and paths are the demo's.`,
		time.Now().Format(time.RFC3339), len(d.Hosts), d.Dir, d.BalancerKind, SeedVersion,
		strings.Join(d.Versions, ", "), d.ArtifactDir, d.FleetFile, d.Frontend)
	if d.o.FailHealth != "" {
		head += fmt.Sprintf("\n\nshop %s is built to fail its health check: deploy it to watch the\ncanary fail and the rollback put it back.", d.o.FailHealth)
	}
	if d.o.BadRelease != "" {
		head += fmt.Sprintf("\n\nshop %s is built to answer %g%% of its requests with 500 while its health\ncheck stays green: only the canary analysis below (mode auto) can see it,\nand it rolls the canary back by itself.", d.o.BadRelease, d.o.BadShare*100)
	}
	balancer := "relctl's built-in balancer, which speaks HAProxy's runtime API"
	if d.BalancerKind == BalancerHAProxy {
		balancer = "real HAProxy"
	}
	n := fleetfile.Notes{
		Head: head,
		Before: map[string]string{
			"path":             "The base directory on each host. In the demo all hosts share one machine, so\neach host overrides it below with a directory of its own.",
			"artifact.source":  "One file per version, uploaded to every host and checked by sha256.",
			"commands":         "Run with sh -c on a host, in its directory. Template values are shell-quoted.\n{{.Vars.listen}} is the host's own app address (see vars under each host).",
			"commands.migrate": fmt.Sprintf("Migrations only append a line to %s, so you can see that\neach ran exactly once, and when.", d.MigrationsLog),
		},
		After: map[string]string{
			"app":                        "journal, lock and audit records are filed under this name",
			"keep_releases":              "releases kept per host after a run",
			"ssh.user":                   "you: the demo's SSH servers run commands as the user running relctl demo",
			"ssh.identity_file":          "an unencrypted key made for this demo only",
			"ssh.known_hosts":            "every host's key: host keys are always verified",
			"ssh.use_ssh_config":         "ignore ~/.ssh/config: these hosts exist only here",
			"commands.start":             "idempotent",
			"commands.stop":              "the app finishes in-flight requests on SIGTERM",
			"commands.health":            "exit 0 = ready for traffic",
			"commands.migrate":           "once, before any host switches",
			"commands.post_migrate":      "once, after every host runs the new version: the point of no return",
			"health.timeout":             "a host must be healthy within this after start",
			"health.stable_for":          "... and stay healthy this long before it gets traffic again",
			"rollout.batches":            "a canary, then 2 hosts, then half the fleet at a time",
			"rollout.pause_after_canary": "relctl waits for you (or --yes) after the canary",
			"rollout.on_failure":         "a failing host reverts every switched host to the version before",
			"emergency":                  "relctl downgrade: bigger batches, shorter drains",
			"balancer.kind":              balancer,
			"balancer.drain_timeout":     "how long a drain waits for in-flight requests",
			"balancer.endpoints":         "the admin socket (runtime API)",
			"releases":                   "which upgrades and downgrades are allowed; from 1.0.0, relctl goes to 2.0.0 through 1.1.0",
			"hosts.*.address":            "its SSH server",
			"hosts.*.server":             "its name in the balancer",
			"hosts.*.labels":             "goes first",
			"hosts.*.upstream":           "where the balancer sends its traffic",
		},
	}
	if d.o.BadRelease != "" {
		n.Before["analysis"] = "Canary analysis: after each canary batch is back in rotation, relctl compares\nits 5xx share with the hosts still on the old version, from the balancer's\nper-server counters, and (mode auto) promotes or rolls back by itself."
		n.After["analysis.mode"] = "auto: promote on pass, roll back on fail"
		n.After["analysis.rate_5xx.max"] = "at most 2% of the canary's requests answer 5xx ..."
		n.After["analysis.rate_5xx.max_ratio"] = "... and at most the baseline's share × 2 + margin"
	}
	return n
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
