package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHAProxy answers the runtime API commands the driver sends, over
// net.Pipe, with just enough state to model a reload: a reload gives a new
// pid and forgets every admin state (unless keepState, as with a
// server-state file). The real thing is proven in haproxy_integration_test.
type fakeHAProxy struct {
	mu        sync.Mutex
	pid       int
	start     int64
	admin     map[string]int // server → srv_admin_state bits
	sessions  map[string]int
	check     map[string]string // check_status; "" = L7OK
	servers   []string
	failSet   bool   // `set server` answers an error
	failFor   string // ... for this server only
	answerPid int    // when set, the next show info answers this (an old process)
	cmds      []string
	onStat    func(f *fakeHAProxy) // called (locked) on each show stat
}

func newFakeHAProxy(pid int, servers ...string) *fakeHAProxy {
	return &fakeHAProxy{pid: pid, start: 1_700_000_000, admin: map[string]int{}, sessions: map[string]int{}, check: map[string]string{}, servers: servers}
}

// reload is `haproxy -sf <pid>`: a new process from the config file.
func (f *fakeHAProxy) reload(newPid int, keepState bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pid, f.start = newPid, f.start+1
	if !keepState {
		f.admin = map[string]int{}
	}
}

func (f *fakeHAProxy) sets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.cmds {
		if strings.HasPrefix(c, "set server ") {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeHAProxy) answer(cmd string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	switch {
	case cmd == "show info":
		pid := f.pid
		if f.answerPid != 0 {
			pid, f.answerPid = f.answerPid, 0
			return fmt.Sprintf("Name: HAProxy\nPid: %d\nUptime_sec: 99\nStart_time_sec: %d\n", pid, f.start-1)
		}
		return fmt.Sprintf("Name: HAProxy\nVersion: 2.6.12\nPid: %d\nUptime_sec: 3\nStart_time_sec: %d\n", pid, f.start)
	case strings.HasPrefix(cmd, "show stat "):
		if f.onStat != nil {
			f.onStat(f)
		}
		var b strings.Builder
		b.WriteString("# pxname,svname,qcur,scur,status,weight,check_status,addr\n")
		for _, s := range f.servers {
			st := "UP"
			switch a := f.admin[s]; {
			case a&adminMaintMask != 0:
				st = "MAINT"
			case a&adminDrainMask != 0:
				st = "DRAIN"
			}
			check := f.check[s]
			if check == "" {
				check = "L7OK"
			}
			fmt.Fprintf(&b, "shop,%s,0,%d,%s,1,%s,127.0.0.1:80\n", s, f.sessions[s], st, check)
		}
		return b.String() + "\n"
	case strings.HasPrefix(cmd, "show servers state "):
		var b strings.Builder
		b.WriteString("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state\n")
		for i, s := range f.servers {
			fmt.Fprintf(&b, "3 shop %d %s 127.0.0.1 2 %d 1 1 1 6 3 4 6\n", i+1, s, f.admin[s])
		}
		return b.String() + "\n"
	case strings.HasPrefix(cmd, "set server shop/"):
		rest := strings.TrimPrefix(cmd, "set server shop/")
		server, state, _ := strings.Cut(rest, " state ")
		if f.failSet || server == f.failFor {
			return "Permission denied\n"
		}
		if !slices.Contains(f.servers, server) {
			return "No such server.\n"
		}
		switch state {
		case "drain":
			f.admin[server] = f.admin[server]&^adminForcedMaint | adminForcedDrain
		case "maint":
			f.admin[server] |= adminForcedMaint
		case "ready":
			f.admin[server] = 0
		}
		return "\n"
	}
	return "Unknown command.\n"
}

// fakeConn routes each endpoint address to its fake process.
type fakeConn map[string]*fakeHAProxy

func (fc fakeConn) DialVia(_ context.Context, _, _, addr string) (net.Conn, error) {
	f, ok := fc[addr]
	if !ok {
		return nil, fmt.Errorf("connection refused: %s", addr)
	}
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		line, err := bufio.NewReader(server).ReadString('\n')
		if err != nil {
			return
		}
		io := f.answer(strings.TrimSpace(line))
		server.Write([]byte(io))
	}()
	return client, nil
}

func (fakeConn) RunOn(context.Context, string, string) (string, error) {
	return "", errors.New("fake haproxy runs no commands")
}

func newFakeDriver(t *testing.T, fc fakeConn, addrs ...string) *haproxy {
	t.Helper()
	var eps []Endpoint
	for _, a := range addrs {
		eps = append(eps, Endpoint{TCP: a})
	}
	b, err := New(Config{Kind: KindHAProxy, Backend: "shop", DrainTimeout: 5 * time.Second, PollInterval: time.Millisecond, Endpoints: eps}, fc)
	if err != nil {
		t.Fatal(err)
	}
	return b.(*haproxy)
}

