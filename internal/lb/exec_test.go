package lb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/testkit/lbtest"
)

// recorder is a Connector that records scripts and answers from a func.
type recorder struct {
	mu      sync.Mutex
	scripts []string
	hosts   []string
	answer  func(script string) (string, error)
}

func (r *recorder) DialVia(context.Context, string, string, string) (net.Conn, error) {
	return nil, errors.New("recorder cannot dial")
}

func (r *recorder) RunOn(_ context.Context, host, script string) (string, error) {
	r.mu.Lock()
	r.scripts = append(r.scripts, script)
	r.hosts = append(r.hosts, host)
	r.mu.Unlock()
	if r.answer != nil {
		return r.answer(script)
	}
	return "", nil
}

func TestExecTemplatingQuotes(t *testing.T) {
	rec := &recorder{}
	bal, err := lb.New(lb.Config{
		Kind: "exec", Backend: "shop",
		Endpoints: []lb.Endpoint{{SSH: "lb1"}, {SSH: "lb2"}},
		Addresses: map[string]string{"web 1": "10.0.0.1:80"},
		Exec: lb.ExecCommands{
			Drain:  "lbctl drain {{.Backend}} {{.Server}} --addr {{.Address}}",
			Enable: "lbctl enable {{.Backend}}/{{.Server}}",
		},
	}, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := bal.Drain(ctx, "web 1")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Idle || !res.Assumed {
		t.Errorf("Drain without state/idle_check = %+v, want assumed idle", res)
	}
	if err := bal.Enable(ctx, "x';reboot;'", time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"lbctl drain shop 'web 1' --addr 10.0.0.1:80",
		"lbctl drain shop 'web 1' --addr 10.0.0.1:80",
		`lbctl enable shop/'x'\'';reboot;'\'''`,
		`lbctl enable shop/'x'\'';reboot;'\'''`,
	}
	if strings.Join(rec.scripts, "\n") != strings.Join(want, "\n") {
		t.Errorf("scripts:\n%s\nwant:\n%s", strings.Join(rec.scripts, "\n"), strings.Join(want, "\n"))
	}
	if strings.Join(rec.hosts, ",") != "lb1,lb2,lb1,lb2" {
		t.Errorf("hosts = %v, want each command on lb1 then lb2", rec.hosts)
	}
	if !strings.Contains(bal.Describe(), "idle assumed") {
		t.Errorf("Describe = %q, want it to say idle is assumed", bal.Describe())
	}
}

// Quoting proven by a real shell: hostile names arrive byte for byte.
func TestExecQuotingThroughShell(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "got")
	bal, err := lb.New(lb.Config{Kind: "exec", Exec: lb.ExecCommands{
		Drain:  "printf '%s' {{.Server}} > " + out,
		Enable: "true",
	}}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web1", "a b", "it's", `$(touch pwned)`, "x;y|z&`w`", "\"q\"\n\\"} {
		if _, err := bal.Drain(context.Background(), name); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		got, _ := os.ReadFile(out)
		if string(got) != name {
			t.Errorf("shell saw %q, want %q", got, name)
		}
	}
	if _, err := os.Stat("pwned"); err == nil {
		os.Remove("pwned")
		t.Fatal("command substitution ran")
	}
}

