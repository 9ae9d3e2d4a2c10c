// Package sandbox starts a complete local demo fleet with one call: SSH
// "hosts" (in-process sshservers on 127.0.0.1, each with its own host key and
// root directory), the demo shop app running release 1.0.0 on every host, a
// balancer in front (real HAProxy when installed, else the built-in minilb,
// both driven through the HAProxy runtime API), releases 1.0.0, 1.1.0 and
// 2.0.0 ready to deploy, a commented fleet.yaml that relctl loads unchanged,
// and optional steady traffic through the balancer.
//
// `relctl demo` and fast CLI tests use it. It never touches production paths:
// everything lives under one directory (a fresh temp dir by default), listens
// on loopback only, and Close stops every process it (or a rollout run against
// it) started and removes the directory. A demo whose process dies without
// Close, SIGKILL included, leaves nothing running either: HAProxy gets a
// parent-death signal and the apps watch a lifeline (package proc); the next
// demo removes its directory (ReapOrphans).
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relctl/relctl/internal/demo/loadgen"
	"github.com/relctl/relctl/internal/demo/minilb"
	"github.com/relctl/relctl/internal/demo/proc"
	"github.com/relctl/relctl/internal/demo/sshserver"
)

// Balancer kinds of Options.Balancer and Demo.BalancerKind.
const (
	BalancerAuto    = "auto"
	BalancerHAProxy = "haproxy"
	BalancerBuiltin = "builtin"
)

// HAProxyPath is where Start looks for HAProxy.
var HAProxyPath = "/usr/sbin/haproxy"

// Backend is the balancer backend holding the hosts' servers.
const Backend = "shop"

// SeedVersion is the release every host runs when Start returns; Versions are
// the releases built into Demo.ArtifactDir (the fleet.yaml releases table
// makes 1.1.0 a required stop on the way from 1.0.0 to 2.0.0).
const SeedVersion = "1.0.0"

// Versions are the releases every demo builds, oldest first.
var Versions = []string{"1.0.0", "1.1.0", "2.0.0"}

// Options shape a demo. Zero values take the defaults noted.
type Options struct {
	Hosts int    // number of hosts; default 6
	Dir   string // "" = a new temp dir; else an absolute-able path that is empty, absent, or an earlier kept demo
	Keep  bool   // Close leaves Dir in place (processes are stopped regardless)
	// Relctl is the absolute path of the relctl binary: every release's
	// bin/demoapp is a script that execs "<Relctl> demoapp".
	Relctl string
	// AppCommand, if set, replaces "<Relctl> demoapp" as the wrapped command
	// (absolute path first, e.g. a built cmd/demoapp in tests).
	AppCommand string
	// FailHealth is a version whose artifact fails its health check
	// (app.conf fail_health=true). A version outside Versions is built too.
	// It cannot be SeedVersion.
	FailHealth string
	// BadRelease is a version whose app answers BadShare of its requests
	// with 500 while its health check stays green (app.conf fail_share);
	// the inventory then asks for canary analysis in mode auto
	// (badrelease.go). It cannot be SeedVersion.
	BadRelease string
	BadShare   float64 // default DefaultBadShare
	Balancer   string  // "auto" (default: HAProxy when HAProxyPath exists, else builtin), "haproxy", "builtin"
	Traffic    bool    // steady demo traffic through the balancer from Start until Close
	Rate       int     // traffic requests/s; default 50
	// Logf receives progress lines ("demo: ..."); it may be called from
	// several goroutines at once. nil: silent.
	Logf func(format string, args ...any)
}

// Host is one demo host.
type Host struct {
	Name    string // web1, web2, ... (also its server name in the balancer)
	SSHAddr string // 127.0.0.1:NNNN, the in-process SSH server
	AppAddr string // 127.0.0.1:NNNN, where its app listens (the balancer's upstream)
	Root    string // <Dir>/hosts/webN: working directory and $HOME of its SSH commands
	Path    string // <Dir>/hosts/webN/srv/shop: the inventory path (releases/, current, .relctl/)
}

