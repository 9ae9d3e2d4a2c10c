package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/rollout"
)

// TestDemoUpgrade is what a newcomer sees in `relctl demo`: the planner takes
// the fleet from 1.0.0 through the required stop 1.1.0 to 2.0.0, host by host,
// with the real engine, SSH transport and balancer driver, while traffic
// flows without a single failed request; each migration runs exactly once.
func TestDemoUpgrade(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{BalancerBuiltin, BalancerHAProxy} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			if kind == BalancerHAProxy && !haveHAProxy() {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s missing and CI is set", HAProxyPath)
				}
				t.Skipf("%s not installed", HAProxyPath)
			}
			testUpgrade(t, kind)
		})
	}
}

func testUpgrade(t *testing.T, kind string) {
	d, inv, conn := startForRollout(t, Options{Hosts: 3, Balancer: kind})
	res, events := runPlan(t, d, inv, conn, "2.0.0")
	if res.Outcome != event.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v\n%s", res.Outcome, res.Err, events)
	}
	for _, h := range d.Hosts {
		if v := httpGet(t, "http://"+h.AppAddr+"/version"); v != "2.0.0" {
			t.Errorf("%s runs %s after the upgrade", h.Name, v)
		}
	}
	recs, err := demoapp.ReadMigrations(d.MigrationsLog)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Phase+" "+r.Version+" "+r.Host)
	}
	want := []string{"pre 1.1.0 web1", "post 1.1.0 web1", "pre 2.0.0 web1", "post 2.0.0 web1"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("migrations = %q, want %q", got, want)
	}
	closeClean(t, d)
}

// TestDemoFailHealth deploys the release built to fail its health check: the
// canary never gets traffic, the run rolls back, and clients see nothing.
func TestDemoFailHealth(t *testing.T) {
	t.Parallel()
	d, inv, conn := startForRollout(t, Options{Hosts: 3, Balancer: BalancerBuiltin, FailHealth: "1.1.0"})
	inv.Health.Timeout = 2 * time.Second // the failure comes quicker; nothing else changes
	res, events := runPlan(t, d, inv, conn, "1.1.0")
	if res.Outcome != event.OutcomeRolledBack {
		t.Fatalf("outcome %s, want rolled back: %v\n%s", res.Outcome, res.Err, events)
	}
	for _, h := range d.Hosts {
		if v := httpGet(t, "http://"+h.AppAddr+"/version"); v != SeedVersion {
			t.Errorf("%s runs %s after the rollback", h.Name, v)
		}
	}
	if err := d.waitAllUp(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	closeClean(t, d)
}

func startForRollout(t *testing.T, o Options) (*Demo, *fleet.Inventory, *rollout.SSH) {
	t.Helper()
	o.AppCommand, o.Traffic, o.Rate, o.Logf = demoappBin, true, 100, t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	inv, err := fleet.Load(d.FleetFile)
	if err != nil {
		t.Fatal(err)
	}
	// Connection settings as the CLI derives them from the inventory.
	pool := remote.NewPool(remote.Options{})
	t.Cleanup(func() { pool.Close() })
	conn := &rollout.SSH{Pool: pool, Configs: map[string]remote.HostConfig{}}
	for _, h := range inv.Hosts {
		conn.Configs[h.Name] = remote.HostConfig{
			Name: h.Name, Address: h.Address, Port: inv.SSH.Port, User: inv.SSH.User,
			IdentityFile: inv.SSH.IdentityFile, KnownHosts: inv.SSH.KnownHosts,
			UseSSHConfig: *inv.SSH.UseSSHConfig, ConnectTimeout: inv.SSH.ConnectTimeout,
		}
	}
	return d, inv, conn
}

// runPlan observes the fleet, plans an upgrade to `to` and runs it with
// --yes semantics. It fails the test on any failed client request.
func runPlan(t *testing.T, d *Demo, inv *fleet.Inventory, conn *rollout.SSH, to string) (rollout.Result, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	_, obs := observe.Fleet(ctx, inv, conn, observe.Options{})
	for _, h := range obs.Hosts {
		if !h.Reachable || h.Version != SeedVersion {
			t.Fatalf("observed %+v", h)
		}
	}
	p, err := plan.Build(inv, obs, plan.Options{To: to})
	if err != nil {
		t.Fatal(err)
	}
	arts := map[string]rollout.Artifact{}
	for _, s := range p.Steps {
		for _, v := range s.Versions {
			path, err := inv.ArtifactPath(v)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Clean(path))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			arts[v] = rollout.Artifact{Path: path, SHA256: hex.EncodeToString(sum[:])}
		}
	}
	bal, err := d.LB()
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	bus := event.NewBus("sandbox-test", nil, event.SinkFunc(func(e event.Event) {
		if e.Type != event.StepOutput {
			log.WriteString(strings.Join([]string{e.Time.Format("15:04:05.000"), string(e.Type), e.Step, string(e.Status), e.Message, e.Error}, " ") + "\n")
		}
	}))
	begin := time.Now()
	before := d.Traffic().Requests
	res := rollout.New(rollout.Config{
		Inventory: inv, Plan: p, Hosts: conn, Balancer: bal, Gate: rollout.AutoApprove{}, Bus: bus,
		Artifacts: arts, RunID: "sandbox-test", Owner: "sandbox-test", CommandTimeout: 30 * time.Second,
	}).Run(ctx)
	s := d.Traffic()
	t.Logf("%s to %s: %s in %s; traffic during the run: %d requests, %s", p.Kind, to, res.Outcome,
		time.Since(begin).Round(time.Millisecond), s.Requests-before, s)
	// A bad release (Options.BadRelease) serves 500s itself: those are the
	// only failures allowed, and its test counts them.
	if s.Errors != 0 || s.Non2xx != s.ByStatus[500] || (s.Non2xx != 0 && d.o.BadRelease == "") {
		t.Fatalf("clients saw failures during the run: %s %v\n%s", s, s.FirstErrors, log.String())
	}
	if s.Requests-before < 50 {
		t.Fatalf("only %d requests during the run: the test proves nothing", s.Requests-before)
	}
	return res, log.String()
}

// closeClean closes d and checks nothing is left.
func closeClean(t *testing.T, d *Demo) {
	t.Helper()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if left := Processes(d.Dir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
		t.Errorf("%s remains", d.Dir)
	}
}
