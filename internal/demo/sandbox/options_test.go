package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/demo/proc"
)

func TestOptionsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no binary", Options{}, "Relctl"},
		{"relative relctl", Options{Relctl: "relctl"}, "absolute"},
		{"missing relctl", Options{Relctl: "/nonexistent/relctl"}, "app binary"},
		{"seed cannot fail", Options{AppCommand: "/bin/sh", FailHealth: SeedVersion}, "cannot be 1.0.0"},
		{"bad version", Options{AppCommand: "/bin/sh", FailHealth: "1.0;rm"}, "not a version"},
		{"balancer", Options{AppCommand: "/bin/sh", Balancer: "nginx"}, "unknown balancer"},
		{"seed cannot be bad", Options{AppCommand: "/bin/sh", BadRelease: SeedVersion}, "bad-release version cannot be 1.0.0"},
		{"bad release version", Options{AppCommand: "/bin/sh", BadRelease: "2.0;x"}, "not a version"},
		{"bad share", Options{AppCommand: "/bin/sh", BadRelease: "2.0.0", BadShare: 1.5}, "between 0 and 1"},
		{"share alone", Options{AppCommand: "/bin/sh", BadShare: 0.5}, "bad share without a bad release"},
		{"hosts", Options{AppCommand: "/bin/sh", Hosts: -1}, "hosts must be"},
		{"unsafe dir", Options{AppCommand: "/bin/sh", Dir: "/tmp/a dir"}, "may hold only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Start(context.Background(), tc.o)
			if err == nil {
				d.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestAppCommand(t *testing.T) {
	t.Parallel()
	cmd, err := appCommand(Options{Relctl: "/bin/true"})
	if err != nil || cmd != "/bin/true demoapp" {
		t.Fatalf("appCommand = %q, %v", cmd, err)
	}
	cmd, err = appCommand(Options{Relctl: "/bin/true", AppCommand: "/bin/false x"})
	if err != nil || cmd != "/bin/false x" {
		t.Fatalf("appCommand = %q, %v", cmd, err)
	}
}

// TestKeepReuseCleanup covers a user-chosen Dir: a non-demo directory is
// refused; Keep leaves the files (but no process); a later Start adopts the
// kept directory; an app whose pidfile was lost is still stopped by Close;
// and Cleanup removes what a killed demo left.
func TestKeepReuseCleanup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parent := t.TempDir()

	foreign := filepath.Join(parent, "foreign")
	os.MkdirAll(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "precious"), []byte("x"), 0o644)
	if _, err := Start(ctx, Options{AppCommand: demoappBin, Dir: foreign, Hosts: 1}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Start in a foreign dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "precious")); err != nil {
		t.Fatalf("foreign dir touched: %v", err)
	}
	if err := Cleanup(foreign); err == nil {
		t.Fatal("Cleanup accepted a foreign dir")
	}

	dir := filepath.Join(parent, "demo")
	// Default size (6 hosts), FailHealth outside the standard releases.
	d, err := Start(ctx, Options{AppCommand: demoappBin, Dir: dir, Keep: true, Balancer: BalancerBuiltin, FailHealth: "2.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Hosts) != 6 || d.Dir != dir {
		t.Fatalf("%d hosts in %s", len(d.Hosts), d.Dir)
	}
	if strings.Join(d.Versions, " ") != "1.0.0 1.1.0 2.0.0 2.1.0" {
		t.Fatalf("versions %v", d.Versions)
	}
	conf := unpackConf(t, d, "2.1.0")
	if !strings.Contains(conf, demoapp.ConfFailHealth+"=true") {
		t.Fatalf("2.1.0 app.conf = %q", conf)
	}
	if conf := unpackConf(t, d, "2.0.0"); strings.Contains(conf, demoapp.ConfFailHealth) {
		t.Fatalf("2.0.0 app.conf = %q", conf)
	}
	// Lose web1's pidfile: Close must find its app anyway.
	lost, ok := demoapp.ServingPid(d.Hosts[0].Path)
	if !ok {
		t.Fatal("web1 not serving")
	}
	os.Remove(filepath.Join(d.Hosts[0].Path, demoapp.StateDir, demoapp.PidFile))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if proc.Alive(lost) {
		t.Fatalf("app %d with a lost pidfile survived Close", lost)
	}
	if left := Processes(dir); len(left) > 0 {
		t.Fatalf("left: %v", left)
	}
	if _, err := os.Stat(d.FleetFile); err != nil {
		t.Fatalf("Keep: %v", err)
	}

	// Start again in the kept dir; then "kill" relctl: apps stay, Cleanup ends them.
	d2, err := Start(ctx, Options{AppCommand: demoappBin, Dir: dir, Hosts: 2, Balancer: BalancerBuiltin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hosts", "web3")); !os.IsNotExist(err) {
		t.Fatalf("the earlier demo's web3 is still there: %v", err)
	}
	var pids []int
	for _, h := range d2.Hosts {
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s not serving", h.Name)
		}
		pids = append(pids, pid)
	}
	d2.o.Keep = true // pretend relctl died: only the in-process parts go away
	d2.mini.Close()
	for _, s := range d2.ssh {
		s.Close()
	}
	if err := Cleanup(dir); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if proc.Alive(pid) {
			t.Errorf("pid %d survived Cleanup", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Cleanup left %s", dir)
	}
}

func TestStartCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := filepath.Join(t.TempDir(), "demo")
	if _, err := Start(ctx, Options{AppCommand: demoappBin, Dir: dir, Hosts: 1}); err == nil {
		t.Fatal("Start with a cancelled context succeeded")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s left behind", dir)
	}
}

func unpackConf(t *testing.T, d *Demo, v string) string {
	t.Helper()
	out := t.TempDir()
	if err := demoapp.Unpack(filepath.Join(d.ArtifactDir, demoapp.ArtifactName(v)), out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "app.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
