// Package opstest is a fleet of local "hosts" for tests of the operator
// flows (package ops) and their front ends: each host is a directory on
// this machine, and its transport runs relctl's real host-side scripts
// (preflight, lock, unpack, switch, the migration wrapper, the app's
// commands) with sh in that directory, as sshd would run them on a host.
//
// Faults are injected per host by a piece of the command's script: a
// command that hangs until its deadline or its context ends (as a remote
// command under relctl's deadlines does), or a host whose sshd dies (the
// command in flight and every later call fail with
// remote.ErrConnectionLost). A transport can also be frozen, as the
// process of a relctl that was SIGKILLed: its calls never return (their
// goroutines stay blocked until the test binary exits, as a dead process
// writes nothing more), and a fresh transport (the next relctl process)
// works on the same hosts; HolderDied makes the lock say its process has
// ended.
package opstest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/rollout"
)

// Options shape a fleet. Zero values take the defaults noted.
type Options struct {
	Hosts int    // web1..webN; default 3
	Seed  string // the version every host runs; default 1.0.0
	// Commands override the app's commands (stop, start, health, migrate,
	// post_migrate). The defaults keep a file "running" in the host's
	// path while the app runs, and append one line per migration to
	// migrations.log in the migrations host's path. Each command starts
	// with ": <name>;", which is what a fault names.
	Commands map[string]string
	// Rollout is the inventory's rollout section (YAML flow mapping);
	// default: one host at a time, no canary pause, roll back on failure.
	Rollout string
	// Timeouts is the inventory's timeouts section (YAML flow mapping).
	Timeouts string
}

// Fleet is a running local fleet.
type Fleet struct {
	Dir        string
	File       string // fleet.yaml
	Inv        *fleet.Inventory
	JournalDir string
	Hosts      []string
	t          testing.TB
}

// Versions are the releases every fleet has artifacts for.
var Versions = []string{"1.0.0", "1.1.0"}

// New builds a fleet in a temporary directory: every host on the seed
// release, its app running, and artifacts for Versions.
func New(t testing.TB, o Options) *Fleet {
	t.Helper()
	if o.Hosts == 0 {
		o.Hosts = 3
	}
	if o.Seed == "" {
		o.Seed = Versions[0]
	}
	if o.Rollout == "" {
		o.Rollout = "{batches: [1], pause_after_canary: false, on_failure: rollback}"
	}
	if o.Timeouts == "" {
		o.Timeouts = "{stop: 1m, start: 1m, migrate: 2m, post_migrate: 2m}"
	}
	cmds := map[string]string{
		"stop":         `rm -f {{.Path}}/running`,
		"start":        `touch {{.Path}}/running`,
		"health":       `test -f {{.Path}}/running`,
		"migrate":      `echo pre {{.Version}} >> {{.Path}}/migrations.log`,
		"post_migrate": `echo post {{.Version}} >> {{.Path}}/migrations.log`,
	}
	for k, v := range o.Commands {
		cmds[k] = v
	}
	dir := t.TempDir()
	f := &Fleet{Dir: dir, File: filepath.Join(dir, "fleet.yaml"), JournalDir: filepath.Join(dir, "journal"), t: t}
	for _, v := range Versions {
		writeArtifact(t, filepath.Join(dir, "dist", "shop-"+v+".tar.gz"), v)
	}
	var y strings.Builder
	fmt.Fprintf(&y, "app: shop\npath: %s/hosts/default\nartifact: {source: \"./dist/shop-{{.Version}}.tar.gz\"}\ncommands:\n", dir)
	var names []string
	for k := range cmds {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&y, "  %s: %q\n", k, ": "+k+"; "+cmds[k])
	}
	fmt.Fprintf(&y, "health: {timeout: 20s, interval: 50ms, stable_for: 0s}\n")
	fmt.Fprintf(&y, "balancer: {kind: none}\nrollout: %s\ntimeouts: %s\n", o.Rollout, o.Timeouts)
	fmt.Fprintf(&y, "releases:\n  \"1.1.0\": {upgrade_from: \">=1.0.0\", downgrade_to: [\"1.0.0\"]}\nhosts:\n")
	for i := 1; i <= o.Hosts; i++ {
		name := fmt.Sprintf("web%d", i)
		f.Hosts = append(f.Hosts, name)
		fmt.Fprintf(&y, "  - {name: %s, address: 10.9.0.%d, path: %s}\n", name, i, f.Path(name))
		rel := filepath.Join(f.Path(name), "releases", o.Seed)
		mustMkdir(t, rel)
		must(t, os.WriteFile(filepath.Join(rel, "VERSION"), []byte(o.Seed+"\n"), 0o644))
		must(t, os.Symlink(rel, filepath.Join(f.Path(name), "current")))
		must(t, os.WriteFile(filepath.Join(f.Path(name), "running"), nil, 0o644))
	}
	must(t, os.WriteFile(f.File, []byte(y.String()), 0o644))
	inv, err := fleet.Load(f.File)
	if err != nil {
		t.Fatalf("opstest inventory: %v\n%s", err, y.String())
	}
	f.Inv = inv
	mustMkdir(t, f.JournalDir)
	return f
}