// Demo is a running demo fleet. Fields are read-only after Start.
type Demo struct {
	Dir           string // everything lives here
	FleetFile     string // <Dir>/fleet.yaml
	KnownHosts    string // <Dir>/known_hosts: [127.0.0.1]:port entries for every host
	IdentityFile  string // <Dir>/id_ed25519: unencrypted client key (0600), authorised on every host
	ArtifactDir   string // <Dir>/dist: shop-<version>.tar.gz
	MigrationsLog string // <Dir>/migrations.log: what migrate/post_migrate recorded
	User          string // the SSH user in fleet.yaml (the current OS user)
	Frontend      string // http://127.0.0.1:NNNN, the balancer's frontend
	AdminAddr     string // 127.0.0.1:NNNN, the balancer's TCP admin socket (HAProxy runtime API)
	Backend       string // "shop"
	BalancerKind  string // "haproxy" or "builtin"
	Versions      []string
	Hosts         []Host

	o       Options
	logf    func(format string, args ...any)
	created bool // Dir was made by Start (or is a kept demo): Close may remove it
	ssh     []*sshserver.Server
	mini    *minilb.LB
	hap     *proc.Proc
	gen     *loadgen.Gen

	lifeline string // proc.Lifeline of this process, given to every app

	closeOnce sync.Once
	closeErr  error
}

// markerFile marks a directory as a demo's, so a later Start may reuse it.
const markerFile = ".relctl-demo"

// safePathRE is the fleet loader's rule for paths.
var safePathRE = regexp.MustCompile(`^/[A-Za-z0-9._/@+-]*$`)

// Start builds the whole demo and returns once every host runs SeedVersion
// behind the balancer with every server UP (and traffic flowing, if asked).
// On error everything started so far is stopped again. ctx bounds Start only;
// the demo runs until Close.
func Start(ctx context.Context, o Options) (_ *Demo, err error) {
	begin := time.Now()
	if o.Hosts == 0 {
		o.Hosts = 6
	}
	if o.Hosts < 1 || o.Hosts > 256 {
		return nil, fmt.Errorf("sandbox: hosts must be 1..256, got %d", o.Hosts)
	}
	if o.Rate == 0 {
		o.Rate = 50
	}
	if o.Rate < 0 {
		return nil, fmt.Errorf("sandbox: rate must not be negative")
	}
	kind, err := balancerKind(o.Balancer)
	if err != nil {
		return nil, err
	}
	appCmd, err := appCommand(o)
	if err != nil {
		return nil, err
	}
	if o.FailHealth != "" {
		if !versionRE.MatchString(o.FailHealth) {
			return nil, fmt.Errorf("sandbox: fail-health version %q is not a version", o.FailHealth)
		}
		if o.FailHealth == SeedVersion {
			return nil, fmt.Errorf("sandbox: fail-health version cannot be %s: every host must run it healthy at start", SeedVersion)
		}
	}
	if err := o.checkBadRelease(); err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("sandbox: current user: %w", err)
	}
	d := &Demo{o: o, logf: o.Logf, BalancerKind: kind, Backend: Backend, User: u.Username}
	if d.logf == nil {
		d.logf = func(string, ...any) {}
	}
	if err := d.makeDir(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.FleetFile = filepath.Join(d.Dir, "fleet.yaml")
	d.KnownHosts = filepath.Join(d.Dir, "known_hosts")
	d.IdentityFile = filepath.Join(d.Dir, "id_ed25519")
	d.ArtifactDir = filepath.Join(d.Dir, "dist")
	d.MigrationsLog = filepath.Join(d.Dir, "migrations.log")

	d.logf("demo: building %d hosts in %s", o.Hosts, d.Dir)
	if err := d.startHosts(); err != nil {
		return nil, err
	}
	if err := d.buildReleases(appCmd); err != nil {
		return nil, err
	}
	d.logf("demo: installing shop %s on every host", SeedVersion)
	if err := d.seed(ctx); err != nil {
		return nil, err
	}
	if err := d.startBalancer(ctx); err != nil {
		return nil, err
	}
	if err := d.writeInventory(); err != nil {
		return nil, err
	}
	if o.Traffic {
		if err := d.startTraffic(); err != nil {
			return nil, err
		}
	}
	d.logf("demo: ready in %s: %d hosts on shop %s behind %s at %s", time.Since(begin).Round(time.Millisecond),
		len(d.Hosts), SeedVersion, d.BalancerKind, d.Frontend)
	return d, nil
}

