package lb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

const haproxyBin = "/usr/sbin/haproxy"

// haproxyProc is a real HAProxy started by a test.
type haproxyProc struct {
	Socket string // unix admin socket
	TCP    string // TCP admin socket
	Front  string // HTTP frontend
	log    func() string

	dir, cfgPath string
	// StateFile is the server-state file the config loads at start
	// (load-server-state-from-file global); "" when it loads none.
	StateFile string
	reloads   int
}

// haproxyOpts vary the test config.
type haproxyOpts struct {
	stateFile bool // server-state-file + load-server-state-from-file global
}

// startHAProxy runs `haproxy -f cfg -db` for backend "shop" over backends,
// with both a unix and a TCP admin socket, HTTP checks every 100ms and
// rise/fall 2, and waits until the admin socket answers.
func startHAProxy(t *testing.T, backends []*lbtest.Backend) *haproxyProc {
	t.Helper()
	return startHAProxyTB(t, backends)
}

func startHAProxyTB(t testing.TB, backends []*lbtest.Backend) *haproxyProc {
	t.Helper()
	return startHAProxyOpts(t, backends, haproxyOpts{})
}

// startHAProxyOpts is startHAProxy with options. The unix socket exposes
// the listeners (expose-fd listeners) so that reload can hand them to the
// new process with -x, as a seamless production reload does.
func startHAProxyOpts(t testing.TB, backends []*lbtest.Backend, opts haproxyOpts) *haproxyProc {
	t.Helper()
	lbtest.RequireBinary(t, haproxyBin)
	dir := lbtest.ShortTempDir(t, "lbhap")
	p := &haproxyProc{
		Socket:  filepath.Join(dir, "admin.sock"),
		TCP:     lbtest.FreeAddr(t, lbtest.OwnLoopbackIP()),
		Front:   lbtest.FreeAddr(t, lbtest.OwnLoopbackIP()),
		dir:     dir,
		cfgPath: filepath.Join(dir, "haproxy.cfg"),
	}
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "    server %s %s check\n", b.Name, b.Addr)
	}
	stateGlobal, stateDefaults := "", ""
	if opts.stateFile {
		p.StateFile = filepath.Join(dir, "servers.state")
		stateGlobal = "    server-state-file " + p.StateFile + "\n"
		stateDefaults = "    load-server-state-from-file global\n"
	}
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin expose-fd listeners
    stats socket ipv4@%s level admin
%sdefaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    # Checks every 100ms, but a check answered within 2s passes: on a
    # loaded machine the test backends answer slowly, and a check timeout
    # of 100ms would take every server DOWN.
    timeout check 2s
%sfrontend fe
    bind %s
    default_backend shop
backend shop
    balance roundrobin
    option httpchk GET /health
    default-server inter 100ms fastinter 100ms downinter 100ms rise 2 fall 2
