package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
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

// blackholeProxy forwards TCP connections to one sshd. Blackhole freezes
// every connection open at that moment: nothing more is forwarded in
// either direction and neither socket is closed, as a partition (or a
// middlebox dropping a flow) does, so sshd never learns that relctl is
// gone. Connections made afterwards are forwarded as before, or, when
// the blackhole holds them, only once heal is called (the partition
// lasts until then for new connections too: their TCP connect succeeds,
// and nothing reaches sshd before the heal).
type blackholeProxy struct {
	ln     net.Listener
	target string
	done   chan struct{} // closed by close

	mu     sync.Mutex
	conns  []*proxied    // every connection, frozen or not
	healed chan struct{} // closed: new connections are forwarded
	closed bool
	wg     sync.WaitGroup
}

type proxied struct {
	client, server net.Conn
	frozen         chan struct{}
	once           sync.Once
}

func startBlackholeProxy(t *testing.T, ip, target string) *blackholeProxy {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	healed := make(chan struct{})
	close(healed)
	p := &blackholeProxy{ln: ln, target: target, done: make(chan struct{}), healed: healed}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *blackholeProxy) addr() string { return p.ln.Addr().String() }

func (p *blackholeProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		healed := p.healed
		p.mu.Unlock()
		select {
		case <-healed:
		case <-p.done:
			c.Close()
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 10*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxied{client: c, server: s, frozen: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, c, s)
		go p.pipe(pc, s, c)
	}
}

// pipe copies from → to until the connection is frozen: a chunk read
// after that is dropped, and the copier stops reading (the kernel's
// buffers fill, TCP flow control holds the sender) without closing.
func (p *blackholeProxy) pipe(pc *proxied, from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		select {
		case <-pc.frozen:
			return
		default:
		}
		if n > 0 {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := to.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			return
		}
	}
}

// blackhole freezes every connection open now; it returns how many.
// With hold, connections made from now on wait for heal.
func (p *blackholeProxy) blackhole(hold bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hold {
		p.healed = make(chan struct{})
	}
	n := 0
	for _, pc := range p.conns {
		pc.once.Do(func() { close(pc.frozen); n++ })
	}
	return n
}

// heal forwards the connections held since the blackhole, and every
// later one.
func (p *blackholeProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
	default:
		close(p.healed)
	}
}

// close ends the proxy and every connection, frozen ones included (the
// test is over: sshd may now learn that the client is gone).
func (p *blackholeProxy) close() {
	p.mu.Lock()
	if !p.closed {
		close(p.done)
	}
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	for _, pc := range conns {
		pc.client.Close()
		pc.server.Close()
	}
	p.wg.Wait()
}

// partitionMv is mv, first on the PATH of every session: on a host that
// keeps a "ran" file it records each switch (mv -T tmp current) there,
// with the release the switch points current at.
const partitionMv = `#!/bin/sh
for last; do :; done
base=$(dirname "$last")
if [ -f "$base/ran" ] && [ "$1" = -T ]; then echo "switch $(basename "$(readlink "$2")")" >>"$base/ran"; fi
exec /bin/mv "$@"`

// partitionCmd is the hosts' stop and start (sh path/partition.sh stop|start).
// Each records what it ran, with the release current points at, in ran.
// The first stop (start) on a host with a stop-waits (start-waits) file
// writes stop-marker (start-marker), then runs until what the file names
// has happened: "holed" (the test froze relctl's connection: the file
// holed) or "cancel" (relctl set the cancel marker of a chain on the
// host). The action thus ends after that, however slow the host or relctl
// is, with no fixed sleep; past 25 s it fails, saying so.
const partitionCmd = `base=$(dirname "$0")
echo "$1 $(basename "$(readlink "$base/current")")" >>"$base/ran"
if [ -f "$base/$1-waits" ] && [ ! -e "$base/$1-marker" ]; then
	: >"$base/$1-marker"
	what=$(cat "$base/$1-waits")
	end=$(( $(date +%s) + 25 ))
	until case "$what" in
		holed) [ -e "$base/holed" ] ;;
		cancel) ls "$base"/.relctl/chains/*/*/cancel >/dev/null 2>&1 ;;
		*) echo "partition.sh: unknown wait $what" >&2; exit 9 ;;
		esac
	do
		if [ "$(date +%s)" -gt "$end" ]; then echo "partition.sh: $1 waited 25 s for $what" >&2; exit 9; fi
		sleep 0.05
	done
fi
case "$1" in stop) echo stopped ;; start) echo started ;; esac
`

