package rollout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/relctl/relctl/internal/demo/sshserver"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/view"
)

// The fault matrix's transport faults again, over the real transport: the
// engine talks SSH (remote.Pool) to in-process SSH servers that run real
// sh commands in per-host directories; the switch, unpack, preflight and
// cleanup scripts run for real. A fault is written into the host's
// directory and carried out by the command itself: exit 1, sleep past its
// deadline (remote kills the process group), or ask the test to drop every
// connection of the host mid-command.

// faultScript is run by every command as `sh $base/fault.sh ACTION VERSION`:
// it acts on the line "ACTION VERSION KIND" of $base/fault, once.
const faultScript = `base=$(dirname "$0"); f="$base/fault"
[ -f "$f" ] || exit 0
read -r act ver kind < "$f"
[ "$act" = "$1" ] && [ "$ver" = "$2" ] || exit 0
case "$act" in health) ;; *) rm -f "$f" ;; esac
case "$kind" in
  fail) echo "injected failure of $1" >&2; exit 1 ;;
  hang) exec sleep 600 ;;
  drop) : > "$base/drop-me"; exec sleep 600 ;;
esac`

type realHost struct {
	name string
	dir  string
	srv  *sshserver.Server
}

func realTarball(t *testing.T, dir, v string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte(v + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "VERSION", Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(body)
	_ = tw.Close()
	_ = gz.Close()
	p := filepath.Join(dir, "shop-"+v+".tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startRealFleet(t *testing.T, n int) (root string, hosts []realHost, inv *fleet.Inventory, conn *SSH) {
	t.Helper()
	root = t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	keyFile := filepath.Join(root, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	art := realTarball(t, root, "1.1.0")
	var kh, text strings.Builder
	fmt.Fprintf(&text, `app: shop
path: /unused
artifact: {source: %q}
ssh: {user: %s, identity_file: %s, known_hosts: %s, use_ssh_config: false}
commands:
  stop: "sh {{.Path}}/fault.sh stop {{.Version}} && echo stopped"
  start: "sh {{.Path}}/fault.sh start {{.Version}} && echo started"
  health: "sh {{.Path}}/fault.sh health {{.Version}} && test -f {{.Path}}/current/VERSION"
  version: "sh {{.Path}}/fault.sh version {{.Version}} && cat {{.Path}}/current/VERSION"
  migrate: "echo migrated >> {{.Path}}/migrations"
health: {timeout: 4s, interval: 50ms, stable_for: 0s}
rollout: {batches: [1], pause_after_canary: false, on_failure: rollback}
balancer: {kind: none, drain_timeout: 100ms}
timeouts: {stop: 2s, start: 2s, switch: 5s, health_check: 2s, version: 2s, lock: 10s, observe: 10s, upload: 20s}
hosts:
`, strings.Replace(art, "1.1.0", "{{.Version}}", 1), me.Username, keyFile, filepath.Join(root, "known_hosts"))
	for i := 1; i <= n; i++ {
		h := realHost{name: fmt.Sprintf("web%d", i), dir: filepath.Join(root, fmt.Sprintf("web%d", i))}
		rel := filepath.Join(h.dir, "releases", "1.0.0")
		if err := os.MkdirAll(rel, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(rel, "VERSION"), []byte("1.0.0\n"), 0o644)
		_ = os.WriteFile(filepath.Join(h.dir, "fault.sh"), []byte(faultScript), 0o755)
		if err := os.Symlink(rel, filepath.Join(h.dir, "current")); err != nil {
			t.Fatal(err)
		}
		s, err := sshserver.Start(sshserver.Config{Addr: "127.0.0.1:0", AuthorizedKeys: []ssh.PublicKey{sshPub}, Dir: h.dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		h.srv = s
		kh.WriteString(knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey()) + "\n")
		fmt.Fprintf(&text, "  - {name: %s, address: %q, path: %s}\n", h.name, s.Addr(), h.dir)
		hosts = append(hosts, h)
	}
	if err := os.WriteFile(filepath.Join(root, "known_hosts"), []byte(kh.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err = fleet.Parse(filepath.Join(root, "fleet.yaml"), []byte(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	pool := remote.NewPool(remote.Options{KillGrace: 200 * time.Millisecond})
	t.Cleanup(func() { pool.Close() })
	conn = &SSH{Pool: pool, Configs: map[string]remote.HostConfig{}}
	for _, h := range inv.Hosts {
		conn.Configs[h.Name] = remote.HostConfig{Name: h.Name, Address: h.Address, User: me.Username, IdentityFile: keyFile,
			KnownHosts: []string{filepath.Join(root, "known_hosts")}, ConnectTimeout: 5 * time.Second}
	}
	return root, hosts, inv, conn
}

func readCurrent(t *testing.T, dir string) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join(dir, "current"))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(l)
}

func TestFaultMatrixRealSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("real transport")
	}
	cells := []struct{ action, version string }{
		{"stop", "1.1.0"}, {"start", "1.1.0"}, {"health", "1.1.0"}, {"version", "1.1.0"},
	}
	var table []string
	for _, c := range cells {
		for _, kind := range []string{"fail", "hang", "drop"} {
			t.Run(c.action+"/"+kind, func(t *testing.T) {
				root, hosts, inv, conn := startRealFleet(t, 3)
				web2 := hosts[1]
				if err := os.WriteFile(filepath.Join(web2.dir, "fault"), []byte(fmt.Sprintf("%s %s %s\n", c.action, c.version, kind)), 0o644); err != nil {
					t.Fatal(err)
				}
				// A drop: when the command says so, every connection of
				// web2 is cut, mid-command.
				stopWatch := make(chan struct{})
				watched := make(chan struct{})
				go func() {
					defer close(watched)
					for {
						select {
						case <-stopWatch:
							return
						case <-time.After(10 * time.Millisecond):
						}
						if _, err := os.Stat(filepath.Join(web2.dir, "drop-me")); err == nil {
							_ = os.Remove(filepath.Join(web2.dir, "drop-me"))
							web2.srv.DropConnections()
						}
					}
				}()
				bal := newFake(t, []string{"web1", "web2", "web3"}, "1.0.0")
				bal.verify = true
				p, err := plan.Build(inv, plan.Assume(inv, "1.0.0"), plan.Options{To: "1.1.0", CanVerify: true})
				if err != nil {
					t.Fatal(err)
				}
				art := filepath.Join(root, "shop-1.1.0.tar.gz")
				data, _ := os.ReadFile(art)
				sum := sha256.Sum256(data)
				var events []event.Event
				bus := event.NewBus("r", nil, event.SinkFunc(func(e event.Event) { events = append(events, e) }))
				e := New(Config{Inventory: inv, Plan: p, Hosts: conn, Balancer: bal, Bus: bus, RunID: "r", Owner: "o",
					Artifacts: map[string]Artifact{"1.1.0": {Path: art, SHA256: hex.EncodeToString(sum[:])}}})
				start := time.Now()
				res := e.Run(context.Background())
				close(stopWatch)
				<-watched
				code, lines := view.Verdict(view.RunEnd{Outcome: res.Outcome, Summary: res.Summary})
				if code != view.ExitRolledBack {
					var log []string
					for _, ev := range events {
						if ev.Type == event.ActionDone || ev.Type == event.Warning || ev.Type == event.HostChanged {
							log = append(log, fmt.Sprintf("%s %s %s %s %s", ev.Host, ev.Action, ev.Status, ev.Message, ev.Error))
						}
					}
					t.Fatalf("exit %d, want 3 (%s: %v)\n%s\n%s", code, res.Outcome, res.Err, strings.Join(lines, "\n"), strings.Join(log, "\n"))
				}
				// The fault is what ended web2's action, as the operator reads it.
				wantErr := map[string]string{"fail": "injected failure", "hang": "timed out", "drop": "connection lost"}[kind]
				var found bool
				for _, ev := range events {
					if ev.Type == event.ActionDone && ev.Host == "web2" && ev.Status == event.StatusFailed && string(ev.Action) == c.action && strings.Contains(ev.Error, wantErr) {
						found = true
					}
				}
				if !found && !(c.action == "health" && kind == "fail") {
					t.Errorf("no failed %s on web2 mentioning %q", c.action, wantErr)
				}
				for _, h := range hosts {
					v := readCurrent(t, h.dir)
					if v != "1.0.0" || !bal.up[h.name] {
						t.Errorf("%s: current %s, in rotation %v; want in service on 1.0.0", h.name, v, bal.up[h.name])
					}
				}
				if m, _ := os.ReadFile(filepath.Join(hosts[0].dir, "migrations")); strings.Count(string(m), "migrated") != 1 {
					t.Errorf("migrations: %q", m)
				}
				if took := time.Since(start); took > time.Minute {
					t.Errorf("took %s", took)
				}
				table = append(table, fmt.Sprintf("%-8s %-5s exit %d in %5s: all in service on 1.0.0", c.action, kind, code, time.Since(start).Round(100*time.Millisecond)))
			})
		}
	}
	t.Logf("over real SSH (in-process servers, real sh), fault on web2:\n%s", strings.Join(table, "\n"))
}

// A whole 1.0.0 → 1.1.0 upgrade opens two SSH sessions per host, whatever
// the number of steps: the persistent shell and the upload's SFTP. The
// summary says so, and so does the plain view. A rollback that follows a
// failed health wait stays within the same two.
func TestSessionsPerHostRealSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("real transport")
	}
	for _, c := range []struct {
		name    string
		fault   string
		outcome event.Outcome
	}{
		{"upgrade", "", event.OutcomeSucceeded},
		{"rollback after web2's health fails", "health 1.1.0 fail\n", event.OutcomeRolledBack},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, hosts, inv, conn := startRealFleet(t, 3)
			if c.fault != "" {
				if err := os.WriteFile(filepath.Join(hosts[1].dir, "fault"), []byte(c.fault), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			bal := newFake(t, []string{"web1", "web2", "web3"}, "1.0.0")
			p, err := plan.Build(inv, plan.Assume(inv, "1.0.0"), plan.Options{To: "1.1.0"})
			if err != nil {
				t.Fatal(err)
			}
			art := filepath.Join(root, "shop-1.1.0.tar.gz")
			data, _ := os.ReadFile(art)
			sum := sha256.Sum256(data)
			j, err := journal.Create(t.TempDir(), "r")
			if err != nil {
				t.Fatal(err)
			}
			bus := event.NewBus("r", nil, j)
			res := New(Config{Inventory: inv, Plan: p, Hosts: conn, Balancer: bal, Bus: bus, RunID: "r", Owner: "o", Journal: j,
				Artifacts: map[string]Artifact{"1.1.0": {Path: art, SHA256: hex.EncodeToString(sum[:])}}}).Run(context.Background())
			if res.Outcome != c.outcome {
				t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			run, err := journal.Read(j.Path())
			if err != nil {
				t.Fatal(err)
			}
			if run.Summary == nil || !maps.Equal(run.Summary.SSHSessions, res.Summary.SSHSessions) {
				t.Errorf("journal's summary %+v, want sessions %v", run.Summary, res.Summary.SSHSessions)
			}
			for _, h := range hosts {
				n := res.Summary.SSHSessions[h.name]
				if n != 2 || conn.Pool.Sessions(h.name) != n {
					t.Errorf("%s: %d sessions in the summary, %d counted by the pool; want 2 (shell + sftp)", h.name, n, conn.Pool.Sessions(h.name))
				}
				if want := map[event.Outcome]string{event.OutcomeSucceeded: "1.1.0", event.OutcomeRolledBack: "1.0.0"}[c.outcome]; readCurrent(t, h.dir) != want {
					t.Errorf("%s runs %s, want %s", h.name, readCurrent(t, h.dir), want)
				}
			}
			var b strings.Builder
			view.Summary(&b, res.Outcome, res.Summary)
			if !strings.Contains(b.String(), "ssh sessions:\t2 per host (max 2)") {
				t.Errorf("summary:\n%s", b.String())
			}
		})
	}
}