// Path is host's base path (releases/, current, .relctl/).
func (f *Fleet) Path(host string) string { return filepath.Join(f.Dir, "hosts", host, "srv", "shop") }

// Root is host's home: the working directory of its commands.
func (f *Fleet) Root(host string) string { return filepath.Join(f.Dir, "hosts", host) }

// Version is the release host's current points at ("" when none).
func (f *Fleet) Version(host string) string {
	target, err := os.Readlink(filepath.Join(f.Path(host), "current"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// Running reports whether host's app runs (the default commands' file).
func (f *Fleet) Running(host string) bool {
	_, err := os.Stat(filepath.Join(f.Path(host), "running"))
	return err == nil
}

// MigrationLines are the lines of host's migrations.log.
func (f *Fleet) MigrationLines(host string) []string {
	b, _ := os.ReadFile(filepath.Join(f.Path(host), "migrations.log"))
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// HolderDied rewrites the lock so that the process holding it has ended
// (a pid reused by another process: its start time differs), as after a
// SIGKILL of the relctl that holds it.
func (f *Fleet) HolderDied(t testing.TB) {
	t.Helper()
	file := filepath.Join(f.Path(f.Inv.Hosts[0].Name), ".relctl", "lock")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := pstartRE.ReplaceAllString(string(b), `"pstart":1`)
	if s == string(b) {
		t.Fatalf("no process start time in the lock: %s", b)
	}
	must(t, os.WriteFile(file, []byte(s), 0o644))
}

var pstartRE = regexp.MustCompile(`"pstart":\d+`)

// Env is an ops.Env on the fleet over tr (a fresh transport: New).
func (f *Fleet) Env(tr *Transport) *ops.Env {
	return &ops.Env{Inv: f.Inv, Transport: tr, JournalDir: f.JournalDir, Owner: "op@test"}
}

// Transport runs commands on the fleet's hosts. Its zero value is not
// usable: call Fleet.Transport.
type Transport struct {
	f *Fleet

	mu      sync.Mutex
	hang    []fault
	die     []fault
	dead    map[string]bool
	frozen  bool
	entered chan string // "host: what" for every hung or frozen call
	procs   map[*exec.Cmd]bool
}

type fault struct{ host, what string }

// Transport returns a fresh transport on f (one relctl process's view).
// Every process it started is killed when the test ends.
func (f *Fleet) Transport() *Transport {
	tr := &Transport{f: f, dead: map[string]bool{}, entered: make(chan string, 64), procs: map[*exec.Cmd]bool{}}
	f.t.Cleanup(tr.close)
	return tr
}

// Hang makes host's commands whose script contains what hang until their
// timeout passes or their context ends.
func (tr *Transport) Hang(host, what string) {
	tr.mu.Lock()
	tr.hang = append(tr.hang, fault{host, what})
	tr.mu.Unlock()
}

// DieOn kills host's sshd when a command whose script contains what is
// sent: that command and every later call to host fail with
// remote.ErrConnectionLost.
func (tr *Transport) DieOn(host, what string) {
	tr.mu.Lock()
	tr.die = append(tr.die, fault{host, what})
	tr.mu.Unlock()
}

// FreezeOn freezes the transport (SIGKILL of its relctl) when a command
// whose script contains what is sent to host: that command runs on the
// host (it was sent) but its caller never hears back, and no later call
// returns, as if the process were gone.
func (tr *Transport) FreezeOn(host, what string) {
	tr.mu.Lock()
	tr.die = append(tr.die, fault{host, "\x00freeze\x00" + what})
	tr.mu.Unlock()
}

// Entered waits for a hung or frozen call and returns "host: what".
func (tr *Transport) Entered(ctx context.Context) (string, error) {
	select {
	case s := <-tr.entered:
		return s, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// close kills what the transport started on the hosts.
func (tr *Transport) close() {
	tr.mu.Lock()
	var procs []*exec.Cmd
	for c := range tr.procs {
		procs = append(procs, c)
	}
	tr.mu.Unlock()
	for _, c := range procs {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
}

// gone blocks forever: the caller's relctl process is dead.
func gone() { select {} }

func (tr *Transport) announce(s string) {
	select {
	case tr.entered <- s:
	default:
	}
}

// check applies the faults to a call on host with script s: an error when
// the host is dead or the call hangs, freeze when the call runs and is
// then never answered.
func (tr *Transport) check(ctx context.Context, host, s string, timeout time.Duration) (err error, freeze bool) {
	tr.mu.Lock()
	frozen, dead := tr.frozen, tr.dead[host]
	var hang, die, frz bool
	var what string
	for _, ft := range tr.die {
		if ft.host != host {
			continue
		}
		if w, ok := strings.CutPrefix(ft.what, "\x00freeze\x00"); ok {
			if strings.Contains(s, w) {
				frz, what = true, w
				tr.frozen = true
			}
		} else if strings.Contains(s, ft.what) {
			die, what = true, ft.what
			tr.dead[host] = true
		}
	}
	for _, ft := range tr.hang {
		if ft.host == host && strings.Contains(s, ft.what) {
			hang, what = true, ft.what
		}
	}
	tr.mu.Unlock()
	switch {
	case frozen:
		gone()
	case dead || die:
		return fmt.Errorf("%s: %w (sshd died)", host, remote.ErrConnectionLost), false
	case frz:
		tr.announce(host + ": " + what)
		return nil, true
	case hang:
		tr.announce(host + ": " + what)
		var tc <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			tc = t.C
		}
		select {
		case <-tc:
			return fmt.Errorf("%s: %w after %s", host, remote.ErrTimeout, timeout), false
		case <-ctx.Done():
			return fmt.Errorf("%s: command stopped: %w", host, ctx.Err()), false
		}
	}
	return nil, false
}

// Run implements rollout.Hosts: sh -c script in the host's directory,
// with the command's environment, its timeout, its output line by line.
func (tr *Transport) Run(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	if !tr.known(host) {
		return remote.Result{ExitCode: -1}, fmt.Errorf("%s: no such host in the test fleet", host)
	}
	err, freeze := tr.check(ctx, host, c.Script, c.Timeout)
	if err != nil {
		return remote.Result{ExitCode: -1}, err
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.Command("sh", "-c", c.Script)
	cmd.Dir = tr.f.Root(host)
	cmd.Env = append(os.Environ(), "HOME="+tr.f.Root(host))
	for k, v := range c.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return remote.Result{ExitCode: -1}, err
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return remote.Result{ExitCode: -1}, err
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return remote.Result{ExitCode: -1}, err
	}
	tr.mu.Lock()
	tr.procs[cmd] = true
	tr.mu.Unlock()
	if freeze {
		// The command runs on the host; its relctl never hears back.
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		go func() { _, _ = io.Copy(io.Discard, errPipe) }()
		go func() { _ = cmd.Wait() }()
		gone()
	}
	var wg sync.WaitGroup
	lines := func(r io.Reader, to func(string), keep *bytes.Buffer) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := remote.Sanitize(sc.Text())
			if keep != nil {
				keep.WriteString(l + "\n")
			}
			if to != nil {
				to(l)
			}
		}
	}
	wg.Add(2)
	go lines(stdout, c.Stdout, nil)
	go lines(errPipe, c.Stderr, &stderr)
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	wg.Wait()
	werr := cmd.Wait()
	stop()
	tr.mu.Lock()
	delete(tr.procs, cmd)
	tr.mu.Unlock()
	res := remote.Result{Duration: time.Since(begin)}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		res.ExitCode = -1
		return res, fmt.Errorf("%s: %w after %s", host, remote.ErrTimeout, c.Timeout)
	case ctx.Err() != nil:
		res.ExitCode = -1
		return res, fmt.Errorf("%s: command stopped: %w", host, ctx.Err())
	case werr != nil:
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			res.ExitCode = -1
			return res, werr
		}
		res.ExitCode = ee.ExitCode()
		return res, &remote.ExitError{Host: host, Code: res.ExitCode, StderrTail: stderr.String()}
	}
	return res, nil
}

func (tr *Transport) known(host string) bool {
	for _, h := range tr.f.Hosts {
		if h == host {
			return true
		}
	}
	return false
}

// Output implements observe.Runner.
func (tr *Transport) Output(ctx context.Context, host, script string) (string, error) {
	var b strings.Builder
	_, err := tr.Run(ctx, host, remote.Command{Script: script, Stdout: func(l string) { b.WriteString(l + "\n") }})
	return strings.TrimSpace(b.String()), err
}

// Upload implements rollout.Hosts: a copy, checked by sha256.
func (tr *Transport) Upload(ctx context.Context, host, local, remotePath, sha string) (bool, error) {
	if err, _ := tr.check(ctx, host, "upload "+remotePath, 0); err != nil {
		return false, err
	}
	if got, err := fileSHA(remotePath); err == nil && got == sha {
		return true, nil
	}
	b, err := os.ReadFile(local)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(remotePath), 0o755); err != nil {
		return false, err
	}
	if err := os.WriteFile(remotePath, b, 0o644); err != nil {
		return false, err
	}
	if got, _ := fileSHA(remotePath); got != sha {
		return false, fmt.Errorf("%s: upload %s: sha256 %s, want %s", host, remotePath, got, sha)
	}
	return false, nil
}

// DialVia implements lb.Connector; the fleet's balancer is "none".
func (tr *Transport) DialVia(context.Context, string, string, string) (net.Conn, error) {
	return nil, errors.New("opstest: no balancer to dial")
}

// RunOn implements lb.Connector.
func (tr *Transport) RunOn(ctx context.Context, host, script string) (string, error) {
	if host == "" {
		return "", errors.New("opstest: no local balancer")
	}
	return tr.Output(ctx, host, script)
}

var _ ops.Transport = (*Transport)(nil)
var _ rollout.Hosts = (*Transport)(nil)

func fileSHA(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// writeArtifact writes a release tarball holding VERSION.
func writeArtifact(t testing.TB, path, v string) {
	mustMkdir(t, filepath.Dir(path))
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte(v + "\n")
	must(t, tw.WriteHeader(&tar.Header{Name: "VERSION", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)}))
	_, err := tw.Write(body)
	must(t, err)
	must(t, tw.Close())
	must(t, gz.Close())
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

func mustMkdir(t testing.TB, dir string) { must(t, os.MkdirAll(dir, 0o755)) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// SlowMigrate is a migrate command that runs until the file "go" appears
// in the migrations host's path (see Release), then logs its run.
const SlowMigrate = `while [ ! -f {{.Path}}/go ]; do sleep 0.05; done; echo pre {{.Version}} >> {{.Path}}/migrations.log`

// Release lets a SlowMigrate on host end.
func (f *Fleet) Release(t testing.TB, host string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(f.Path(host), "go"), nil, 0o644))
}

// KillDuring starts the upgrade to 1.1.0 through ops, as `relctl apply
// --yes` does, and "SIGKILLs" that relctl when it sends host a command
// whose script contains what: the command runs on the host, the process
// says nothing more (its transport is frozen), and the lock says its
// holder has ended. It returns the killed run's id.
func (f *Fleet) KillDuring(t testing.TB, host, what string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dead := f.Transport()
	dead.FreezeOn(host, what)
	env := f.Env(dead)
	pr, err := env.PlanUpgrade(ctx, ops.UpgradeOptions{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := env.Start(ctx, pr, ops.StartOptions{Gate: rollout.AutoApprove{}})
	if err != nil {
		t.Fatal(err)
	}
	go run.Wait(context.Background()) // never returns: its process is "killed"
	if got, err := dead.Entered(ctx); err != nil || got != host+": "+what {
		t.Fatalf("the kill: %q %v", got, err)
	}
	f.HolderDied(t)
	return run.ID
}

// MigrationPID waits (generously) for the migration wrapper of run's step
// on host to record the pid of the shell that runs the migration.
func (f *Fleet) MigrationPID(t testing.TB, host, runID, step string) string {
	t.Helper()
	file := filepath.Join(rollout.MigrationDir(f.Path(host), runID, step), "pid")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(file)
		if pid, _, ok := strings.Cut(string(b), " "); ok && pid != "" {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never recorded a pid", file)
		}
	}
}
