package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/relctl/relctl/internal/demo/sshserver"
	"github.com/relctl/relctl/internal/event"
)

// BenchmarkScale runs the relctl binary against N simulated hosts: in-process
// SSH servers (real sh commands, real SFTP, each with its own host key and
// directory) served by this benchmark's process, so no process runs per
// host. relctl observes the fleet, stages a 20 MB artifact (random bytes: it
// does not compress) on every host, and runs a no-op rollout in batches of
// 10%. Reported: wall time of each phase, relctl's peak open descriptors
// (sampled from /proc every 20 ms), and its own peak RSS and CPU (from
// /usr/bin/time, see underTime).
//
//	go test ./e2e -run '^$' -bench Scale -benchtime 1x
//
// Disk: 1,000 hosts × 20 MB is written twice (upload, unpack): ~40 GB,
// removed afterwards.
func BenchmarkScale(b *testing.B) {
	mb := 20
	if v, err := strconv.Atoi(os.Getenv("RELCTL_SCALE_ARTIFACT_MB")); err == nil && v > 0 {
		mb = v // smaller artifacts, to tell connection memory from upload memory
	}
	art := scaleArtifact(b, mb<<20)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				scaleOnce(b, n, art)
			}
		})
	}
}

func scaleArtifact(b *testing.B, size int) string {
	dir := b.TempDir()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	_ = tw.WriteHeader(&tar.Header{Name: "VERSION", Mode: 0o644, Size: 6})
	_, _ = tw.Write([]byte("1.1.0\n"))
	_ = tw.WriteHeader(&tar.Header{Name: "blob", Mode: 0o644, Size: int64(size)})
	_, _ = tw.Write(data)
	_ = tw.Close()
	_ = gz.Close()
	p := filepath.Join(dir, "shop-1.1.0.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

func scaleOnce(b *testing.B, n int, art string) {
	root, err := os.MkdirTemp("", "relctl-scale-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(root)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	keyFile := filepath.Join(root, "id_ed25519")
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)

	servers := make([]*sshserver.Server, n)
	var kh strings.Builder
	var inv strings.Builder
	me, _ := user.Current()
	fmt.Fprintf(&inv, `app: shop
path: /unused
artifact: {source: %q}
ssh: {user: %s, identity_file: %s, known_hosts: %s, use_ssh_config: false, max_parallel: 50}
commands: {stop: "true", start: "true", health: "true"}
health: {timeout: 10s, interval: 10ms, stable_for: 0s}
rollout: {batches: ["10%%"], pause_after_canary: false}
balancer: {kind: none}
hosts:
`, strings.Replace(art, "1.1.0", "{{.Version}}", 1), me.Username, keyFile, filepath.Join(root, "known_hosts"))
	for i := range n {
		dir := filepath.Join(root, "h", strconv.Itoa(i))
		rel := filepath.Join(dir, "releases", "1.0.0")
		if err := os.MkdirAll(rel, 0o755); err != nil {
			b.Fatal(err)
		}
		_ = os.Symlink(rel, filepath.Join(dir, "current"))
		s, err := sshserver.Start(sshserver.Config{Addr: "127.0.0.1:0", AuthorizedKeys: []ssh.PublicKey{sshPub}, Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		servers[i] = s
		kh.WriteString(knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey()) + "\n")
		fmt.Fprintf(&inv, "  - {name: h%d, address: %q, path: %s}\n", i, s.Addr(), dir)
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	_ = os.WriteFile(filepath.Join(root, "known_hosts"), []byte(kh.String()), 0o600)
	fleetFile := filepath.Join(root, "fleet.yaml")
	_ = os.WriteFile(fleetFile, []byte(inv.String()), 0o644)
	state := filepath.Join(root, "state")
	env := append(os.Environ(), "RELCTL_FLEET="+fleetFile, "XDG_STATE_HOME="+state)

	// Observe: relctl plan without --upfrom connects to and observes every host.
	t0 := time.Now()
	observeTime := filepath.Join(root, "observe.time")
	c := underTime(observeTime, relctlBin, "plan", "--to", "1.1.0", "--format", "json", "-o", filepath.Join(root, "plan.json"))
	c.Env = env
	if out, err := c.CombinedOutput(); err != nil {
		b.Fatalf("plan: %v\n%s", err, out)
	}
	observe := time.Since(t0)
	observeUse := readTime(b, observeTime)

	applyTime := filepath.Join(root, "apply.time")
	c = underTime(applyTime, relctlBin, "apply", "--to", "1.1.0", "--yes", "--plain")
	c.Env = env
	var errb bytes.Buffer
	c.Stderr = &errb
	t0 = time.Now()
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	// relctl is the child of /usr/bin/time: its descriptors are sampled.
	relctlPID := 0
	var peakFD int
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if relctlPID == 0 {
					relctlPID = childOf(c.Process.Pid)
					if relctlPID == 0 {
						continue
					}
				}
				ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", relctlPID))
				if err == nil {
					mu.Lock()
					peakFD = max(peakFD, len(ents))
					mu.Unlock()
				}
			}
		}
	}()
	err = c.Wait()
	close(done)
	wall := time.Since(t0)
	if err != nil {
		b.Fatalf("apply: %v\n%s", err, tail(errb.String(), 3000))
	}
	use := readTime(b, applyTime)
	stage, deploy := phases(b, filepath.Join(state, "relctl", "shop"))
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(observe.Seconds(), "observe-s")
	b.ReportMetric(observeUse.maxRSS, "observe-peak-MiB")
	b.ReportMetric(stage.Seconds(), "stage-s")
	b.ReportMetric(deploy.Seconds(), "rollout-s")
	b.ReportMetric(wall.Seconds(), "apply-s")
	b.ReportMetric(float64(peakFD), "peak-fds")
	b.ReportMetric(use.maxRSS, "peak-MiB")
	b.ReportMetric(use.cpu, "cpu-s")
	b.ReportMetric(0, "ns/op")
}

// underTime is relctl run under /usr/bin/time, which writes relctl's own
// peak RSS and CPU to out. (The rusage of a child of this test binary
// would report the binary's peak RSS, which hosts the N servers: Go starts
// children with vfork, and Linux carries the parent's high-water mark
// across the exec; /usr/bin/time forks relctl from its own small process.)
func underTime(out, bin string, args ...string) *exec.Cmd {
	return exec.Command("/usr/bin/time", append([]string{"-f", "%M %U %S", "-o", out, bin}, args...)...)
}

// readTime reads what /usr/bin/time wrote.
func readTime(b *testing.B, out string) usage {
	data, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	var kib, user, sys float64
	if _, err := fmt.Sscan(string(data), &kib, &user, &sys); err != nil {
		b.Fatalf("/usr/bin/time: %q: %v", data, err)
	}
	return usage{cpu: user + sys, maxRSS: kib / 1024}
}

// childOf is the first child of pid, or 0.
func childOf(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// phases returns how long staging and the deploy batches took, from the
// run's journal.
func phases(b *testing.B, dir string) (stage, deploy time.Duration) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(files) != 1 {
		b.Fatalf("journals: %v", files)
	}
	var s0, s1, d0, d1 time.Time
	for _, e := range readEvents(b, files[0]) {
		switch {
		case e.Type == event.StepStarted && strings.HasPrefix(e.Step, "stage/") && s0.IsZero():
			s0 = e.Time
		case e.Type == event.StepFinished && strings.HasPrefix(e.Step, "stage/"):
			s1 = e.Time
		case e.Type == event.StepStarted && strings.HasPrefix(e.Step, "deploy/") && d0.IsZero():
			d0 = e.Time
		case e.Type == event.StepFinished && strings.HasPrefix(e.Step, "deploy/"):
			d1 = e.Time
		}
	}
	return s1.Sub(s0), d1.Sub(d0)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
