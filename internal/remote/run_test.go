package remote

import (
	"context"
	"errors"
	"fmt"
	"github.com/relctl/relctl/internal/demo/proc"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/sshserver"
	"github.com/relctl/relctl/internal/shell"
)

func TestRunExitCodes(t *testing.T) { bothModes(t, testRunExitCodes) }

func testRunExitCodes(t *testing.T, plain bool) {
	t.Parallel()
	c := newModeFixture(t, nil, plain).client()
	ctx := testCtx(t)

	res, err := c.Run(ctx, Command{Script: "true"})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("true: %+v, %v", res, err)
	}

	res, err = c.Run(ctx, Command{Script: "echo first >&2; echo 'it broke' >&2; exit 3"})
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("exit 3: want *ExitError, got %v", err)
	}
	if ee.Code != 3 || res.ExitCode != 3 || ee.Host != "web1" || ee.StderrTail != "first\nit broke" {
		t.Fatalf("exit 3: %+v %+v", ee, res)
	}
	if got := err.Error(); got != "web1: exit status 3: it broke" {
		t.Fatalf("message: %q", got)
	}

	// sshd reports a death by signal apart from an exit status (plain);
	// the persistent shell's wait status cannot tell `kill -TERM $$` from
	// `exit 143`, and names a signal only when its watchdog sent one
	// (TestShellExitAbove128IsNotASignal).
	_, err = c.Run(ctx, Command{Script: "kill -TERM $$"})
	want := "TERM"
	if !plain {
		want = ""
	}
	if !errors.As(err, &ee) || ee.Signal != want || ee.Code != 128+15 {
		t.Fatalf("killed: %#v, want signal %q", err, want)
	}
}

func TestRunStreamsEveryLine(t *testing.T) { bothModes(t, testRunStreamsEveryLine) }

