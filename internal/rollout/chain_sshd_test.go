package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/testkit/testfleet"
	"github.com/relctl/relctl/internal/view"
)

// chainFault is run by stop and start as `sh $path/chain-fault.sh ACTION`,
// and by the mv wrapper (the switch's `mv -T`) as ACTION switch: it acts
// once on the line "ACTION KIND" of $path/fault. A hang records its pid
// (its process group: the action's) in $path/hang.pid. Gone records the
// chain's pid, writes gone-me, and runs until the host sees relctl's
// session gone: a newline written to the chain's output, in a subshell,
// fails (sshd has closed the session's pipe, as it does once the
// connection ended; within 25 s, or the stop fails saying so); then it
// writes stop-done and ends well.
const chainFault = `base=$(dirname "$0"); f="$base/fault"
[ -f "$f" ] || exit 0
read -r act kind < "$f"
[ "$act" = "$1" ] || exit 0
rm -f "$f"
case "$kind" in
  fail) echo "injected failure of $1" >&2; exit 1 ;;
  hang) echo $$ > "$base/hang.pid"; exec sleep 600 ;;
  gone) awk '{print $4}' "/proc/$PPID/stat" > "$base/chain.pid"; : > "$base/gone-me"
    end=$(( $(date +%s) + 25 ))
    while ( printf '\n' ) 2>/dev/null; do
      if [ "$(date +%s)" -gt "$end" ]; then echo "chain-fault.sh: the session's output still takes writes after 25 s" >&2; exit 9; fi
      sleep 0.05
    done
    : > "$base/stop-done" ;;
esac`

// chainMv is mv, first on the PATH of every session (a forced command on
// the client key), so that the switch's own mv can fail or hang.
const chainMv = `#!/bin/sh
for last; do :; done
base=$(dirname "$last")
if [ -f "$base/chain-fault.sh" ]; then sh "$base/chain-fault.sh" switch || exit $?; fi
exec /bin/mv "$@"`

// The second and third actions of the forward chain (switch, start) fail
// or hang INSIDE the one command that carries stop → version, on real
// OpenSSH sshd as a non-root user: the events say exactly which actions
// ran and how each ended, the actions after the failed one never start,
// compensation unwinds exactly the completed ones (and the failed one),
// a hung action is killed with its process group at its own timeout by
// the host's watchdog, and every host ends in service on 1.0.0.
func TestChainFaultsOnRealSSHD(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real sshd")
	}
	f := testfleet.Start(t, testfleet.Options{Hosts: 3})
	wrapHostMv(t, f, "chain", chainMv)
	art := realTarball(t, t.TempDir(), "1.1.0")
	data, _ := os.ReadFile(art)
	sum := sha256.Sum256(data)

	var table []string
	for _, action := range []plan.Action{plan.ActionSwitch, plan.ActionStart} {
		for _, kind := range []string{"fail", "hang"} {
			t.Run(string(action)+"/"+kind, func(t *testing.T) {
				chainCell(t, f, art, hex.EncodeToString(sum[:]), action, kind, &table)
			})
		}
	}
	t.Logf("inside the chain, on real sshd, fault on web2:\n%s", strings.Join(table, "\n"))

	// relctl's connections end while web2's stop runs (as when relctl is
	// killed): the stop runs to its end, and the chain then ends without
	// starting the switch.
	t.Run("relctl gone during stop", func(t *testing.T) {
		// The stop ends only once the host has seen the session go (its
		// probing writes, in a subshell, fail), whenever that is: ending
		// after a fixed second raced with a loaded machine, where the
		// chain's next start record could still get into the pipe.
		inv, conn := chainFleet(t, f, art, "stop gone\n", "sh {{.Path}}/chain-fault.sh stop")
		web2 := f.Hosts[1]
		p, err := plan.Build(inv, plan.Assume(inv, "1.0.0"), plan.Options{To: "1.1.0"})
		if err != nil {
			t.Fatal(err)
		}
		bal := newFake(t, []string{"web1", "web2", "web3"}, "1.0.0")
		e := New(Config{Inventory: inv, Plan: p, Hosts: conn, Balancer: bal, Bus: event.NewBus("r", nil), RunID: "r", Owner: "o",
			Artifacts: map[string]Artifact{"1.1.0": {Path: art, SHA256: hex.EncodeToString(sum[:])}}})
		done := make(chan Result, 1)
		go func() { done <- e.Run(context.Background()) }()
		exists := func(name string) bool { _, err := os.Stat(filepath.Join(web2.Path, name)); return err == nil }
		deadline := time.Now().Add(60 * time.Second)
		for !exists("gone-me") {
			if time.Now().After(deadline) {
				t.Fatal("web2's stop never started")
			}
			time.Sleep(10 * time.Millisecond)
		}
		conn.Pool.Close()
		b, _ := os.ReadFile(filepath.Join(web2.Path, "chain.pid"))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid <= 1 {
			t.Fatalf("chain pid %q", b)
		}
		for !exists("stop-done") || syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("stop done %v, the chain (pid %d) still runs", exists("stop-done"), pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if v := readCurrent(t, web2.Path); v != "1.0.0" {
			t.Errorf("web2 switched to %s after relctl was gone", v)
		}
		select {
		case <-done:
		case <-time.After(120 * time.Second):
			t.Fatal("the run never ended")
		}
	})
}