// The hole the chain's host-side trace closes: relctl's connection to
// web2 is blackholed (no more bytes either way, neither socket closed, so
// sshd never notices) while web2's stop runs inside the chain. relctl's
// keepalive declares the connection dead in bounded time; before undoing
// anything relctl's first command on a new connection stops the chain
// (cancel marker, bounded wait) and reads its log; compensation unwinds
// exactly what the log says started. Whatever the host managed before the
// cancel landed, every host ends in service on 1.0.0, the version the
// outcome names, and no action ran twice.
//
// Each cell pins where the cancel lands by conditions, not by timing: the
// stop runs until the blackhole is in place (or until the cancel), the
// partition holds relctl's new connections until the host has got as far
// as the cell needs, and a start that is to be cut runs until the cancel.
// (Fixed sleeps raced on a loaded machine: a stop that ended before the
// freeze got its end through, and a cancel that came late or early landed
// in another action.)
func TestChainPartitionOnRealSSHD(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real sshd")
	}
	f := testfleet.Start(t, testfleet.Options{Hosts: 3})
	wrapHostMv(t, f, "partition", partitionMv)
	art := realTarball(t, t.TempDir(), "1.1.0")
	data, _ := os.ReadFile(art)
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])

	var table []string
	for _, c := range []struct {
		name       string
		stopWaits  string // what web2's first stop runs until (partitionCmd)
		startWaits string // what web2's first start runs until ("": nothing)
		// heal says when relctl's new connections to web2 get through
		// (nil: at once), given web2's path and its chain's directory.
		heal  func(path, dir string) bool
		check func(t *testing.T, started []plan.Action, log string)
	}{
		// The cancel lands while stop still runs: switch never starts.
		{"cancel during stop", "cancel", "", nil, func(t *testing.T, started []plan.Action, log string) {
			if !slices.Equal(started, []plan.Action{plan.ActionStop}) || !strings.Contains(log, "cancelled switch\n") {
				t.Errorf("web2's chain log:\n%s\nwant stop started, switch cancelled", log)
			}
		}},
		// The host runs on to the end of the chain before relctl gets
		// through: compensation undoes start, switch and stop, each once.
		{"chain ran on", "holed", "", chainEnded, func(t *testing.T, started []plan.Action, log string) {
			if !slices.Contains(started, plan.ActionSwitch) || !slices.Contains(started, plan.ActionStart) {
				t.Errorf("web2's chain log:\n%s\nwant switch and start started", log)
			}
		}},
		// The cancel lands while start runs (relctl gets through once start
		// has begun): start runs to its end, the health wait never starts,
		// and start counts as started.
		{"cancel during start", "holed", "cancel", func(path, _ string) bool {
			_, err := os.Stat(filepath.Join(path, "start-marker"))
			return err == nil
		}, func(t *testing.T, started []plan.Action, log string) {
			if !slices.Equal(started, []plan.Action{plan.ActionStop, plan.ActionSwitch, plan.ActionStart}) || !strings.Contains(log, "cancelled health\n") {
				t.Errorf("web2's chain log:\n%s\nwant stop, switch and start started, health cancelled", log)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			line := partitionCell(t, f, art, sha, c.stopWaits, c.startWaits, c.heal, c.check)
			table = append(table, fmt.Sprintf("%-18s %s", c.name, line))
		})
	}
	t.Logf("web2 blackholed during its stop, on real sshd:\n%s", strings.Join(table, "\n"))
}

// chainEnded reports whether the chain whose trace is in dir has ended on
// the host (its recorded pid is gone).
func chainEnded(_, dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return false
	}
	pid, _ := strconv.Atoi(strings.Fields(string(b) + " x")[0])
	return pid > 1 && syscall.Kill(pid, 0) != nil
}

