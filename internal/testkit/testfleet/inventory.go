package testfleet

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/demo/fleetfile"
	"github.com/relctl/relctl/internal/fleet"
)

var topLevelKey = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*):`)

// Inventory returns the fleet.yaml text for this fleet: the shared
// local-fleet inventory (fleetfile.Base, built on internal/fleet's own
// types) with this fleet's SSH port and balancer, no canary pause. extra is
// YAML appended at the end; a top-level key in extra replaces the default
// section of that key (so extra "rollout:\n  batches: [2]\n" swaps the whole
// rollout section).
func (f *Fleet) Inventory(extra string) (string, error) {
	ff := fleetfile.Fleet{User: f.User, IdentityFile: f.IdentityFile, KnownHosts: f.KnownHostsFile,
		ArtifactDir: f.ArtifactDir, MigrationsLog: f.MigrationsLog}
	for _, h := range f.Hosts {
		ff.Hosts = append(ff.Hosts, fleetfile.Host{Name: h.Name, SSHAddr: h.SSHAddr, AppAddr: h.AppAddr, Path: h.Path})
	}
	inv := fleetfile.Base(ff)
	noPause := false
	inv.SSH.Port = f.SSHPort
	inv.Health.StableFor = 500 * time.Millisecond
	inv.Rollout.PauseAfterCanary = &noPause
	switch {
	case f.LB == nil:
		inv.Balancer = fleet.Balancer{Kind: "none"}
	case f.LB.Kind == "haproxy":
		inv.Balancer = fleet.Balancer{Kind: "haproxy", Backend: f.LB.Backend, DrainTimeout: 10 * time.Second,
			Endpoints: []fleet.Endpoint{{TCP: f.LB.AdminTCP}}}
	default:
		inv.Balancer = fleet.Balancer{Kind: "nginx", Backend: f.LB.Backend, DrainTimeout: 2 * time.Second,
			UpstreamFile: f.LB.UpstreamFile, Nginx: f.LB.NginxCommand, Endpoints: []fleet.Endpoint{{SSH: f.Hosts[0].SSHAddr}}}
	}
	if f.Workers > 0 {
		// Web hosts behind the balancer, workers outside it: one inventory.
		inv.Roles = map[string]fleet.Role{
			"web":    {Rollout: fleet.RoleRollout{Batches: []fleet.BatchSize{{N: 1}, {N: 2}}}},
			"worker": {Balancer: fleet.BalancerNone},
		}
		for i := range inv.Hosts {
			inv.Hosts[i].Role = "web"
			if i >= len(inv.Hosts)-f.Workers {
				inv.Hosts[i].Role = "worker"
			}
		}
	}
	b, err := fleetfile.Marshal(inv, fleetfile.Notes{Head: fmt.Sprintf("fleet.yaml written by relctl's testfleet for %d local hosts", len(f.Hosts))})
	if err != nil {
		return "", err
	}
	return mergeSections(string(b), extra), nil
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