// chainFleet resets f's hosts to 1.0.0 in service, writes fault on web2,
// and returns the inventory and a transport for them.
func chainFleet(t *testing.T, f *testfleet.Fleet, art, fault, stop string) (*fleet.Inventory, *SSH) {
	chown := func(p string) {
		if err := os.Lchown(p, f.UID, f.GID); err != nil {
			t.Fatal(err)
		}
	}
	var text strings.Builder
	fmt.Fprintf(&text, `app: shop
path: /unused
artifact: {source: %q}
ssh: {user: %s, identity_file: %s, known_hosts: %s, use_ssh_config: false}
commands:
  stop: %q
  start: "sh {{.Path}}/chain-fault.sh start && echo started"
  health: "test -f {{.Path}}/current/VERSION"
  version: "cat {{.Path}}/current/VERSION"
health: {timeout: 4s, interval: 50ms, stable_for: 0s}
rollout: {batches: [1], pause_after_canary: false, on_failure: rollback}
balancer: {kind: none, drain_timeout: 100ms}
timeouts: {stop: 30s, start: 2s, switch: 2s, health_check: 2s, version: 2s, lock: 10s, observe: 10s, upload: 20s}
hosts:
`, strings.Replace(art, "1.1.0", "{{.Version}}", 1), f.User, f.IdentityFile, f.KnownHostsFile, stop)
	for _, h := range f.Hosts {
		// Each cell starts from 1.0.0, in service.
		for _, p := range []string{"releases", "current", "fault", "hang.pid", ".relctl", "current.relctl-tmp", "chain.pid", "gone-me", "stop-done"} {
			_ = os.RemoveAll(filepath.Join(h.Path, p))
		}
		rel := filepath.Join(h.Path, "releases", "1.0.0")
		if err := os.MkdirAll(rel, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(rel, "VERSION"), []byte("1.0.0\n"), 0o644)
		_ = os.WriteFile(filepath.Join(h.Path, "chain-fault.sh"), []byte(chainFault), 0o755)
		if err := os.Symlink(rel, filepath.Join(h.Path, "current")); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Join(h.Path, "releases"), rel, filepath.Join(rel, "VERSION"), filepath.Join(h.Path, "current")} {
			chown(p)
		}
		fmt.Fprintf(&text, "  - {name: %s, address: %q, path: %s}\n", h.Name, h.SSHAddr, h.Path)
	}
	web2 := f.Hosts[1]
	if err := os.WriteFile(filepath.Join(web2.Path, "fault"), []byte(fault), 0o644); err != nil {
		t.Fatal(err)
	}
	chown(filepath.Join(web2.Path, "fault"))
	inv, err := fleet.Parse(filepath.Join(f.Root, "fleet.yaml"), []byte(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	pool := remote.NewPool(remote.Options{KillGrace: 200 * time.Millisecond, SSHConfigPath: filepath.Join(f.Root, "no-ssh-config")})
	t.Cleanup(func() { pool.Close() })
	conn := &SSH{Pool: pool, Configs: map[string]remote.HostConfig{}}
	for _, h := range f.Hosts {
		conn.Configs[h.Name] = remote.HostConfig{Name: h.Name, Address: h.SSHAddr, User: f.User, IdentityFile: f.IdentityFile,
			KnownHosts: []string{f.KnownHostsFile}, ConnectTimeout: 10 * time.Second}
	}
	return inv, conn
}

func chainCell(t *testing.T, f *testfleet.Fleet, art, sha string, action plan.Action, kind string, table *[]string) {
	inv, conn := chainFleet(t, f, art, fmt.Sprintf("%s %s\n", action, kind), "sh {{.Path}}/chain-fault.sh stop && echo stopped")
	web2 := f.Hosts[1]
	ch := &countingHosts{Hosts: conn}
	bal := newFake(t, []string{"web1", "web2", "web3"}, "1.0.0")
	bal.verify = true
	p, err := plan.Build(inv, plan.Assume(inv, "1.0.0"), plan.Options{To: "1.1.0", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []event.Event
	bus := event.NewBus("r", nil, event.SinkFunc(func(e event.Event) {
		ch.sink(e)
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}))
	start := time.Now()
	res := New(Config{Inventory: inv, Plan: p, Hosts: ch, Balancer: bal, Bus: bus, RunID: "r", Owner: "o",
		Artifacts: map[string]Artifact{"1.1.0": {Path: art, SHA256: sha}}}).Run(context.Background())
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()

	// What web2's actions did, in order, as the events report them.
	var ran []string
	var failed event.Event
	for _, e := range events {
		if e.Host != "web2" || e.Type != event.ActionDone {
			continue
		}
		ran = append(ran, fmt.Sprintf("%s %s", e.Action, e.Status))
		if e.Status == event.StatusFailed && e.Action == action {
			failed = e
		}
	}
	// Each action's output is reported inside that action: stop's
	// "stopped" between stop's start and end, and nowhere else.
	var where []string
	cur := ""
	for _, e := range events {
		if e.Host != "web2" {
			continue
		}
		switch e.Type {
		case event.ActionStarted:
			cur = string(e.Action)
		case event.ActionDone:
			cur = ""
		case event.StepOutput:
			if e.Line == "stopped" {
				where = append(where, cur)
			}
		}
	}
	if len(where) == 0 || where[0] != "stop" {
		t.Errorf("stop's output was reported in %q, want in stop first", where)
	}
	want := []string{"drain ok", "wait-idle ok", "stop ok", "switch ok"}
	if action == plan.ActionSwitch {
		want = append(want[:3], "switch failed", "undo-switch ok", "undo-stop ok", "undo-drain ok")
	} else {
		want = append(want, "start failed", "undo-start ok", "undo-switch ok", "undo-stop ok", "undo-drain ok")
	}
	if !slices.Equal(ran, want) {
		t.Errorf("web2's actions:\n%v\nwant\n%v", ran, want)
	}
	code, lines := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary})
	if code != view.ExitRolledBack {
		t.Errorf("exit %d, want %d (%s: %v)\n%s", code, view.ExitRolledBack, res.Outcome, res.Err, strings.Join(lines, "\n"))
	}
	wantErr := map[string]string{"fail": "injected failure of " + string(action), "hang": "timed out after 2s"}[kind]
	if !strings.Contains(failed.Error, wantErr) {
		t.Errorf("web2's %s failed with %q, want it to mention %q", action, failed.Error, wantErr)
	}
	if kind == "hang" {
		// Killed by the host's watchdog at the action's own 2 s, with
		// its process group, not at the chain's bound.
		if failed.Duration > 2*time.Second+5*time.Second {
			t.Errorf("the hung %s ended after %s", action, failed.Duration)
		}
		b, err := os.ReadFile(filepath.Join(web2.Path, "hang.pid"))
		if err != nil {
			t.Fatalf("the hang never started: %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		deadline := time.Now().Add(30 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("the hung %s (pid %d) still runs", action, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// stop → the failed action went out as one command.
	all, _ := ch.counts("web2")
	ch.mu.Lock()
	n, in := 0, false
	for _, l := range ch.log {
		switch l {
		case "web2 started stop":
			in = true
		case "web2 done " + string(action):
			in = false
		case "run web2":
			if in {
				n++
			}
		}
	}
	ch.mu.Unlock()
	if n != 1 {
		t.Errorf("web2: %d commands from stop to the failed %s, want 1", n, action)
	}
	for i, h := range f.Hosts {
		l, err := os.Readlink(filepath.Join(h.Path, "current"))
		if err != nil || filepath.Base(l) != "1.0.0" || !bal.up[h.Name] {
			t.Errorf("%s: current %s (%v), in rotation %v; want in service on 1.0.0", h.Name, l, err, bal.up[h.Name])
		}
		_ = i
	}
	*table = append(*table, fmt.Sprintf("%-6s %-4s exit %d in %5s, %d commands on web2: %s", action, kind, code, took.Round(100*time.Millisecond), all, strings.Join(ran[2:], ", ")))
}

// wrapHostMv puts mvScript first on the PATH of every SSH session to f's
// hosts as mv (a forced command in authorized_keys that runs the original
// command, or the SFTP server), so a test sees or faults the host-side mv
// that switch uses.
func wrapHostMv(t *testing.T, f *testfleet.Fleet, name, mvScript string) {
	t.Helper()
	bin := filepath.Join(f.Root, name+"-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "mv"), []byte(mvScript), 0o755); err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(f.Root, "authorized_keys")
	orig, err := os.ReadFile(auth)
	if err != nil {
		t.Fatal(err)
	}
	sessionCmd := filepath.Join(f.Root, name+"-session-cmd")
	body := fmt.Sprintf(`PATH=%s:$PATH; export PATH
if [ "$SSH_ORIGINAL_COMMAND" = internal-sftp ]; then exec /usr/lib/openssh/sftp-server; fi
eval "$SSH_ORIGINAL_COMMAND"
`, bin)
	if err := os.WriteFile(sessionCmd, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auth, []byte(fmt.Sprintf("command=\". %s\" %s", sessionCmd, orig)), 0o644); err != nil {
		t.Fatal(err)
	}
}
