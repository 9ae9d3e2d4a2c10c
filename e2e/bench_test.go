package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

// benchInventory makes relctl do exactly what bench/floor.sh does: batches
// of one, no canary pause, health polled every 20 ms with no stability
// wait, drains on HAProxy.
const benchInventory = `rollout:
  batches: [1]
  pause_after_canary: false
  on_failure: rollback
health:
  timeout: 20s
  interval: 20ms
  stable_for: 0s
`

// benchCondition is what the hosts charge relctl and the floor alike.
type benchCondition struct {
	name string
	// apply sets the condition up on the stage and returns the SSH port
	// to use, the file that logs one line per SSH session ("" = none) and
	// the undo.
	apply func(b testing.TB, s *stage) (port int, sessionLog string, undo func())
}

var benchConditions = []benchCondition{
	{"plain", func(_ testing.TB, s *stage) (int, string, func()) { return s.f.SSHPort, "", func() {} }},
	{"session-cost-0.2s", sessionCost},
	{"delay-25ms", netDelay},
}

// BenchmarkUpgradeVsFloor runs relctl apply and the shell-loop floor side by
// side on the same real fleet (OpenSSH sshd hosts, HAProxy, the demo app),
// re-seeded to 1.0.0 before each timed upgrade to 1.1.0, under three
// conditions: as the hosts are; with a start-up cost of 0.2 s for every SSH
// session (a forced command on the client key, as a login shell's rc files
// cost on app servers); with 25 ms of one-way delay between the SSH clients
// and every host (a delaying TCP proxy per host). After relctl's upgrade,
// relctl rollback sends the hosts back, timed too. Reported per upgrade:
// both wall times and their ratio, the rollback's time and its ratio to
// the upgrade, SSH sessions per host (relctl's from its run summary; the
// floor's counted by the forced command, where there is one), relctl's own
// overhead per host, its CPU time and peak RSS.
//
//	go test ./e2e -run '^$' -bench UpgradeVsFloor -benchtime 1x
func BenchmarkUpgradeVsFloor(b *testing.B) {
	for _, n := range []int{5, 20} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			s := newStage(b, n, "haproxy", benchInventory, nil)
			for _, c := range benchConditions {
				b.Run(c.name, func(b *testing.B) { benchUpgrade(b, s, c) })
			}
		})
	}
}