%s`, p.Socket, p.TCP, stateGlobal, stateDefaults, p.Front, servers.String())
	if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.log = lbtest.StartProcess(t, dir, "haproxy", exec.Command(haproxyBin, "-f", p.cfgPath, "-db"))
	lbtest.Eventually(t, 10*time.Second, "haproxy admin socket", func() (bool, string) {
		reply, err := p.raw("unix", p.Socket, "show info")
		if err == nil && strings.Contains(reply, "Name: HAProxy") {
			return true, ""
		}
		return false, fmt.Sprintf("%v; log: %s", err, p.log())
	})
	return p
}

// pid is the pid of the process answering the admin socket.
func (p *haproxyProc) pid(t testing.TB) int {
	t.Helper()
	reply, err := p.raw("unix", p.Socket, "show info")
	if err != nil {
		t.Fatalf("show info: %v", err)
	}
	for _, line := range strings.Split(reply, "\n") {
		if v, ok := strings.CutPrefix(line, "Pid: "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("show info has no Pid: %q", reply)
	return 0
}

// reload does what a config reload does in production: a new process
// from the same config file takes the listeners over from the old one
// (-x, seamless) and tells it to finish its connections and exit (-sf).
// It returns the old and new pids once the new process answers.
func (p *haproxyProc) reload(t testing.TB) (oldPid, newPid int) {
	t.Helper()
	oldPid = p.pid(t)
	p.reloads++
	cmd := exec.Command(haproxyBin, "-f", p.cfgPath, "-db", "-x", p.Socket, "-sf", strconv.Itoa(oldPid))
	np, log := lbtest.StartProc(t, p.dir, fmt.Sprintf("haproxy-reload%d", p.reloads), cmd)
	newPid = np.PID()
	lbtest.Eventually(t, 10*time.Second, "the reloaded haproxy answers", func() (bool, string) {
		reply, err := p.raw("unix", p.Socket, "show info")
		return err == nil && strings.Contains(reply, fmt.Sprintf("Pid: %d\n", newPid)), fmt.Sprintf("%v; log: %s", err, log())
	})
	before := p.log
	p.log = func() string { return before() + log() }
	return oldPid, newPid
}

// raw sends one command to an admin socket, like socat would.
func (p *haproxyProc) raw(network, addr, cmd string) (string, error) {
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}

func (p *haproxyProc) mustRaw(t testing.TB, cmd string) {
	t.Helper()
	reply, err := p.raw("unix", p.Socket, cmd)
	if err != nil || strings.TrimSpace(reply) != "" {
		t.Fatalf("%s: %q %v", cmd, reply, err)
	}
}

// viaSSH is a Connector that pretends to reach sshHost but dials locally: it
// stands in for the SSH pool and records which hosts were asked for.
type viaSSH struct {
	mu    sync.Mutex
	hosts map[string]int
}

func (v *viaSSH) record(host string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.hosts == nil {
		v.hosts = map[string]int{}
	}
	v.hosts[host]++
}

func (v *viaSSH) count(host string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.hosts[host]
}

func (v *viaSSH) DialVia(ctx context.Context, sshHost, network, addr string) (net.Conn, error) {
	v.record(sshHost)
	return lb.LocalConnector{}.DialVia(ctx, "", network, addr)
}

func (v *viaSSH) RunOn(ctx context.Context, sshHost, script string) (string, error) {
	v.record(sshHost)
	return lb.LocalConnector{}.RunOn(ctx, "", script)
}

func startBackends(t *testing.T, n int) []*lbtest.Backend {
	bs := make([]*lbtest.Backend, n)
	for i := range bs {
		bs[i] = lbtest.StartBackend(t, fmt.Sprintf("web%d", i+1), fmt.Sprintf("127.0.0.%d", 11+i))
	}
	return bs
}

func TestHAProxyDrainEnable(t *testing.T) {
	lbtest.RequireBinary(t, haproxyBin)
	tests := []struct {
		name      string
		endpoints func(p, q *haproxyProc) []lb.Endpoint
		pair      bool
		sshHost   string
	}{
		{name: "unix socket", endpoints: func(p, _ *haproxyProc) []lb.Endpoint { return []lb.Endpoint{{Socket: p.Socket}} }},
		{name: "tcp socket", endpoints: func(p, _ *haproxyProc) []lb.Endpoint { return []lb.Endpoint{{TCP: p.TCP}} }},
		{name: "unix socket via ssh", sshHost: "lb1.example.test",
			endpoints: func(p, _ *haproxyProc) []lb.Endpoint {
				return []lb.Endpoint{{SSH: "lb1.example.test", Socket: p.Socket}}
			}},
		{name: "ha pair", pair: true,
			endpoints: func(p, q *haproxyProc) []lb.Endpoint {
				return []lb.Endpoint{{Socket: p.Socket}, {SSH: "lb2.example.test", TCP: q.TCP}}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			backends := startBackends(t, 3)
			p := startHAProxy(t, backends)
			q := p
			procs := []*haproxyProc{p}
			if tt.pair {
				q = startHAProxy(t, backends)
				procs = append(procs, q)
			}
			conn := &viaSSH{}
			bal, err := lb.New(lb.Config{
				Kind: "haproxy", Backend: "shop", DrainTimeout: 10 * time.Second,
				PollInterval: 20 * time.Millisecond, Endpoints: tt.endpoints(p, q),
			}, conn)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(bal.Describe())
			lbtest.RunDrainScenario(t, lbtest.Scenario{
				Balancer: bal, Backend: "shop", Front: p.Front, Backends: backends, Endpoints: len(procs),
				Raw: func(cmd string) {
					for _, pr := range procs {
						pr.mustRaw(t, cmd)
					}
				},
			})
			if tt.sshHost != "" && conn.count(tt.sshHost) == 0 {
				t.Errorf("no dial went via %s", tt.sshHost)
			}
			if tt.pair && conn.count("lb2.example.test") == 0 {
				t.Errorf("no dial went via lb2.example.test")
			}
		})
	}
}

// BenchmarkHAProxyCommand measures one runtime API round trip (dial, send
// `show stat shop 4 -1`, read, close) per access path: the cost of the
// one-connection-per-command design. On the development machine both paths
// take well under a millisecond.
func BenchmarkHAProxyCommand(b *testing.B) {
	lbtest.RequireBinary(b, haproxyBin)
	bs := make([]*lbtest.Backend, 3)
	for i := range bs {
		bs[i] = lbtest.StartBackend(b, fmt.Sprintf("web%d", i+1), fmt.Sprintf("127.0.0.%d", 11+i))
	}
	p := startHAProxyTB(b, bs)
	for _, ep := range []lb.Endpoint{{Socket: p.Socket}, {TCP: p.TCP}} {
		bal, err := lb.New(lb.Config{Kind: "haproxy", Backend: "shop", Endpoints: []lb.Endpoint{ep}}, lb.LocalConnector{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(map[bool]string{true: "unix", false: "tcp"}[ep.Socket != ""], func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				if _, err := bal.States(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A drain that times out with a request still in flight is a result
// (Idle=false, Remaining counted), not an error; a cancelled context ends
// the wait at once.
func TestHAProxyDrainTimeout(t *testing.T) {
	lbtest.RequireBinary(t, haproxyBin)
	t.Parallel()
	bs := startBackends(t, 2)
	p := startHAProxy(t, bs)
	bal, err := lb.New(lb.Config{Kind: "haproxy", Backend: "shop", DrainTimeout: 200 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, Endpoints: []lb.Endpoint{{Socket: p.Socket}}}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, name := range []string{"web1", "web2"} {
		waitState(t, bal, name, lb.StatusUp)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	// A request in flight on web1, held there until released: it outlasts
	// the drain timeout however slow the machine is.
	release := func() { bs[0].Release(); bs[1].Release() }
	defer release()
	slow := make(chan string, 4)
	for i := 0; i < 3 && bs[0].Inflight.Load() == 0; i++ {
		go func() {
			code, body, err := lbtest.Get(ctx, client, "http://"+p.Front+"/hold")
			slow <- fmt.Sprintf("%d %s %v", code, body, err)
		}()
		lbtest.Eventually(t, 5*time.Second, "slow request started", func() (bool, string) {
			return bs[0].Inflight.Load()+bs[1].Inflight.Load() >= int64(i+1), ""
		})
	}
	res, err := bal.Drain(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	// Waited's ceiling leaves room for a loaded machine's polls; the held
	// request would have kept a drain that ignores its timeout forever.
	if res.Idle || res.Remaining != 1 || res.Waited < 200*time.Millisecond || res.Waited > 5*time.Second {
		t.Fatalf("Drain with a held request and a 200ms timeout = %+v, want not idle, 1 remaining, ~200ms", res)
	}

	cctx, ccancel := context.WithCancel(ctx)
	long, _ := lb.New(lb.Config{Kind: "haproxy", Backend: "shop", DrainTimeout: time.Minute,
		PollInterval: 20 * time.Millisecond, Endpoints: []lb.Endpoint{{TCP: p.TCP}}}, lb.LocalConnector{})
	time.AfterFunc(100*time.Millisecond, ccancel)
	start := time.Now()
	if _, err := long.Drain(cctx, "web1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain with a cancelled context = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancelled Drain took %s", d)
	}
	// The in-flight request still completes: drain never cuts it.
	release()
	if r := <-slow; !strings.HasPrefix(r, "200 ") {
		t.Fatalf("slow request: %s", r)
	}
	if err := bal.Enable(ctx, "web1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