func statusOn(t *testing.T, h *haproxy, server, ep string) Status {
	t.Helper()
	sts, err := h.States(context.Background())
	if err != nil {
		t.Fatalf("States: %v", err)
	}
	for _, st := range sts {
		if st.Server == server && st.Endpoint == ep {
			return st.Status
		}
	}
	t.Fatalf("%s not reported by %s: %+v", server, ep, sts)
	return ""
}

func TestParseShowInfo(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p, err := parseShowInfo("Name: HAProxy\nPid: 4298\nUptime_sec: 5\nStart_time_sec: 1795964007\n\n", now)
	if err != nil || p != (haproxyProc{Pid: 4298, Start: 1795964007}) {
		t.Fatalf("2.6 show info = %+v, %v", p, err)
	}
	p, err = parseShowInfo("Pid: 12\nUptime_sec: 100\n", now)
	if err != nil || p != (haproxyProc{Pid: 12, Start: 1_800_000_000 - 100}) {
		t.Fatalf("show info without Start_time_sec = %+v, %v", p, err)
	}
	// minilb (the demo) reports an uptime but no pid.
	p, err = parseShowInfo("Name: minilb\nUptime_sec: 7\n", now)
	if err != nil || p != (haproxyProc{Start: 1_800_000_000 - 7}) {
		t.Fatalf("show info without Pid = %+v, %v", p, err)
	}
	if p, err := parseShowInfo("Name: other\n", now); err != nil || p != (haproxyProc{}) {
		t.Fatalf("show info naming no process = %+v, %v", p, err)
	}
	for _, bad := range []string{"Pid: x\n", "Pid: 3\nStart_time_sec: soon\n", "Uptime_sec: -\n"} {
		if _, err := parseShowInfo(bad, now); err == nil {
			t.Errorf("parseShowInfo(%q) = nil error", bad)
		}
	}
}

// A reload forgets the drain; the next call notices the new pid, drains the
// held server again and says so once.
func TestHAProxyReloadRedrainsHeldServers(t *testing.T) {
	ctx := context.Background()
	f := newFakeHAProxy(100, "web1", "web2", "web3")
	h := newFakeDriver(t, fakeConn{"lb:1": f}, "lb:1")

	res, err := h.Drain(ctx, "web1")
	if err != nil || !res.Idle || res.Note != "" {
		t.Fatalf("Drain = %+v, %v", res, err)
	}
	f.reload(200, false)
	if got := f.answer("show stat shop 4 -1"); !strings.Contains(got, "shop,web1,0,0,UP") {
		t.Fatalf("the fake reload kept the drain:\n%s", got)
	}
	if st := statusOn(t, h, "web1", "lb:1"); st != StatusDrain {
		t.Fatalf("web1 after a reload, as States reports it = %s, want DRAIN (re-drained first)", st)
	}
	if st := statusOn(t, h, "web2", "lb:1"); st != StatusUp {
		t.Fatalf("web2 (never drained) = %s, want UP", st)
	}
	want := []string{"set server shop/web1 state drain", "set server shop/web1 state drain"}
	if got := f.sets(); !slices.Equal(got, want) {
		t.Fatalf("set commands = %q, want %q", got, want)
	}
	notes := h.TakeNotes()
	if len(notes) != 1 || notes[0] != "haproxy lb:1 reloaded (pid 100 → 200) and forgot that web1 was drained: drained it again" {
		t.Fatalf("TakeNotes = %q", notes)
	}
	if again := h.TakeNotes(); len(again) != 0 {
		t.Fatalf("notes returned twice: %q", again)
	}

	// The old process answering once more (it lingers while it finishes its
	// connections) is not a reload.
	f.mu.Lock()
	f.answerPid = 100
	f.mu.Unlock()
	if _, err := h.States(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.sets()); n != 2 || len(h.TakeNotes()) != 0 {
		t.Fatalf("the old pid answering again was taken for a reload: %q", f.sets())
	}

	// Enable releases web1: the next reload leaves it alone and says that
	// nothing was held.
	if err := h.Enable(ctx, "web1", time.Second); err != nil {
		t.Fatal(err)
	}
	f.reload(300, false)
	if st := statusOn(t, h, "web1", "lb:1"); st != StatusUp {
		t.Fatalf("web1 after Enable and a reload = %s, want UP", st)
	}
	notes = h.TakeNotes()
	if len(notes) != 1 || !strings.Contains(notes[0], "reloaded (pid 200 → 300); relctl held no server out of rotation there") {
		t.Fatalf("TakeNotes = %q", notes)
	}
}