func testRunStreamsEveryLine(t *testing.T, plain bool) {
	t.Parallel()
	c := newModeFixture(t, nil, plain).client()
	var mu sync.Mutex
	var out, errs []string
	const n = 20000
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; printf 'no newline'`, n)
	_, err := c.Run(testCtx(t), Command{
		Script: script,
		Stdout: func(l string) { mu.Lock(); out = append(out, l); mu.Unlock() },
		Stderr: func(l string) { mu.Lock(); errs = append(errs, l); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != n+1 || len(errs) != n {
		t.Fatalf("got %d stdout and %d stderr lines", len(out), len(errs))
	}
	for i := 0; i < n; i++ {
		if out[i] != "out "+strconv.Itoa(i) || errs[i] != "err "+strconv.Itoa(i) {
			t.Fatalf("line %d: %q %q", i, out[i], errs[i])
		}
	}
	if out[n] != "no newline" {
		t.Fatalf("last line %q", out[n])
	}
}

func TestRunEnvExported(t *testing.T) { bothModes(t, testRunEnvExported) }

func testRunEnvExported(t *testing.T, plain bool) {
	t.Parallel()
	f := newModeFixture(t, nil, plain)
	c := f.client()
	ctx := testCtx(t)
	val := "it's $(echo pwned) `id` \"q\"\nline2"
	out, err := c.Output(ctx, `printf '%s|%s' "$RELCTL_VERSION" "$WEIRD"`)
	if err != nil || out != "|" {
		t.Fatalf("no env: %q %v", out, err)
	}
	var got []string
	_, err = c.Run(ctx, Command{
		Script: `printf '%s|%s\n' "$RELCTL_VERSION" "$WEIRD"; sh -c 'echo child:$RELCTL_VERSION'`,
		Env:    map[string]string{"RELCTL_VERSION": "1.4.0", "WEIRD": val},
		Stdout: func(l string) { got = append(got, l) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1.4.0|it's $(echo pwned) `id` \"q\"", "line2", "child:1.4.0"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q", got)
	}
	// Values are not in the command line (ps on the host shows it to all).
	if !f.logs.contains("exec pid") || f.logs.contains("1.4.0") {
		t.Fatalf("env values in the exec command: %q", f.logs.lines)
	}
	for _, bad := range []string{"lower", "1X", "A-B", "A B", ""} {
		if _, err := c.Run(ctx, Command{Script: "true", Env: map[string]string{bad: "x"}}); err == nil {
			t.Errorf("env key %q accepted", bad)
		}
	}
}

func TestRunScriptQuotingAndArgs(t *testing.T) { bothModes(t, testRunScriptQuotingAndArgs) }

func testRunScriptQuotingAndArgs(t *testing.T, plain bool) {
	t.Parallel()
	c := newModeFixture(t, nil, plain).client()
	weird := "a 'b' \"c\" $(d) `e` \\f\n*"
	out, err := c.Output(testCtx(t), "printf '%s' "+shell.Quote(weird))
	if err != nil || out != strings.TrimSpace(weird) {
		t.Fatalf("%q %v", out, err)
	}
	// The script runs as sh -c would run it: $0 is sh, no arguments.
	out, err = c.Output(testCtx(t), `printf '%s|%s|%s' "${0##*/}" "$#" "$*"`)
	if err != nil || out != "sh|0|" {
		t.Fatalf("$0/$#: %q %v", out, err)
	}
	// A syntax error is the script's failure, reported as sh reports it.
	if _, err := c.Run(testCtx(t), Command{Script: "echo ok; if then"}); !isExit(err, 2) {
		t.Fatalf("syntax error: %v", err)
	}
}

func TestRunTimeoutKillsRemoteProcessGroup(t *testing.T) {
	bothModes(t, testRunTimeoutKillsRemoteProcessGroup)
}

func testRunTimeoutKillsRemoteProcessGroup(t *testing.T, plain bool) {
	t.Parallel()
	f := newModeFixture(t, nil, plain)
	c, err := f.pool(Options{KillGrace: 300 * time.Millisecond}).Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(f.dir, "sleep.pid")
	start := time.Now()
	// The sleep is a child of the script's shell: killing only the shell
	// would leave it running.
	res, err := c.Run(testCtx(t), Command{
		Script:  "sleep 300 & echo $! > " + shell.Quote(pidfile) + "; wait",
		Timeout: 500 * time.Millisecond,
	})
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if !strings.HasPrefix(err.Error(), "web1: ") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("message: %v", err)
	}
	if took > 3*time.Second {
		t.Fatalf("Run returned after %s", took)
	}
	if res.ExitCode != 128+15 && res.Signal != "TERM" {
		t.Logf("result %+v", res)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run took %s", took)
	if !eventually(2*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("remote sleep %d still running after timeout", pid)
	}
	t.Logf("sleep gone after %s", time.Since(start))
	// Nothing is left running on the host but the persistent shell.
	want := 1
	if plain {
		want = 0
	}
	if !eventually(2*time.Second, func() bool { return f.srv.Running() == want }) {
		t.Fatalf("server still runs %d commands", f.srv.Running())
	}
	// The client is still usable.
	if out, err := c.Output(testCtx(t), "echo ok"); err != nil || out != "ok" {
		t.Fatalf("after timeout: %q %v", out, err)
	}
}

func TestRunTimeoutEscalatesToKill(t *testing.T) { bothModes(t, testRunTimeoutEscalatesToKill) }

func testRunTimeoutEscalatesToKill(t *testing.T, plain bool) {
	t.Parallel()
	f := newModeFixture(t, nil, plain)
	c, err := f.pool(Options{KillGrace: 300 * time.Millisecond}).Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(f.dir, "stubborn.pid")
	_, err = c.Run(testCtx(t), Command{
		Script:  "trap '' TERM; echo $$ > " + shell.Quote(pidfile) + "; while :; do sleep 0.05; done",
		Timeout: 300 * time.Millisecond,
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if !eventually(2*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("TERM-ignoring process %d survived", pid)
	}
}

func TestRunContextCancelKillsRemote(t *testing.T) { bothModes(t, testRunContextCancelKillsRemote) }

func testRunContextCancelKillsRemote(t *testing.T, plain bool) {
	t.Parallel()
	f := newModeFixture(t, nil, plain)
	c := f.client()
	pidfile := filepath.Join(f.dir, "sleep.pid")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		eventually(5*time.Second, func() bool { _, err := os.Stat(pidfile); return err == nil })
		cancel()
	}()
	_, err := c.Run(ctx, Command{Script: "echo $$ > " + shell.Quote(pidfile) + "; exec sleep 300"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if !eventually(3*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("remote sleep %d still running after cancel", pid)
	}
}

func TestDropConnectionMidCommandAndReconnect(t *testing.T) {
	bothModes(t, testDropConnectionMidCommandAndReconnect)
}

func testDropConnectionMidCommandAndReconnect(t *testing.T, plain bool) {
	t.Parallel()
	f := newModeFixture(t, nil, plain)
	p := f.pool(Options{})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Run(testCtx(t), Command{Script: "echo started; sleep 30", Stdout: func(string) { close(started) }})
		errc <- err
	}()
	<-started
	f.srv.DropConnections()
	t0 := time.Now()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("want ErrConnectionLost, got %v", err)
		}
		if !strings.HasPrefix(err.Error(), "web1: ") {
			t.Fatalf("message: %v", err)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Fatalf("took %s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the connection dropped")
	}
	if c.Alive() {
		t.Fatal("client still alive")
	}
	if _, err := c.Run(testCtx(t), Command{Script: "true"}); !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("run on dead client: %v", err)
	}
	c2, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	if c2 == c {
		t.Fatal("Get returned the dead client")
	}
	if out, err := c2.Output(testCtx(t), "echo again"); err != nil || out != "again" {
		t.Fatalf("after reconnect: %q %v", out, err)
	}
	if c3, _ := p.Get(testCtx(t), f.host("web1")); c3 != c2 {
		t.Fatal("live client not reused")
	}
}

func TestKeepaliveDetectsSilentHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *sshserver.Config) { c.IgnoreKeepalive = true })
	const every, count = 100 * time.Millisecond, 5
	p := f.pool(Options{KeepAlive: every, KeepAliveCountMax: count})
	t0 := time.Now()
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Run(testCtx(t), Command{Script: "sleep 30"})
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), "no answer to 5 keepalives in a row") {
			t.Fatalf("want ErrConnectionLost (keepalive), got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("silent host not detected")
	}
	// Timers never fire early: the first keepalive goes out after one
	// interval and the host may stay silent count intervals more. The old
	// single-interval rule declared it dead after 2 intervals.
	if d := time.Since(t0); d < (count+1)*every {
		t.Fatalf("declared dead after %s, before %d unanswered intervals", d, count)
	}
	c2, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil || c2 == c {
		t.Fatalf("redial: %v", err)
	}
}

// A loaded host that answers one keepalive late, within count intervals,
// stays alive. Under the old rule (dead after one interval without an
// answer) this host was disconnected mid-step.
func TestKeepaliveSlowAnswerOnceIsNotDeath(t *testing.T) {
	t.Parallel()
	const every = 50 * time.Millisecond
	f := newFixture(t, func(c *sshserver.Config) {
		c.KeepaliveDelay = func(n int) time.Duration {
			if n == 0 {
				return 4 * every // the first answer is 4 intervals late
			}
			return 0
		}
	})
	// 40 intervals of tolerance: the late answer uses 4 of them, the
	// rest absorbs scheduling delays on a busy machine.
	c, err := f.pool(Options{KeepAlive: every, KeepAliveCountMax: 40}).Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	// The late answer and five more after it have reached the client.
	if !eventually(15*time.Second, func() bool { return c.answered.Load() >= 6 || !c.Alive() }) {
		t.Fatalf("only %d keepalives answered", c.answered.Load())
	}
	if !c.Alive() {
		t.Fatal("host declared dead after one slow keepalive answer")
	}
	if out, err := c.Output(testCtx(t), "echo ok"); err != nil || out != "ok" {
		t.Fatalf("after slow keepalive: %q %v", out, err)
	}
}

// OpenSSH answers keepalive@openssh.com with a failure reply: that is an
// answer. The check does not depend on timing: a client that treated the
// failure as an error would close the connection at the first reply, and
// the client must have counted several replies as answers.
func TestKeepaliveAnsweredWithFailureMeansAlive(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil) // answers global requests with failure, like OpenSSH
	c, err := f.pool(Options{KeepAlive: 20 * time.Millisecond, KeepAliveCountMax: 1000}).Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	if !eventually(15*time.Second, func() bool { return c.answered.Load() >= 5 || !c.Alive() }) {
		t.Fatalf("only %d keepalives answered", c.answered.Load())
	}
	if !c.Alive() {
		t.Fatal("client marked dead although the server answers keepalives")
	}
	if f.srv.GlobalRequests() < 5 {
		t.Fatalf("server answered %d keepalives", f.srv.GlobalRequests())
	}
}

// ServerAliveInterval/ServerAliveCountMax come from the inventory first,
// then ssh_config, then the pool's defaults.
func TestKeepaliveSettingsSources(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	cfgPath := filepath.Join(f.dir, "ssh_config")
	writeFile(t, cfgPath, "Host *\n  ServerAliveInterval 7\n  ServerAliveCountMax 4\n")
	var mu sync.Mutex
	var warned []string
	p := NewPool(Options{SSHConfigPath: cfgPath, Warnf: func(format string, args ...any) {
		mu.Lock()
		warned = append(warned, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	t.Cleanup(func() { p.Close() })
	get := func(h HostConfig) *Client {
		t.Helper()
		c, err := p.Get(testCtx(t), h)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	h := f.host("from-config")
	h.UseSSHConfig = true
	if c := get(h); c.aliveEvery != 7*time.Second || c.aliveMax != 4 {
		t.Errorf("ssh_config: %s × %d", c.aliveEvery, c.aliveMax)
	}
	h = f.host("from-inventory")
	h.UseSSHConfig = true
	h.ServerAliveInterval, h.ServerAliveCountMax = 2*time.Second, 9
	if c := get(h); c.aliveEvery != 2*time.Second || c.aliveMax != 9 {
		t.Errorf("inventory: %s × %d", c.aliveEvery, c.aliveMax)
	}
	if c := get(f.host("defaults")); c.aliveEvery != 15*time.Second || c.aliveMax != 3 {
		t.Errorf("defaults: %s × %d", c.aliveEvery, c.aliveMax)
	}
	writeFile(t, filepath.Join(f.dir, "bad_config"), "Host *\n  ServerAliveInterval soon\n")
	p2 := NewPool(Options{SSHConfigPath: filepath.Join(f.dir, "bad_config"), Warnf: func(format string, args ...any) {
		mu.Lock()
		warned = append(warned, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	t.Cleanup(func() { p2.Close() })
	h = f.host("bad")
	h.UseSSHConfig = true
	c, err := p2.Get(testCtx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if c.aliveEvery != 15*time.Second {
		t.Errorf("bad value: %s", c.aliveEvery)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warned) != 1 || !strings.Contains(warned[0], `bad: ssh_config ServerAliveInterval "soon"`) {
		t.Fatalf("warnings: %q", warned)
	}
}

func TestSessionCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil) // server refuses the 11th concurrent session, like OpenSSH
	// One session per command: the cap is what keeps 20 concurrent
	// commands under the host's MaxSessions.
	run20 := func(max int) (failed int) {
		c, err := f.pool(Options{MaxSessionsPerHost: max, OneSessionPerCommand: true}).Get(testCtx(t), f.host("web1"))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := c.Output(testCtx(t), "sleep 0.2; echo "+strconv.Itoa(i))
				if err != nil || out != strconv.Itoa(i) {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return failed
	}
	if n := run20(8); n != 0 {
		t.Fatalf("%d of 20 commands failed with MaxSessionsPerHost 8", n)
	}
	// Without the cap the server's limit bites: proves the test can fail.
	if n := run20(20); n == 0 {
		t.Fatal("server did not enforce MaxSessions; the test proves nothing")
	}
}