func balancerKind(k string) (string, error) {
	switch k {
	case "", BalancerAuto:
		if st, err := os.Stat(HAProxyPath); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return BalancerHAProxy, nil
		}
		return BalancerBuiltin, nil
	case BalancerHAProxy:
		if _, err := os.Stat(HAProxyPath); err != nil {
			return "", fmt.Errorf("sandbox: balancer haproxy: %w (install haproxy, or use the builtin balancer)", err)
		}
		return BalancerHAProxy, nil
	case BalancerBuiltin:
		return BalancerBuiltin, nil
	}
	return "", fmt.Errorf("sandbox: unknown balancer %q (want auto, haproxy or builtin)", k)
}

// appCommand is the command prefix every release's bin/demoapp execs.
func appCommand(o Options) (string, error) {
	cmd := o.AppCommand
	bin := ""
	if cmd == "" {
		if o.Relctl == "" {
			return "", errors.New("sandbox: Relctl (the relctl binary's absolute path) is required")
		}
		bin = o.Relctl
		cmd = o.Relctl + " demoapp"
	} else {
		bin = strings.Fields(cmd)[0]
	}
	if !filepath.IsAbs(bin) {
		return "", fmt.Errorf("sandbox: %q must be an absolute path", bin)
	}
	if strings.ContainsAny(bin, " \t\n'\"\\$`") {
		return "", fmt.Errorf("sandbox: binary path %q holds characters a wrapper script cannot carry", bin)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("sandbox: app binary: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("sandbox: app binary %s is not executable", bin)
	}
	return cmd, nil
}

// makeDir creates (or adopts) the demo directory.
func (d *Demo) makeDir() error {
	unsafe := func(dir string) error {
		return fmt.Errorf("sandbox: demo directory %q may hold only letters, digits and / . _ @ + - (fleet.yaml paths must): choose another (or set TMPDIR)", dir)
	}
	if d.o.Dir == "" {
		ReapOrphans(os.TempDir(), d.logf)
		dir, err := os.MkdirTemp("", "relctl-demo-")
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		if !safePathRE.MatchString(dir) {
			os.Remove(dir)
			return unsafe(dir)
		}
		d.Dir, d.created = dir, true
	} else {
		dir, err := filepath.Abs(d.o.Dir)
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		dir = filepath.Clean(dir)
		if !safePathRE.MatchString(dir) {
			return unsafe(dir)
		}
		entries, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
		case err != nil:
			return fmt.Errorf("sandbox: %w", err)
		case len(entries) > 0:
			if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
				return fmt.Errorf("sandbox: %s is not empty and is not an earlier demo's directory (no %s): choose another", dir, markerFile)
			}
			// An earlier kept demo: stop what may still run there, start afresh.
			d.logf("demo: reusing %s from an earlier demo", dir)
			if err := stopAll(dir); err != nil {
				return fmt.Errorf("sandbox: %s: processes of the earlier demo: %w", dir, err)
			}
			for _, e := range entries {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("sandbox: clean %s: %w", dir, err)
				}
			}
		}
		d.Dir, d.created = dir, true
	}
	if err := os.WriteFile(filepath.Join(d.Dir, markerFile), []byte("a relctl demo lives here; `relctl demo` may stop its apps and wipe this directory\n"), 0o644); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	// The owner file names this process: the apps end themselves when it
	// is gone (see proc.WithLifeline), and a later demo that finds it gone
	// reaps what is left (ReapOrphans).
	lifeline, err := proc.Lifeline()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.MkdirAll(runDir(d.Dir), 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.WriteFile(ownerFile(d.Dir), []byte(lifeline+"\n"), 0o644); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	d.lifeline = lifeline
	return nil
}

// runDir holds the owner file and the pidfiles of the processes the demo
// starts itself (HAProxy), for stopAll after a SIGKILL.
func runDir(dir string) string { return filepath.Join(dir, "run") }