// fileLB is a balancer made of files, driven by the exec driver: D/<s>.status
// holds UP/DRAIN, D/<s>.sessions a count.
func fileLB(t *testing.T, servers ...string) (dir string, cmds lb.ExecCommands) {
	dir = t.TempDir()
	for _, s := range servers {
		writeFile(t, filepath.Join(dir, s+".status"), "UP")
		writeFile(t, filepath.Join(dir, s+".sessions"), "0")
	}
	return dir, lb.ExecCommands{
		Drain:  "echo DRAIN > " + dir + "/{{.Server}}.status",
		Enable: "echo UP > " + dir + "/{{.Server}}.status",
		State:  "cd " + dir + " && for f in *.status; do s=${f%.status}; echo \"$s $(cat $f) $(cat $s.sessions)\"; done",
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(s+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func TestExecDrainEnableWithState(t *testing.T) {
	dir, cmds := fileLB(t, "web1", "web2")
	conn := &viaSSH{}
	bal, err := lb.New(lb.Config{Kind: "exec", Backend: "shop", Exec: cmds, DrainTimeout: 5 * time.Second,
		PollInterval: 20 * time.Millisecond, Endpoints: []lb.Endpoint{{SSH: "lb1"}}}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := bal.Preflight(ctx, []string{"web1", "web2"}, false); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "web1.sessions"), "2")
	done := make(chan lb.DrainResult, 1)
	go func() {
		res, err := bal.Drain(ctx, "web1")
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	waitState(t, bal, "web1", lb.StatusDrain)
	select {
	case res := <-done:
		t.Fatalf("Drain returned %+v with 2 sessions left", res)
	case <-time.After(100 * time.Millisecond):
	}
	writeFile(t, filepath.Join(dir, "web1.sessions"), "0")
	res := <-done
	if !res.Idle || res.Assumed || res.Waited < 100*time.Millisecond {
		t.Fatalf("Drain = %+v, want counted idle after the sessions ended", res)
	}

	err = bal.Preflight(ctx, []string{"web1"}, false)
	if !errors.Is(err, lb.ErrNotUp) || !strings.Contains(err.Error(), "web1 is DRAIN") {
		t.Fatalf("Preflight drained = %v", err)
	}
	if err := bal.Preflight(ctx, []string{"web1"}, true); err != nil {
		t.Fatalf("Preflight force: %v", err)
	}
	if err := bal.Preflight(ctx, []string{"web9"}, true); !errors.Is(err, lb.ErrUnknownServer) {
		t.Fatalf("Preflight unknown = %v", err)
	}
	if err := bal.Enable(ctx, "web1", time.Second); err != nil {
		t.Fatal(err)
	}
	waitState(t, bal, "web1", lb.StatusUp)

	// Timeout with sessions left is a result, not an error.
	short, _ := lb.New(lb.Config{Kind: "exec", Exec: cmds, DrainTimeout: 150 * time.Millisecond, PollInterval: 20 * time.Millisecond}, lb.LocalConnector{})
	writeFile(t, filepath.Join(dir, "web2.sessions"), "3")
	res, err = short.Drain(ctx, "web2")
	if err != nil || res.Idle || res.Remaining != 3 {
		t.Fatalf("Drain with stuck sessions = %+v, %v; want not idle, 3 remaining", res, err)
	}
	if err := short.Restore(ctx, []string{"web2"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, short, "web2", lb.StatusUp)
	if conn.count("lb1") == 0 {
		t.Error("no command went to lb1")
	}
}

func TestExecErrorsReportOutput(t *testing.T) {
	bal, err := lb.New(lb.Config{Kind: "exec", Exec: lb.ExecCommands{
		Drain:  "echo partial; echo boom >&2; exit 7",
		Enable: "echo UP-ish",
		State:  "echo web1 DOWN",
	}}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = bal.Drain(ctx, "web1")
	for _, want := range []string{"drain web1 on exec local", "balancer.exec.drain", "exit status 7", "boom", "partial"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Drain error %v does not contain %q", err, want)
		}
	}
	err = bal.Enable(ctx, "web1", 100*time.Millisecond)
	if !errors.Is(err, lb.ErrNotUp) || !strings.Contains(err.Error(), "DOWN") {
		t.Errorf("Enable with state DOWN = %v, want ErrNotUp naming DOWN", err)
	}
	if err := bal.Preflight(ctx, []string{"web1"}, true); !errors.Is(err, lb.ErrNotUp) {
		t.Errorf("Preflight of a DOWN server with force = %v, want ErrNotUp", err)
	}
}

func waitState(t *testing.T, bal lb.Balancer, server string, want lb.Status) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sts, err := bal.States(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ok := false
		for _, st := range sts {
			if st.Server == server {
				ok = st.Status == want
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %s: %+v", server, want, sts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Preflight's refusal gives the enable command, rendered for the server and
// the endpoint; run as written, it puts the server back. EnsureOut drains a
// server put back behind relctl's back again.
func TestExecPreflightRepairAndEnsureOut(t *testing.T) {
	dir, cmds := fileLB(t, "web1", "web2")
	ctx := context.Background()
	remote, err := lb.New(lb.Config{Kind: "exec", Backend: "shop", Exec: cmds, Endpoints: []lb.Endpoint{{SSH: "lb1"}}}, &viaSSH{})
	if err != nil {
		t.Fatal(err)
	}
	local, err := lb.New(lb.Config{Kind: "exec", Backend: "shop", Exec: cmds, DrainTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond}, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "web2.status"), "DRAIN")
	err = remote.Preflight(ctx, []string{"web1", "web2"}, false)
	want := "preflight web2 on exec lb1: web2 is DRAIN, not in rotation; put it back with balancer.exec.enable: `ssh lb1 'echo UP > " + dir + "/web2.status'`, or force to proceed"
	if !errors.Is(err, lb.ErrNotUp) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Preflight = %v\nwant %s", err, want)
	}
	err = local.Preflight(ctx, []string{"web1", "web2"}, false)
	_, cmd, ok := strings.Cut(fmt.Sprint(err), "balancer.exec.enable: `")
	cmd, _, _ = strings.Cut(cmd, "`")
	if !ok || cmd != "echo UP > "+dir+"/web2.status" {
		t.Fatalf("Preflight = %v, want the rendered enable command", err)
	}
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", cmd, err, out)
	}
	if err := local.Preflight(ctx, []string{"web1", "web2"}, false); err != nil {
		t.Fatalf("Preflight after the repair command: %v", err)
	}

	if !local.CanVerify() {
		t.Fatal("exec with a state command: CanVerify = false")
	}
	if res, err := local.Drain(ctx, "web1"); err != nil || !res.Idle {
		t.Fatalf("Drain = %+v, %v", res, err)
	}
	if note, err := local.EnsureOut(ctx, "web1"); note != "" || err != nil {
		t.Fatalf("EnsureOut of drained web1 = %q, %v", note, err)
	}
	writeFile(t, filepath.Join(dir, "web1.status"), "UP")
	note, err := local.EnsureOut(ctx, "web1")
	if err != nil || !strings.Contains(note, "web1 was back in rotation on local (UP): drained again, idle after") {
		t.Fatalf("EnsureOut of web1 put back = %q, %v", note, err)
	}
	waitState(t, local, "web1", lb.StatusDrain)
	if err := local.Verify(ctx, "web1"); !errors.Is(err, lb.ErrNotUp) || !strings.Contains(err.Error(), "local: DRAIN") {
		t.Fatalf("Verify of drained web1 = %v", err)
	}
	if err := local.Enable(ctx, "web1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := local.Verify(ctx, "web1"); err != nil {
		t.Fatalf("Verify after Enable: %v", err)
	}

	// Without a state command there is nothing to read back.
	blind, _ := lb.New(lb.Config{Kind: "exec", Exec: lb.ExecCommands{Drain: cmds.Drain, Enable: cmds.Enable}}, lb.LocalConnector{})
	if blind.CanVerify() {
		t.Fatal("exec without a state command: CanVerify = true")
	}
	if err := blind.Verify(ctx, "web1"); err == nil {
		t.Fatal("Verify without a state command = nil")
	}
}

// With an idle_check, a server already out of rotation must also be idle
// before its app stops: EnsureOut waits for the check (or reports
// ErrNotIdle after the drain timeout) and says so.
func TestExecEnsureOutWaitsForIdleCheck(t *testing.T) {
	dir, cmds := fileLB(t, "web1")
	busy := filepath.Join(dir, "web1.busy")
	writeFile(t, busy, "0")
	cfg := lb.Config{Kind: "exec", Exec: cmds, DrainTimeout: 10 * time.Second, PollInterval: 20 * time.Millisecond,
		IdleCheck: "echo >> " + dir + "/checks; test \"$(cat " + dir + "/{{.Server}}.busy)\" = 0"}
	checks := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "checks"))
		return len(b)
	}
	bal, err := lb.New(cfg, lb.LocalConnector{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res, err := bal.Drain(ctx, "web1"); err != nil || !res.Idle {
		t.Fatalf("Drain = %+v, %v", res, err)
	}
	if note, err := bal.EnsureOut(ctx, "web1"); note != "" || err != nil {
		t.Fatalf("EnsureOut of a drained, idle web1 = %q, %v", note, err)
	}

	writeFile(t, busy, "1")
	type out struct {
		note string
		err  error
	}
	done := make(chan out, 1)
	go func() {
		note, err := bal.EnsureOut(ctx, "web1")
		done <- out{note, err}
	}()
	// It is still waiting after the failing check has run several times.
	before := checks()
	lbtest.Eventually(t, 10*time.Second, "EnsureOut polling the idle check", func() (bool, string) {
		select {
		case o := <-done:
			t.Fatalf("EnsureOut returned %q, %v while the idle check failed", o.note, o.err)
		default:
		}
		return checks() >= before+5, fmt.Sprintf("%d checks", checks()-before)
	})
	writeFile(t, busy, "0")
	o := <-done
	if o.err != nil || !strings.Contains(o.note, "web1 was still busy on local (idle_check failed): waited, idle after") {
		t.Fatalf("EnsureOut = %q, %v", o.note, o.err)
	}

	// Still busy at the drain timeout: the app must not stop.
	cfg.DrainTimeout = 300 * time.Millisecond
	short, _ := lb.New(cfg, lb.LocalConnector{})
	writeFile(t, busy, "1")
	if note, err := short.EnsureOut(ctx, "web1"); !errors.Is(err, lb.ErrNotIdle) || !strings.Contains(err.Error(), "web1 was still busy on local") {
		t.Fatalf("EnsureOut busy past the timeout = %q, %v; want ErrNotIdle", note, err)
	}
}