func benchUpgrade(b *testing.B, s *stage, c benchCondition) {
	n := len(s.f.Hosts)
	port, sessLog, undo := c.apply(b, s)
	defer undo()
	hostsFile := filepath.Join(s.dir, "hosts.txt")
	var lines []string
	for _, h := range s.f.Hosts {
		lines = append(lines, fmt.Sprintf("%s %s %s %s", h.Name, h.IP, h.Path, h.AppAddr))
	}
	if err := os.WriteFile(hostsFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	art := s.f.Artifact("1.1.0", nil)
	s.benchInventory(port, true)
	defer s.benchInventory(s.f.SSHPort, true)
	var relctlS, floorS, upNoPostS, rollbackS, overheadMS, engineMS, cpuS, rssMiB, sessMax, sessMean, floorSess []float64
	for i := 0; i < b.N; i++ {
		s.reset()
		wall, ru := s.timed(b, "apply", "--to", "1.1.0", "--yes", "--plain")
		relctlS = append(relctlS, wall.Seconds())
		cpuS = append(cpuS, ru.cpu)
		rssMiB = append(rssMiB, ru.maxRSS)
		total, engine := overhead(b, s, wall)
		overheadMS = append(overheadMS, float64(total.Milliseconds())/float64(n))
		engineMS = append(engineMS, float64(engine.Milliseconds())/float64(n))
		mx, mean := sessions(b, s)
		sessMax, sessMean = append(sessMax, mx), append(sessMean, mean)
		s.wantAll("1.1.0")

		// A rollback is refused once post-migrate ran: the upgrade it
		// undoes runs without one (timed too, to compare like with like).
		s.reset()
		s.benchInventory(port, false)
		wall, _ = s.timed(b, "apply", "--to", "1.1.0", "--yes", "--plain")
		upNoPostS = append(upNoPostS, wall.Seconds())
		s.wantAll("1.1.0")
		wall, _ = s.timed(b, "rollback", "--yes", "--plain")
		rollbackS = append(rollbackS, wall.Seconds())
		s.wantAll("1.0.0")
		s.benchInventory(port, true)

		s.reset()
		before := sessionLogLines(sessLog)
		args := []string{hostsFile, s.f.LB.AdminTCP, s.f.LB.Backend, "1.1.0", art, s.f.MigrationsLog, s.f.User, "--"}
		opts := s.f.SSHArgs(0)
		opts = opts[:len(opts)-1] // without the destination
		for j := range opts {
			if opts[j] == "-p" {
				opts[j+1] = fmt.Sprint(port)
			}
		}
		args = append(args, opts...)
		t0 := time.Now()
		out, err := exec.Command("../bench/floor.sh", args...).CombinedOutput()
		if err != nil {
			b.Fatalf("floor.sh: %v\n%s", err, out)
		}
		floorS = append(floorS, time.Since(t0).Seconds())
		if after := sessionLogLines(sessLog); after >= 0 {
			floorSess = append(floorSess, float64(after-before)/float64(n))
		}
		s.wantAll("1.1.0")
	}
	b.ReportMetric(median(relctlS), "relctl-s")
	b.ReportMetric(median(floorS), "floor-s")
	b.ReportMetric(median(relctlS)/median(floorS), "relctl/floor")
	b.ReportMetric(median(rollbackS), "rollback-s")
	b.ReportMetric(median(rollbackS)/median(upNoPostS), "rollback/upgrade")
	b.ReportMetric(median(sessMax), "relctl-sessions/host-max")
	b.ReportMetric(median(sessMean), "relctl-sessions/host-mean")
	if len(floorSess) > 0 {
		b.ReportMetric(median(floorSess), "floor-sessions/host")
	}
	b.ReportMetric(median(overheadMS), "overhead-ms/host")
	b.ReportMetric(median(engineMS), "engine-overhead-ms/host")
	b.ReportMetric(median(cpuS), "relctl-cpu-s")
	b.ReportMetric(median(rssMiB), "relctl-peak-MiB")
	b.ReportMetric(0, "ns/op")
}

// usage is what one relctl process used.
type usage struct {
	cpu    float64 // user + system, seconds
	maxRSS float64 // MiB
}

// timed runs relctl to the end and returns its wall time and resource use.
// relctl runs under /usr/bin/time: the rusage of a child of this (large)
// test binary reports the binary's own RSS as the child's peak, since Go
// starts children with vfork and Linux keeps the parent's high-water mark
// across the exec.
func (s *stage) timed(b *testing.B, args ...string) (time.Duration, usage) {
	b.Helper()
	out := filepath.Join(s.dir, "time.out")
	c := s.cmd(args...)
	c.Args = append([]string{"/usr/bin/time", "-f", "%M %U %S", "-o", out, c.Path}, c.Args[1:]...)
	c.Path = "/usr/bin/time"
	var errb bytes.Buffer
	c.Stderr = &errb
	t0 := time.Now()
	if err := c.Run(); err != nil {
		b.Fatalf("relctl %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	wall := time.Since(t0)
	data, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	var kib, user, sys float64
	if _, err := fmt.Sscan(string(data), &kib, &user, &sys); err != nil {
		b.Fatalf("/usr/bin/time: %q: %v", data, err)
	}
	return wall, usage{cpu: user + sys, maxRSS: kib / 1024}
}

// sessions reads the latest run's SSH sessions per host (its summary in the
// journal): the maximum and the mean over the fleet's hosts.
func sessions(b *testing.B, s *stage) (maxN, mean float64) {
	r := s.latestRun()
	if r.Summary == nil || len(r.Summary.SSHSessions) == 0 {
		b.Fatalf("run %s: no SSH session counts in its summary", r.ID)
	}
	total := 0
	for _, h := range s.f.Hosts {
		k := r.Summary.SSHSessions[h.Name]
		total += k
		maxN = max(maxN, float64(k))
	}
	return maxN, float64(total) / float64(len(s.f.Hosts))
}

// sessionCost gives the fleet's client key a forced command that costs
// every SSH session 0.2 s before it runs what was asked (a command, a
// shell, or the sftp server), as a login shell's rc files do; it logs each
// session, so that the floor's sessions can be counted too.
func sessionCost(b testing.TB, s *stage) (int, string, func()) {
	auth := filepath.Join(s.f.Root, "authorized_keys")
	orig, err := os.ReadFile(auth)
	if err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(s.f.Root, "session-cmd")
	log := filepath.Join(s.f.Root, "sessions.log")
	body := fmt.Sprintf(`echo "${SSH_CONNECTION:-?}" >> %s
sleep 0.2
if [ "$SSH_ORIGINAL_COMMAND" = internal-sftp ]; then exec /usr/lib/openssh/sftp-server; fi
eval "$SSH_ORIGINAL_COMMAND"
`, log)
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(log, nil, 0o666); err != nil {
		b.Fatal(err)
	}
	_ = os.Chmod(log, 0o666)
	forced := fmt.Sprintf("command=\". %s\" %s", script, orig)
	if err := os.WriteFile(auth, []byte(forced), 0o644); err != nil {
		b.Fatal(err)
	}
	return s.f.SSHPort, log, func() {
		if err := os.WriteFile(auth, orig, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// sessionLogLines counts the sessions the forced command logged, or -1
// when there is none.
func sessionLogLines(log string) int {
	if log == "" {
		return -1
	}
	data, err := os.ReadFile(log)
	if err != nil {
		return -1
	}
	return bytes.Count(data, []byte("\n"))
}

// netDelay puts a TCP proxy in front of every host's sshd, on the host's
// own address, port 2223, that holds every chunk for 25 ms in each
// direction; relctl's inventory and the floor's ssh go through it, and
// known_hosts gets the proxies' addresses.
func netDelay(b testing.TB, s *stage) (int, string, func()) {
	const port = 2223
	var proxies []*delayProxy
	kh, err := os.ReadFile(s.f.KnownHostsFile)
	if err != nil {
		b.Fatal(err)
	}
	extra := strings.ReplaceAll(string(kh), fmt.Sprintf("]:%d ", s.f.SSHPort), fmt.Sprintf("]:%d ", port))
	if err := os.WriteFile(s.f.KnownHostsFile, append(kh, extra...), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, h := range s.f.Hosts {
		p, err := startDelayProxy(net.JoinHostPort(h.IP, fmt.Sprint(port)), h.SSHAddr, 25*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		proxies = append(proxies, p)
	}
	return port, "", func() {
		for _, p := range proxies {
			p.Close()
		}
		_ = os.WriteFile(s.f.KnownHostsFile, kh, 0o644)
	}
}

var postMigrateLine = regexp.MustCompile(`(?m)^\s*post_migrate:.*\n`)

// benchInventory writes the bench's inventory with the hosts reached on
// port, with or without the post-deploy migration.
func (s *stage) benchInventory(port int, post bool) {
	s.writeInventory(releasesTable+benchInventory, func(inv string) string {
		inv = strings.ReplaceAll(inv, fmt.Sprintf(":%d", s.f.SSHPort), fmt.Sprintf(":%d", port))
		if !post {
			inv = postMigrateLine.ReplaceAllString(inv, "")
		}
		return inv
	})
}

// delayProxy forwards TCP connections from its address to a target,
// delivering every chunk read in either direction delay after it was read,
// in order (latency, not a bandwidth limit).
type delayProxy struct {
	ln    net.Listener
	delay time.Duration
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startDelayProxy(addr, target string, delay time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &delayProxy{ln: ln, delay: delay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.track(c, u)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				var both sync.WaitGroup
				both.Add(2)
				go func() { defer both.Done(); p.pipe(u, c) }()
				go func() { defer both.Done(); p.pipe(c, u) }()
				both.Wait()
				p.untrack(c, u)
			}()
		}
	}()
	return p, nil
}

func (p *delayProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

func (p *delayProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk delay late.
func (p *delayProxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.data); err != nil {
				for range q {
				}
				return
			}
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{data: slices.Clone(buf[:n]), due: time.Now().Add(p.delay)}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}

// Close stops the proxy and cuts its connections.
func (p *delayProxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// reset puts every host back on 1.0.0 and removes what an upgrade to 1.1.0
// staged, so each timed upgrade starts from the same place.
func (s *stage) reset() {
	for _, h := range s.f.Hosts {
		for _, p := range []string{"releases/1.1.0", "releases/.incoming", "shop-1.1.0.tar.gz"} {
			_ = os.RemoveAll(filepath.Join(h.Path, p))
		}
	}
	s.f.Seed("1.0.0", s.f.Artifact("1.0.0", nil))
	_ = os.RemoveAll(s.state)
}

// overhead is relctl's own time: wall time minus what hosts and the
// balancer took on the critical path (deploy actions one after another;
// every other step, parallel groups counted once by their longest member).
// total is over the whole process (start-up, connecting to and observing
// every host, the closing audit included); engine is between the run's
// first and last events.
func overhead(b *testing.B, s *stage, wall time.Duration) (total, engine time.Duration) {
	r := s.latestRun()
	evs := readEvents(b, r.Path)
	work := time.Duration(0)
	groupMax := map[plan.StepKind]time.Duration{}
	var first, last time.Time
	for _, e := range evs {
		if first.IsZero() {
			first = e.Time
		}
		last = e.Time
		switch {
		case e.Type == event.ActionDone && strings.HasPrefix(e.Step, "deploy/"):
			work += e.Duration
		case e.Type == event.StepFinished && !strings.HasPrefix(e.Step, "deploy/"):
			st, _ := r.Plan.Step(e.Step)
			if st.Kind == plan.StepStage || st.Kind == plan.StepCleanup {
				groupMax[st.Kind] = max(groupMax[st.Kind], e.Duration)
			} else {
				work += e.Duration
			}
		}
	}
	for _, d := range groupMax {
		work += d
	}
	return wall - work, last.Sub(first) - work
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