// ownerFile holds the lifeline (proc.Lifeline) of the process running the demo.
func ownerFile(dir string) string { return filepath.Join(runDir(dir), "owner") }

func (d *Demo) pidDir() string { return runDir(d.Dir) }

// Traffic returns a live snapshot of the demo traffic, or nil without
// traffic. After Close it returns the final numbers.
func (d *Demo) Traffic() *loadgen.Stats {
	if d == nil || d.gen == nil {
		return nil
	}
	s := d.gen.Snapshot()
	return &s
}

// Servers are the hosts' server names in the balancer, in host order.
func (d *Demo) Servers() []string {
	out := make([]string, len(d.Hosts))
	for i, h := range d.Hosts {
		out[i] = h.Name
	}
	return out
}

// BalancerPID is HAProxy's process id (0 with the builtin balancer).
func (d *Demo) BalancerPID() int {
	if d.hap == nil {
		return 0
	}
	return d.hap.PID()
}

// Close stops the traffic, the SSH servers (and any command still running on
// them), every app a host runs (by pidfile, then any leftover serving process
// whose command line names this demo's directory), and the balancer (HAProxy
// by PID), then removes Dir unless Keep. It is safe to call more than once and
// on a half-started demo; it returns the first error met but always does
// every step.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.close() })
	return d.closeErr
}

func (d *Demo) close() error {
	var errs []error
	if d.gen != nil {
		s := d.gen.Stop()
		d.logf("demo: traffic stopped: %s", s)
	}
	// SSH first, so nothing a client still sends can start an app again.
	var wg sync.WaitGroup
	for _, s := range d.ssh {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
	if d.Dir != "" {
		if left := stopApps(d.Dir, 5*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("sandbox: processes still alive after SIGKILL: %v", left))
		}
	}
	if d.mini != nil {
		if err := d.mini.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.hap != nil {
		if err := d.hap.Stop(5 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("sandbox: stop haproxy: %w", err))
		}
	}
	if d.Dir != "" {
		// Stopped cleanly: a kept directory is not an orphan to reap.
		_ = os.Remove(ownerFile(d.Dir))
	}
	if d.Dir != "" && d.created && !d.o.Keep {
		if err := os.RemoveAll(d.Dir); err != nil {
			errs = append(errs, fmt.Errorf("sandbox: remove %s: %w", d.Dir, err))
		}
	}
	return errors.Join(errs...)
}

// Cleanup stops every process an earlier demo left running in dir (one that
// was kept, or whose relctl was killed before Close) and removes dir. It
// refuses a directory that is not a demo's.
func Cleanup(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
		return fmt.Errorf("sandbox: %s is not a demo's directory (no %s)", dir, markerFile)
	}
	if err := stopAll(dir); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("sandbox: remove %s: %w", dir, err)
	}
	return nil
}

// stopAll stops what a demo in dir may have left running: its apps and
// host commands (stopApps) and the processes its pidfiles name (HAProxy).
func stopAll(dir string) error {
	var errs []error
	if left := stopApps(dir, 5*time.Second); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes still alive after SIGKILL: %v", left))
	}
	if _, err := proc.Reap(runDir(dir), 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ReapOrphans cleans up after demos in parent (the temp dir `relctl demo`
// uses) whose process died without Close, SIGKILL included: every
// relctl-demo-* directory of this user with a demo marker whose owner
// process is gone has its processes stopped and is removed. A demo whose
// owner still runs, or a directory without an owner file, is left alone.
// Problems are reported through logf and stop nothing else.
func ReapOrphans(parent string, logf func(format string, args ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "relctl-demo-*"))
	for _, dir := range dirs {
		st, err := os.Stat(filepath.Join(dir, markerFile))
		if err != nil || !ownedByMe(st) {
			continue
		}
		b, err := os.ReadFile(ownerFile(dir))
		if err != nil {
			continue
		}
		if alive, err := proc.OwnerAlive(string(b)); err != nil || alive {
			continue
		}
		if err := Cleanup(dir); err != nil {
			logf("demo: cleaning up %s, left by a demo that died: %v", dir, err)
			continue
		}
		logf("demo: cleaned up %s, left by a demo that died", dir)
	}
}

func ownedByMe(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Getuid()
}