// EnsureOut and Drain carry the reload report in what they return.
func TestHAProxyReloadReportedByEnsureOutAndDrain(t *testing.T) {
	ctx := context.Background()
	f := newFakeHAProxy(100, "web1", "web2")
	h := newFakeDriver(t, fakeConn{"lb:1": f}, "lb:1")
	if _, err := h.Drain(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	f.reload(200, false)
	note, err := h.EnsureOut(ctx, "web1")
	if err != nil || note != "haproxy lb:1 reloaded (pid 100 → 200) and forgot that web1 was drained: drained it again" {
		t.Fatalf("EnsureOut after a reload = %q, %v", note, err)
	}
	if note, err := h.EnsureOut(ctx, "web1"); err != nil || note != "" {
		t.Fatalf("EnsureOut again = %q, %v; want nothing to report", note, err)
	}

	// A reload while Drain waits for web2's last sessions: re-drained on
	// the next poll, the wait goes on, the result says what happened.
	f.mu.Lock()
	f.sessions["web2"] = 3
	polls := 0
	f.onStat = func(f *fakeHAProxy) {
		polls++
		if polls == 2 {
			f.pid, f.start, f.admin = 300, f.start+1, map[string]int{}
		}
		if polls > 3 && f.sessions["web2"] > 0 {
			f.sessions["web2"]--
		}
	}
	f.mu.Unlock()
	res, err := h.Drain(ctx, "web2")
	if err != nil || !res.Idle {
		t.Fatalf("Drain across a reload = %+v, %v", res, err)
	}
	if w := "haproxy lb:1 reloaded (pid 200 → 300) and forgot that web2 was drained: drained it again"; res.Note != w {
		t.Errorf("Drain note = %q, want %q", res.Note, w)
	}
	// web1 was held too: its re-drain waits in TakeNotes.
	if notes := h.TakeNotes(); len(notes) != 1 || !strings.Contains(notes[0], "forgot that web1 was drained") {
		t.Errorf("TakeNotes = %q, want web1's re-drain", notes)
	}
	for _, s := range []string{"web1", "web2"} {
		if st := statusOn(t, h, s, "lb:1"); st != StatusDrain {
			t.Errorf("%s after the second reload = %s, want DRAIN", s, st)
		}
	}
}

// With a server-state file the new process keeps the drain: noticed,
// reported, nothing sent.
func TestHAProxyReloadWithStateKept(t *testing.T) {
	ctx := context.Background()
	f := newFakeHAProxy(100, "web1")
	h := newFakeDriver(t, fakeConn{"lb:1": f}, "lb:1")
	if _, err := h.Drain(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	f.reload(200, true)
	note, err := h.EnsureOut(ctx, "web1")
	if err != nil || !strings.Contains(note, "reloaded (pid 100 → 200); web1 is still drained there (server state kept across the reload)") {
		t.Fatalf("EnsureOut = %q, %v", note, err)
	}
	if got := f.sets(); len(got) != 1 {
		t.Fatalf("set commands = %q, want only the first drain", got)
	}
}

// A re-drain that fails is an error naming the reload and the server, and
// is retried by the next call.
func TestHAProxyReloadRedrainFails(t *testing.T) {
	ctx := context.Background()
	f := newFakeHAProxy(100, "web1")
	h := newFakeDriver(t, fakeConn{"lb:1": f}, "lb:1")
	if _, err := h.Drain(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	f.reload(200, false)
	f.mu.Lock()
	f.failSet = true
	f.mu.Unlock()
	_, err := h.EnsureOut(ctx, "web1")
	if err == nil || !strings.Contains(err.Error(), "haproxy lb:1 reloaded (pid 100 → 200) and forgot that web1 was drained; drain it again: Permission denied") {
		t.Fatalf("EnsureOut with the re-drain refused = %v", err)
	}
	if err := h.Verify(ctx, "web1"); err == nil {
		t.Fatal("Verify with the re-drain refused = nil, want the error")
	}
	f.mu.Lock()
	f.failSet = false
	f.mu.Unlock()
	note, err := h.EnsureOut(ctx, "web1")
	if err != nil || !strings.Contains(note, "drained it again") {
		t.Fatalf("EnsureOut once the socket accepts = %q, %v; want the retried re-drain", note, err)
	}
	if st := statusOn(t, h, "web1", "lb:1"); st != StatusDrain {
		t.Fatalf("web1 = %s, want DRAIN", st)
	}
}

// Held servers are per endpoint: a reload of one instance of an HA pair
// re-drains there only; a failed drain on the second endpoint holds the
// server on the first only.
func TestHAProxyReloadPerEndpoint(t *testing.T) {
	ctx := context.Background()
	a, b := newFakeHAProxy(100, "web1", "web2"), newFakeHAProxy(500, "web1", "web2")
	h := newFakeDriver(t, fakeConn{"lb:1": a, "lb:2": b}, "lb:1", "lb:2")
	if _, err := h.Drain(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.failSet = true
	b.mu.Unlock()
	if _, err := h.Drain(ctx, "web2"); err == nil || !strings.Contains(err.Error(), "drain web2 on haproxy lb:2") {
		t.Fatalf("Drain refused on lb:2 = %v", err)
	}
	b.mu.Lock()
	b.failSet = false
	b.mu.Unlock()
	b.reload(600, false)
	a.reload(200, false)
	if _, err := h.States(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := a.sets(), []string{"set server shop/web1 state drain", "set server shop/web2 state drain", "set server shop/web1 state drain", "set server shop/web2 state drain"}; !slices.Equal(got, want) {
		t.Errorf("lb:1 sets = %q, want %q", got, want)
	}
	// The refused drain of web2 is the only web2 command lb:2 saw.
	if got, want := b.sets(), []string{"set server shop/web1 state drain", "set server shop/web2 state drain", "set server shop/web1 state drain"}; !slices.Equal(got, want) {
		t.Errorf("lb:2 sets = %q, want %q (web2 was never drained there)", got, want)
	}
	if notes := h.TakeNotes(); len(notes) != 3 {
		t.Errorf("notes = %q, want web1 on both, web2 on lb:1", notes)
	}
}

// Concurrent drains, enables and reload checks keep the held set exact: a
// re-drain never undoes an Enable that already returned.
func TestHAProxyReloadConcurrent(t *testing.T) {
	ctx := context.Background()
	servers := []string{"web1", "web2", "web3", "web4"}
	f := newFakeHAProxy(100, servers...)
	h := newFakeDriver(t, fakeConn{"lb:1": f}, "lb:1")
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.Drain(ctx, s); err != nil {
					t.Error(err)
					return
				}
				if _, err := h.EnsureOut(ctx, s); err != nil {
					t.Error(err)
				}
				if err := h.Enable(ctx, s, time.Second); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.reload(1000+round, false)
			_, _ = h.States(ctx)
		}()
		wg.Wait()
		_, _ = h.States(ctx)
		for _, s := range servers {
			if st := statusOn(t, h, s, "lb:1"); st != StatusUp {
				t.Fatalf("round %d: %s = %s after Enable returned, want UP", round, s, st)
			}
		}
		h.TakeNotes()
	}
}

// Preflight names the server and endpoint and gives the command that puts
// the server back, in the form the endpoint is reached.
func TestHAProxyPreflightRepairCommand(t *testing.T) {
	ctx := context.Background()
	f := newFakeHAProxy(100, "web1", "web2")
	g := newFakeHAProxy(200, "web1", "web2")
	b, err := New(Config{Kind: KindHAProxy, Backend: "shop", Endpoints: []Endpoint{
		{TCP: "127.0.0.1:9999"}, {SSH: "lb 2", Socket: "/run/haproxy/admin.sock"}}},
		fakeConn{"127.0.0.1:9999": f, "/run/haproxy/admin.sock": g})
	if err != nil {
		t.Fatal(err)
	}
	f.answer("set server shop/web2 state drain")
	g.answer("set server shop/web2 state maint")
	err = b.Preflight(ctx, []string{"web1", "web2"}, false)
	for _, want := range []string{
		"preflight web2 on haproxy 127.0.0.1:9999: web2 is DRAIN (set by an operator or an earlier run), not in rotation; put it back with `echo 'set server shop/web2 state ready' | socat stdio tcp:127.0.0.1:9999`, or force to proceed",
		"preflight web2 on haproxy lb 2:/run/haproxy/admin.sock: web2 is MAINT (set by an operator or an earlier run), not in rotation; put it back with `echo 'set server shop/web2 state ready' | ssh 'lb 2' 'socat stdio /run/haproxy/admin.sock'`, or force to proceed",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Preflight = %v\nwant it to contain %s", err, want)
		}
	}
	if !errors.Is(err, ErrNotUp) || strings.Contains(err.Error(), "web1") {
		t.Errorf("Preflight = %v, want ErrNotUp about web2 only", err)
	}
	if err := b.Preflight(ctx, []string{"web1", "web2"}, true); err != nil {
		t.Errorf("Preflight forced = %v", err)
	}
}

func TestSameOrOlder(t *testing.T) {
	retired := map[int]bool{7: true}
	tests := []struct {
		cur, last haproxyProc
		want      bool
	}{
		{haproxyProc{Pid: 9, Start: 100}, haproxyProc{Pid: 9, Start: 100}, true},
		{haproxyProc{Pid: 10, Start: 100}, haproxyProc{Pid: 9, Start: 100}, false}, // reload in the same second
		{haproxyProc{Pid: 10, Start: 105}, haproxyProc{Pid: 9, Start: 100}, false},
		{haproxyProc{Pid: 7, Start: 100}, haproxyProc{Pid: 9, Start: 100}, true}, // a retired process still answering
		{haproxyProc{Pid: 8, Start: 90}, haproxyProc{Pid: 9, Start: 100}, true},  // older than the one seen
		{haproxyProc{Start: 101}, haproxyProc{Start: 100}, true},                 // uptime jitter, no pid
		{haproxyProc{Start: 110}, haproxyProc{Start: 100}, false},                // restarted, no pid
	}
	for _, tt := range tests {
		if got := sameOrOlder(tt.cur, tt.last, retired); got != tt.want {
			t.Errorf("sameOrOlder(%+v, %+v) = %v, want %v", tt.cur, tt.last, got, tt.want)
		}
	}
}

// A reload while Enable waits for the server's check would put it in
// rotation before the check passed: it is still held, so it is drained
// again, and set ready only once the check passes.
func TestHAProxyReloadDuringEnable(t *testing.T) {
	ctx := context.Background()
	f := newFakeHAProxy(100, "web1", "web2")
	h := newFakeDriver(t, fakeConn{"lb:1": f}, "lb:1")
	if _, err := h.Drain(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.check["web1"] = "L7STS"
	polls := 0
	f.onStat = func(f *fakeHAProxy) {
		polls++
		switch polls {
		case 2: // Enable is waiting for the check
			f.pid, f.start, f.admin = 200, f.start+1, map[string]int{}
		case 6:
			f.check["web1"] = "L7OK"
		}
	}
	f.mu.Unlock()
	if err := h.Enable(ctx, "web1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{"set server shop/web1 state drain", "set server shop/web1 state drain", "set server shop/web1 state ready"}
	if got := f.sets(); !slices.Equal(got, want) {
		t.Fatalf("set commands = %q, want %q (re-drained while its check failed)", got, want)
	}
	if notes := h.TakeNotes(); len(notes) != 1 || !strings.Contains(notes[0], "forgot that web1 was drained: drained it again") {
		t.Fatalf("TakeNotes = %q", notes)
	}
}

// One held server's re-drain fails: the others are re-drained and reported,
// the failure is an error naming it, and every later call retries it until
// it works (reported as re-drained, not as "kept").
func TestHAProxyReloadPartialRedrain(t *testing.T) {
	ctx := context.Background()
	f := newFakeHAProxy(100, "web1", "web2", "web3")
	h := newFakeDriver(t, fakeConn{"lb:1": f}, "lb:1")
	for _, s := range []string{"web1", "web2"} {
		if _, err := h.Drain(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	f.reload(200, false)
	f.mu.Lock()
	f.failFor = "web2"
	f.mu.Unlock()
	_, err := h.States(ctx)
	if err == nil || !strings.Contains(err.Error(), "forgot that web2 was drained; drain it again: Permission denied") || strings.Contains(err.Error(), "web1") {
		t.Fatalf("States = %v, want web2's re-drain failure only", err)
	}
	if notes := h.TakeNotes(); len(notes) != 1 || !strings.Contains(notes[0], "forgot that web1 was drained: drained it again") {
		t.Fatalf("TakeNotes = %q, want web1 re-drained", notes)
	}
	if _, err := h.EnsureOut(ctx, "web2"); err == nil || !strings.Contains(err.Error(), "web2 is still in rotation on haproxy lb:1 since a reload") {
		t.Fatalf("EnsureOut web2 while its re-drain fails = %v", err)
	}
	f.mu.Lock()
	f.failFor = ""
	f.mu.Unlock()
	note, err := h.EnsureOut(ctx, "web2")
	if err != nil || !strings.Contains(note, "haproxy lb:1 forgot at a reload that web2 was drained: drained it again") {
		t.Fatalf("EnsureOut web2 once the socket accepts = %q, %v", note, err)
	}
	for _, s := range []string{"web1", "web2"} {
		if st := statusOn(t, h, s, "lb:1"); st != StatusDrain {
			t.Errorf("%s = %s, want DRAIN", s, st)
		}
	}
}