func partitionCell(t *testing.T, f *testfleet.Fleet, art, sha, stopWaits, startWaits string, heal func(path, dir string) bool, check func(*testing.T, []plan.Action, string)) string {
	web2 := f.Hosts[1]
	proxy := startBlackholeProxy(t, web2.IP, web2.SSHAddr)
	inv, conn := partitionFleet(t, f, art, stopWaits, startWaits, proxy.addr())
	bal := newFake(t, []string{"web1", "web2", "web3"}, "1.0.0")
	p, err := plan.Build(inv, plan.Assume(inv, "1.0.0"), plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []event.Event
	var stopFailedAt time.Time
	bus := event.NewBus("r", nil, event.SinkFunc(func(e event.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
		if e.Host == "web2" && e.Type == event.ActionDone && e.Action == plan.ActionStop && stopFailedAt.IsZero() {
			stopFailedAt = time.Now()
		}
	}))
	start := time.Now()
	done := make(chan Result, 1)
	go func() {
		done <- New(Config{Inventory: inv, Plan: p, Hosts: conn, Balancer: bal, Bus: bus, RunID: "r", Owner: "o",
			Artifacts: map[string]Artifact{"1.1.0": {Path: art, SHA256: sha}}}).Run(context.Background())
	}()
	marker := filepath.Join(web2.Path, "stop-marker")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		select {
		case res := <-done:
			t.Fatalf("the run ended (%s: %v) before web2's stop started", res.Outcome, res.Err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("web2's stop never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := proxy.blackhole(heal != nil); n != 1 {
		t.Fatalf("blackholed %d connections to web2, want 1 (relctl's)", n)
	}
	holed := time.Now()
	if err := os.WriteFile(filepath.Join(web2.Path, "holed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if heal != nil {
		// The stop runs: its chain's trace is there.
		dirs, _ := filepath.Glob(filepath.Join(web2.Path, ".relctl", "chains", "r", "*"))
		if len(dirs) != 1 {
			t.Fatalf("web2's chains: %v, want one", dirs)
		}
		healBy := time.Now().Add(60 * time.Second)
		for !heal(web2.Path, dirs[0]) {
			if time.Now().After(healBy) {
				b, _ := os.ReadFile(filepath.Join(dirs[0], "log"))
				t.Fatalf("web2 never got as far as the cell needs; its chain log:\n%s", b)
			}
			time.Sleep(5 * time.Millisecond)
		}
		proxy.heal()
	}
	var res Result
	select {
	case res = <-done:
	case <-time.After(180 * time.Second):
		t.Fatal("the run never ended")
	}
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()

	// relctl noticed the dead connection within its keepalive's bound
	// (5 × 1 s), with a generous margin for a loaded machine.
	var stopEv, settled event.Event
	for _, e := range events {
		if e.Host != "web2" {
			continue
		}
		if e.Type == event.ActionDone && e.Action == plan.ActionStop {
			stopEv = e
		}
		if e.Type == event.Warning && strings.Contains(e.Message, "the chain's session was lost") {
			settled = e
		}
	}
	if stopEv.Status != event.StatusFailed || !strings.Contains(stopEv.Error, remote.ErrConnectionLost.Error()) {
		t.Errorf("web2's stop: %s %q, want failed with the connection lost", stopEv.Status, stopEv.Error)
	}
	detect := stopFailedAt.Sub(holed)
	if stopFailedAt.IsZero() || detect > 20*time.Second {
		t.Errorf("the blackholed connection was noticed after %s", detect)
	}
	if !strings.Contains(settled.Message, "stopped the chain on the host") {
		t.Errorf("no word of the chain stopped on web2: %q", settled.Message)
	}

	// The chain's own log on web2, and its process gone.
	dirs, _ := filepath.Glob(filepath.Join(web2.Path, ".relctl", "chains", "r", "*"))
	if len(dirs) != 1 {
		t.Fatalf("web2's chains: %v, want one", dirs)
	}
	logb, err := os.ReadFile(filepath.Join(dirs[0], "log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(logb)
	tr, err := parseChainStop("log-begin\n"+log+"log-end\n", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "cancel")); err != nil {
		t.Errorf("web2's chain has no cancel marker: %v", err)
	}
	pidb, _ := os.ReadFile(filepath.Join(dirs[0], "pid"))
	pid, _ := strconv.Atoi(strings.Fields(string(pidb) + " x")[0])
	if pid <= 1 {
		t.Fatalf("web2's chain pid %q", pidb)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("web2's chain (pid %d) still runs after compensation", pid)
	}
	// No action began after the cancel: each started action is in the
	// log before the cancellation, and nothing follows "cancelled".
	if i := strings.Index(log, "cancelled "); i >= 0 && strings.Contains(log[i:], "start ") {
		t.Errorf("an action started after the cancel:\n%s", log)
	}

	// Compensation undid exactly what started, each once, in reverse.
	var undos []string
	for _, e := range events {
		if e.Host == "web2" && e.Type == event.ActionDone && strings.HasPrefix(string(e.Action), "undo-") {
			undos = append(undos, fmt.Sprintf("%s %s", e.Action, e.Status))
		}
	}
	var want []string
	for _, a := range []plan.Action{plan.ActionStart, plan.ActionSwitch, plan.ActionStop} {
		if slices.Contains(tr.started, a) {
			want = append(want, "undo-"+string(a)+" ok")
		}
	}
	want = append(want, "undo-drain ok")
	if !slices.Equal(undos, want) {
		t.Errorf("web2's undos %v, want %v (chain log:\n%s)", undos, want, log)
	}

	// What ran on web2, as its commands recorded it: each forward action
	// at most once, each undone once after it, ending on 1.0.0 started.
	ran := readLines(t, filepath.Join(web2.Path, "ran"))
	wantRan := []string{"stop 1.0.0"}
	if slices.Contains(tr.started, plan.ActionSwitch) {
		wantRan = append(wantRan, "switch 1.1.0")
	}
	if slices.Contains(tr.started, plan.ActionStart) {
		wantRan = append(wantRan, "start 1.1.0", "stop 1.1.0")
	}
	if slices.Contains(tr.started, plan.ActionSwitch) {
		wantRan = append(wantRan, "switch 1.0.0")
	}
	wantRan = append(wantRan, "start 1.0.0")
	if !slices.Equal(ran, wantRan) {
		t.Errorf("web2 ran %q, want %q (chain log:\n%s)", ran, wantRan, log)
	}
	if check != nil {
		check(t, tr.started, log)
	}

	// Every host: in service on 1.0.0, the version the outcome names.
	for _, h := range f.Hosts {
		if v := readCurrent(t, h.Path); v != "1.0.0" || !bal.up[h.Name] {
			t.Errorf("%s: current %s, in rotation %v; want in service on 1.0.0", h.Name, v, bal.up[h.Name])
		}
	}
	if got := readLines(t, filepath.Join(f.Hosts[2].Path, "ran")); len(got) != 0 {
		t.Errorf("web3 (never reached) ran %q", got)
	}
	if got, want := readLines(t, filepath.Join(f.Hosts[0].Path, "ran")), []string{"stop 1.0.0", "switch 1.1.0", "start 1.1.0", "stop 1.1.0", "switch 1.0.0", "start 1.0.0"}; !slices.Equal(got, want) {
		t.Errorf("web1 (upgraded, then rolled back) ran %q, want %q", got, want)
	}
	code, lines := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary})
	if res.Outcome != event.OutcomeRolledBack || code != view.ExitRolledBack {
		t.Errorf("outcome %s, exit %d, want rolled back, exit %d (%v)\n%s", res.Outcome, code, view.ExitRolledBack, res.Err, strings.Join(lines, "\n"))
	}
	return fmt.Sprintf("noticed in %5s, run %5s, exit %d; web2's chain log: %s; undone: %s", detect.Round(10*time.Millisecond), took.Round(100*time.Millisecond), code,
		strings.Join(strings.Split(strings.TrimSpace(log), "\n"), " | "), strings.Join(undos, ", "))
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// partitionFleet resets f's hosts to 1.0.0 in service (each with an empty
// "ran" file), makes web2's first stop write stop-marker and then run
// until stopWaits (and its first start write start-marker and run until
// startWaits, when that is not ""; see partitionCmd), and returns the
// inventory and a transport whose web2 goes through proxy with a
// 1 s × 5 keepalive.
func partitionFleet(t *testing.T, f *testfleet.Fleet, art, stopWaits, startWaits, proxy string) (*fleet.Inventory, *SSH) {
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
  stop: "sh {{.Path}}/partition.sh stop"
  start: "sh {{.Path}}/partition.sh start"
  health: "test -f {{.Path}}/current/VERSION"
  version: "cat {{.Path}}/current/VERSION"
health: {timeout: 4s, interval: 50ms, stable_for: 0s}
rollout: {batches: [1], pause_after_canary: false, on_failure: rollback}
balancer: {kind: none, drain_timeout: 100ms}
timeouts: {stop: 30s, start: 30s, switch: 5s, health_check: 2s, version: 5s, lock: 10s, observe: 10s, upload: 20s}
hosts:
`, strings.Replace(art, "1.1.0", "{{.Version}}", 1), f.User, f.IdentityFile, f.KnownHostsFile)
	for _, h := range f.Hosts {
		for _, p := range []string{"releases", "current", ".relctl", "current.relctl-tmp", "ran", "stop-waits", "stop-marker", "start-waits", "start-marker", "holed"} {
			_ = os.RemoveAll(filepath.Join(h.Path, p))
		}
		rel := filepath.Join(h.Path, "releases", "1.0.0")
		if err := os.MkdirAll(rel, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(rel, "VERSION"), []byte("1.0.0\n"), 0o644)
		_ = os.WriteFile(filepath.Join(h.Path, "ran"), nil, 0o644)
		_ = os.WriteFile(filepath.Join(h.Path, "partition.sh"), []byte(partitionCmd), 0o755)
		if err := os.Symlink(rel, filepath.Join(h.Path, "current")); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Join(h.Path, "releases"), rel, filepath.Join(rel, "VERSION"), filepath.Join(h.Path, "current"), filepath.Join(h.Path, "ran")} {
			chown(p)
		}
		fmt.Fprintf(&text, "  - {name: %s, address: %q, path: %s}\n", h.Name, h.SSHAddr, h.Path)
	}
	web2 := f.Hosts[1]
	if err := os.WriteFile(filepath.Join(web2.Path, "stop-waits"), []byte(stopWaits+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if startWaits != "" {
		if err := os.WriteFile(filepath.Join(web2.Path, "start-waits"), []byte(startWaits+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := fleet.Parse(filepath.Join(f.Root, "fleet.yaml"), []byte(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	// web2's host key, known under the proxy's address too.
	kh, err := os.ReadFile(f.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(web2.SSHAddr)
	var extra string
	for _, l := range strings.Split(string(kh), "\n") {
		if rest, ok := strings.CutPrefix(l, "["+host+"]:"+port+" "); ok {
			phost, pport, _ := net.SplitHostPort(proxy)
			extra = "[" + phost + "]:" + pport + " " + rest + "\n"
		}
	}
	if extra == "" {
		t.Fatalf("no known_hosts line for %s in:\n%s", web2.SSHAddr, kh)
	}
	khProxy := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(khProxy, []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	pool := remote.NewPool(remote.Options{KillGrace: 200 * time.Millisecond, SSHConfigPath: filepath.Join(f.Root, "no-ssh-config")})
	t.Cleanup(func() { pool.Close() })
	conn := &SSH{Pool: pool, Configs: map[string]remote.HostConfig{}}
	for _, h := range f.Hosts {
		conn.Configs[h.Name] = remote.HostConfig{Name: h.Name, Address: h.SSHAddr, User: f.User, IdentityFile: f.IdentityFile,
			KnownHosts: []string{f.KnownHostsFile}, ConnectTimeout: 10 * time.Second}
	}
	// A connection the partition holds (blackhole with hold) waits for
	// the heal in its handshake: ConnectTimeout bounds that wait. The
	// keepalive declares web2 dead after 5 s without an answer: with
	// 300 ms × 4 a loaded machine (this process, the proxy in it, or
	// sshd not scheduled for 1.2 s) lost the connection before any
	// blackhole, and the cells' timing no longer depends on how soon the
	// partition is noticed.
	conn.Configs["web2"] = remote.HostConfig{Name: "web2", Address: proxy, User: f.User, IdentityFile: f.IdentityFile,
		KnownHosts: []string{khProxy}, ConnectTimeout: 60 * time.Second, ServerAliveInterval: time.Second, ServerAliveCountMax: 5}
	return inv, conn
}
