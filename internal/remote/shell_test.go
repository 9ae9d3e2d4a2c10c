package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/relctl/relctl/internal/demo/proc"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/sshserver"
	"github.com/relctl/relctl/internal/shell"
)

// lines collects a command's stdout and stderr lines.
type lines struct {
	mu       sync.Mutex
	out, err []string
}

func (l *lines) cmd(script string) Command {
	return Command{Script: script,
		Stdout: func(s string) { l.mu.Lock(); l.out = append(l.out, s); l.mu.Unlock() },
		Stderr: func(s string) { l.mu.Lock(); l.err = append(l.err, s); l.mu.Unlock() },
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("out %q err %q", l.out, l.err)
}

// Commands in sequence over one session: each one's stdout, stderr and
// exit status come back separately, whatever the previous one printed.
func TestShellCommandsInSequenceOverOneSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cases := []struct {
		script   string
		out, err []string
		code     int
	}{
		{"echo one; echo eins >&2", []string{"one"}, []string{"eins"}, 0},
		{"printf 'no newline'; printf 'err no newline' >&2; exit 3", []string{"no newline"}, []string{"err no newline"}, 3},
		{"printf 'a\\n\\nb\\n\\n'; printf '\\n' >&2", []string{"a", "", "b", ""}, []string{""}, 0},
		{"true", nil, nil, 0},
		{"printf '\\n\\n'", []string{"", ""}, nil, 0},
		{"echo relctl-end:0123456789abcdef 0 - -; echo relctl-ack:x; exit 4", []string{"relctl-end:0123456789abcdef 0 - -", "relctl-ack:x"}, nil, 4},
		{"sh -c 'echo child out; echo child err >&2; exit 7'", []string{"child out"}, []string{"child err"}, 7},
		{"exit 0", nil, nil, 0},
	}
	for i, tc := range cases {
		var l lines
		res, err := c.Run(ctx, l.cmd(tc.script))
		if tc.code == 0 && err != nil || tc.code != 0 && !isExit(err, tc.code) || res.ExitCode != tc.code {
			t.Fatalf("%d %q: %+v %v", i, tc.script, res, err)
		}
		if fmt.Sprint(l.out) != fmt.Sprint(tc.out) || fmt.Sprint(l.err) != fmt.Sprint(tc.err) {
			t.Fatalf("%d %q: %s, want out %q err %q", i, tc.script, l.String(), tc.out, tc.err)
		}
		if res.Duration <= 0 {
			t.Fatalf("%d: duration %s", i, res.Duration)
		}
	}
	// Output that starts at once and ends without a newline, many times:
	// the shell's own lines (pid, end) never land inside it.
	for i := range 100 {
		var l lines
		if _, err := c.Run(ctx, l.cmd("printf "+strconv.Itoa(i)+"; printf e >&2")); err != nil {
			t.Fatal(err)
		}
		if got := l.String(); got != fmt.Sprintf("out [\"%d\"] err [\"e\"]", i) {
			t.Fatalf("%d: %s", i, got)
		}
	}
	if n := c.Sessions(); n != 1 || p.Sessions("web1") != 1 || !c.PersistentShell() {
		t.Fatalf("%d commands used %d sessions (pool says %d)", len(cases)+100, n, p.Sessions("web1"))
	}
	if n := strings.Count(strings.Join(f.logs.snapshot(), "\n"), "exec pid"); n != 1 {
		t.Fatalf("server started %d sessions", n)
	}
}

func isExit(err error, code int) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Code == code
}

// A command that reads stdin gets EOF at once: it cannot read the shell's
// next command (the next command still runs, and only once).
func TestShellCommandStdinIsEmpty(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.client()
	ctx := testCtx(t)
	out, err := c.Output(ctx, `cat; read x; echo "read:[$x]"`)
	if err != nil || out != "read:[]" {
		t.Fatalf("%q %v", out, err)
	}
	counter := filepath.Join(f.dir, "count")
	// Two commands queued back to back: the first reads stdin, the
	// second appends to a file. Run serialises them; the reader must not
	// see the second's text.
	var wg sync.WaitGroup
	wg.Add(2)
	var got string
	go func() {
		defer wg.Done()
		got, _ = c.Output(ctx, "sleep 0.2; cat")
	}()
	go func() {
		defer wg.Done()
		_, _ = c.Run(ctx, Command{Script: "echo x >> " + shell.Quote(counter)})
	}()
	wg.Wait()
	if got != "" || strings.TrimSpace(readFile(t, counter)) != "x" {
		t.Fatalf("cat read %q; counter %q", got, readFile(t, counter))
	}
}

// Env values never appear in a command line: the test scans every
// process's cmdline on this machine (the fixture's host) while the
// command runs.
func TestShellEnvNotInArgv(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	checkEnvNotInArgv(t, f.client(), f.dir)
}

func checkEnvNotInArgv(t *testing.T, c *Client, dir string) {
	t.Helper()
	secret := "s3cr3t-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ready, goOn := filepath.Join(dir, "env-ready"), filepath.Join(dir, "env-go")
	errc := make(chan error, 1)
	var got string
	go func() {
		var err error
		got, err = func() (string, error) {
			var b strings.Builder
			_, err := c.Run(testCtx(t), Command{
				Script: fmt.Sprintf(`printf '%%s' "$RELCTL_SECRET" > %s.tmp && mv %[1]s.tmp %[1]s; `+
					`while [ ! -e %s ]; do sleep 0.02; done; sh -c 'echo "$RELCTL_SECRET"'`, shell.Quote(ready), shell.Quote(goOn)),
				Env:     map[string]string{"RELCTL_SECRET": secret},
				Timeout: 15 * time.Second,
				Stdout:  func(l string) { b.WriteString(l) },
			})
			return b.String(), err
		}()
		errc <- err
	}()
	if !eventually(10*time.Second, func() bool { _, err := os.Stat(ready); return err == nil }) {
		t.Fatal("command did not start")
	}
	if v := readFile(t, ready); v != secret {
		t.Fatalf("command saw %q", v)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the env value: %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	writeFile(t, goOn, "")
	if err := <-errc; err != nil || got != secret {
		t.Fatalf("child saw %q: %v", got, err)
	}
}

// A timeout kills exactly the command's process group; the shell survives
// it and runs the next command, and the kill (by the host-side watchdog)
// took no session.
func TestShellTimeoutThenNextCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{KillGrace: 300 * time.Millisecond})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := c.Run(ctx, Command{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	shellPID := c.shell.pid
	pidfile := filepath.Join(f.dir, "sleep.pid")
	cmdPIDFile := filepath.Join(f.dir, "cmd.pid")
	_, err = c.Run(ctx, Command{Script: "echo $$ > " + shell.Quote(cmdPIDFile) + "; sleep 300 & echo $! > " + shell.Quote(pidfile) + "; echo started; wait", Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "process group") {
		t.Fatalf("want ErrTimeout killing the process group, got %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if !eventually(5*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sleep %d survived", pid)
	}
	if !proc.Alive(shellPID) {
		t.Fatal("the kill took the shell with it")
	}
	out, err := c.Output(ctx, "echo next")
	if err != nil || out != "next" || c.shell.pid != shellPID {
		t.Fatalf("next command: %q %v", out, err)
	}
	if n := p.Sessions("web1"); n != 1 {
		t.Fatalf("%d sessions: want the shell only", n)
	}
	// A TERM-ignoring command gets KILL after KillGrace.
	_, err = c.Run(ctx, Command{Script: "trap '' TERM; echo $$ > " + shell.Quote(pidfile) + "; while :; do sleep 0.05; done", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	pid, _ = strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if !eventually(5*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("TERM-ignoring %d survived", pid)
	}
	if out, err := c.Output(ctx, "echo next"); err != nil || out != "next" || p.Sessions("web1") != 1 {
		t.Fatalf("after KILL: %q %v, %d sessions", out, err, p.Sessions("web1"))
	}
	// A command with a timeout has its watchdog while it runs, and
	// loses it when it ends in time.
	waiting, goOn := filepath.Join(f.dir, "waiting.pid"), filepath.Join(f.dir, "go")
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, Command{Script: "echo $$ > " + shell.Quote(waiting) + ".tmp; mv " + shell.Quote(waiting) + ".tmp " + shell.Quote(waiting) +
			"; while [ ! -e " + shell.Quote(goOn) + " ]; do sleep 0.02; done", Timeout: time.Minute})
		done <- err
	}()
	if !eventually(10*time.Second, func() bool { _, err := os.Stat(waiting); return err == nil }) {
		t.Fatal("command did not start")
	}
	waitingPID := strings.TrimSpace(readFile(t, waiting))
	if !eventually(10*time.Second, func() bool { return len(watchdogsFor(waitingPID)) == 1 }) {
		t.Fatalf("no watchdog seen for %s: %v", waitingPID, watchdogsFor(waitingPID))
	}
	writeFile(t, goOn, "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every watchdog of this test is gone (this machine is the host;
	// other tests' watchdogs may be running beside them).
	cmdPID := strings.TrimSpace(readFile(t, cmdPIDFile))
	for _, target := range []string{cmdPID, strconv.Itoa(pid), waitingPID} {
		if !eventually(5*time.Second, func() bool { return len(watchdogsFor(target)) == 0 }) {
			t.Fatalf("watchdog of %s left: %v", target, watchdogsFor(target))
		}
	}
}

// watchdogsFor lists the local processes that are the shell's watchdog
// for the command with the given pid.
func watchdogsFor(pid string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		// sh -c <script> relctl-watchdog <timeout> <grace> <pid>
		for i, a := range args {
			if a == "relctl-watchdog" && i+3 == len(args)-1 && args[i+3] == pid {
				found = append(found, p)
			}
		}
	}
	return found
}

// When the host's watchdog cannot work (a sleep(1) without fractions),
// the client kills the timed-out command from a second session.
func TestShellTimeoutBackstop(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	for _, tool := range []string{"sh", "setsid", "cat", "ps", "grep"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(path, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	realSleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bin, "sleep"), "#!/bin/sh\ncase \"$1\" in *.*) exit 1;; esac\nexec "+realSleep+" \"$@\"\n")
	if err := os.Chmod(filepath.Join(bin, "sleep"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *sshserver.Config) { c.Env = []string{"PATH=" + bin} })
	p := f.pool(Options{KillGrace: 300 * time.Millisecond})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	pidfile := filepath.Join(f.dir, "sleep.pid")
	_, err = c.Run(ctx, Command{Script: "sleep 300 & echo $! > " + shell.Quote(pidfile) + "; wait", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if !eventually(5*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sleep %d survived", pid)
	}
	if out, err := c.Output(ctx, "echo next"); err != nil || out != "next" {
		t.Fatalf("next: %q %v", out, err)
	}
	if n := p.Sessions("web1"); n != 2 || !c.PersistentShell() {
		t.Fatalf("%d sessions: want the shell and one kill", n)
	}
}

// The shell's session dies mid-command (the command kills the shell): the
// outcome is unknown (ErrConnectionLost), and the next command opens a new
// shell on the same connection.
func TestShellKilledMidCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var l lines
	_, err = c.Run(ctx, l.cmd("echo before; kill -KILL $PPID; sleep 0.1; echo after"))
	if !errors.Is(err, ErrConnectionLost) || !strings.HasPrefix(err.Error(), "web1: ") || !strings.Contains(err.Error(), "ended mid-command") {
		t.Fatalf("want ErrConnectionLost, got %v", err)
	}
	if !c.Alive() {
		t.Fatal("the connection died with the shell")
	}
	out, err := c.Output(ctx, "echo again")
	if err != nil || out != "again" {
		t.Fatalf("next command: %q %v", out, err)
	}
	if n := p.Sessions("web1"); n != 2 {
		t.Fatalf("%d sessions, want 2 shells", n)
	}
}

// A shell that died between commands is noticed and replaced; the next
// command runs exactly once.
func TestShellDiedBetweenCommands(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.client()
	ctx := testCtx(t)
	for i := range 3 {
		if _, err := c.Run(ctx, Command{Script: "true"}); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(c.shell.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			// Let the death be seen before the next command.
			if !eventually(5*time.Second, func() bool {
				select {
				case <-c.shell.dead:
					return true
				default:
					return false
				}
			}) {
				t.Fatal("dead shell not noticed")
			}
		}
		counter := filepath.Join(f.dir, "count"+strconv.Itoa(i))
		if _, err := c.Run(ctx, Command{Script: "echo x >> " + shell.Quote(counter)}); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if got := readFile(t, counter); got != "x\n" {
			t.Fatalf("%d: ran %q", i, got)
		}
	}
}

// Connection dropped mid-command on the shell: ErrConnectionLost, and the
// pool's next client opens a new shell.
func TestShellConnectionDroppedThenReopens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
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
	if err := <-errc; !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("want ErrConnectionLost, got %v", err)
	}
	c2, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c2.Output(testCtx(t), "echo again"); err != nil || out != "again" {
		t.Fatalf("%q %v", out, err)
	}
	if c.Sessions() != 1 || c2.Sessions() != 1 || p.Sessions("web1") != 2 {
		t.Fatalf("sessions: %d + %d, pool %d", c.Sessions(), c2.Sessions(), p.Sessions("web1"))
	}
}

// Concurrent commands on one host take turns on the one shell.
func TestShellConcurrentCommandsTakeTurns(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.Output(testCtx(t), fmt.Sprintf("echo %d; echo e%d >&2", i, i))
			if err == nil && out != strconv.Itoa(i) {
				err = fmt.Errorf("command %d got %q", i, out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Sessions("web1"); n != 1 {
		t.Fatalf("%d sessions", n)
	}
}

// A host whose /bin/sh environment cannot run the persistent shell (no
// setsid) falls back to one session per command, and says so once.
func TestShellFallbackWithoutSetsid(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	for _, tool := range []string{"sh", "cat", "sleep", "rm", "mkdir", "printf"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(path, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, func(c *sshserver.Config) { c.Env = []string{"PATH=" + bin} })
	var mu sync.Mutex
	var warned []string
	p := f.pool(Options{KillGrace: 300 * time.Millisecond, Warnf: func(format string, args ...any) {
		mu.Lock()
		warned = append(warned, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for i := range 3 {
		var l lines
		_, err := c.Run(ctx, l.cmd(fmt.Sprintf("echo out%d; echo err%d >&2; exit %d", i, i, i)))
		if i == 0 && err != nil || i > 0 && !isExit(err, i) {
			t.Fatalf("%d: %v", i, err)
		}
		if l.String() != fmt.Sprintf("out [\"out%d\"] err [\"err%d\"]", i, i) {
			t.Fatalf("%d: %s", i, l.String())
		}
	}
	// The fallback still kills a timed-out command.
	pidfile := filepath.Join(f.dir, "sleep.pid")
	if _, err := c.Run(ctx, Command{Script: "echo $$ > " + shell.Quote(pidfile) + "; exec sleep 300", Timeout: 300 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if !eventually(5*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sleep %d survived", pid)
	}
	if c.PersistentShell() {
		t.Fatal("PersistentShell() is true")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warned) != 1 || warned[0] != "web1: no persistent shell (setsid(1) is not installed); running one SSH session per command" {
		t.Fatalf("warnings %q", warned)
	}
	// The failed shell, three commands, the timed-out one and its kill.
	if n := p.Sessions("web1"); n != 6 {
		t.Fatalf("%d sessions", n)
	}
}

// A login shell that never hands over (it hangs in its rc files) is given
// up after ShellStartTimeout: the host falls back, nothing hangs.
func TestShellStartTimeoutFallsBack(t *testing.T) {
	t.Parallel()
	// The "login shell" runs `exec /bin/sh -s` only for other commands:
	// for the persistent shell it reads nothing and sleeps.
	login := filepath.Join(t.TempDir(), "login.sh")
	writeFile(t, login, "#!/bin/sh\nif [ \"$2\" = 'exec /bin/sh -s' ]; then exec sleep 60; fi\nexec /bin/sh \"$@\"\n")
	if err := os.Chmod(login, 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *sshserver.Config) { c.Shell = login })
	var mu sync.Mutex
	var warned []string
	p := f.pool(Options{ShellStartTimeout: 300 * time.Millisecond, Warnf: func(format string, args ...any) {
		mu.Lock()
		warned = append(warned, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Output(testCtx(t), "echo fine")
	if err != nil || out != "fine" {
		t.Fatalf("%q %v", out, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warned) != 1 || !strings.Contains(warned[0], "did not answer within 300ms") {
		t.Fatalf("warnings %q", warned)
	}
}

// An upload (check, SFTP, verify) and any number of commands take two
// sessions: the shell and the SFTP subsystem. The shell takes no slot of
// MaxSessionsPerHost: with a cap of 1 the upload still gets its session.
func TestShellSessionsForUploadAndCommands(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{MaxSessionsPerHost: 1})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	local := filepath.Join(t.TempDir(), "a.tar.gz")
	sum := writeRandom(t, local, 64<<10)
	if _, err := c.Upload(ctx, local, filepath.Join(f.dir, "releases", "a.tar.gz"), sum); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := c.Run(ctx, Command{Script: "true"}); err != nil {
			t.Fatal(err)
		}
	}
	if skipped, err := c.Upload(ctx, local, filepath.Join(f.dir, "releases", "a.tar.gz"), sum); err != nil || !skipped {
		t.Fatalf("re-upload: %v %v", skipped, err)
	}
	// A second artifact (a two-hop upgrade stages two) shares the SFTP
	// session.
	local2 := filepath.Join(t.TempDir(), "b.tar.gz")
	sum2 := writeRandom(t, local2, 64<<10)
	if _, err := c.Upload(ctx, local2, filepath.Join(f.dir, "releases", "b.tar.gz"), sum2); err != nil {
		t.Fatal(err)
	}
	if got := p.SessionCounts(); len(got) != 1 || got["web1"] != 2 {
		t.Fatalf("sessions %v", got)
	}
}

// The driver on its own, under the local /bin/sh: markers, a malformed
// request refused, a request cut short never run, signals named.
func TestDriverScriptFraming(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	x, y := filepath.Join(dir, "x"), filepath.Join(dir, "y")
	in := driverScript +
		"relctl_run n1 " + shell.Quote("export V='a b'\n") + ` 'echo "hi $V"; echo oops >&2' 0 2 relctl-eor:n1` + "\n" +
		"relctl_run n2 '' 'touch " + x + "' 0 2\n" + // no end token: refused
		"relctl_run n4 '' 'kill -TERM $$' 0 2 relctl-eor:n4\n" +
		"relctl_run n5 '' 'exit 143' 0 2 relctl-eor:n5\n" +
		"relctl_run n6 '' 'exit 143' 30 2 relctl-eor:n6\n" +
		"relctl_run n7 '' 'sleep 30' 0.2 2 relctl-eor:n7\n" +
		"relctl_run n8 '' 'trap \"exit 0\" TERM; sleep 30 & wait' 0.2 2 relctl-eor:n8\n" +
		"relctl_run n3 '' 'touch " + y + "' 0 2 'relctl-eor:n3" // cut inside the last word
	cmd := exec.Command("/bin/sh", "-s")
	cmd.Stdin = strings.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // the cut request is a syntax error at EOF
	out := stdout.String()
	pid := regexpFind(t, `relctl-pid:n1 (\d+) g`, out)
	want := "relctl-ack:n1\nrelctl-pid:n1 " + pid + " g\nhi a b\n\nrelctl-end:n1 0 - -\n\nrelctl-bad:n2\n"
	if !strings.HasPrefix(out, want) {
		t.Fatalf("stdout %q, want it to start with %q", out, want)
	}
	// A status above 128 names a signal only when the watchdog sent it:
	// the shell cannot tell `exit 143` from a TERM from elsewhere (n4, n5),
	// with a watchdog that did not fire either (n6); the watchdog's TERM
	// is named (n7), and flagged even when the command traps it (n8).
	for _, end := range []string{"n4 143 - -", "n5 143 - -", "n6 143 - -", "n7 143 TERM w", "n8 0 - w"} {
		if !strings.Contains(out, "\nrelctl-end:"+end+"\n") {
			t.Errorf("no end marker %q: %q", end, out)
		}
	}
	if strings.Contains(out, "n3") {
		t.Fatalf("the cut request was acknowledged: %q", out)
	}
	if !strings.HasPrefix(stderr.String(), "oops\n\nrelctl-end:n1\n") {
		t.Fatalf("stderr %q", stderr.String())
	}
	for _, f := range []string{x, y} {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("%s was created by a request that must not run", f)
		}
	}
}

func regexpFind(t *testing.T, expr, s string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%q not in %q", expr, s)
	}
	return m[1]
}

// A shell that hangs (stopped) does not acknowledge the next command: it
// is replaced after ShellStartTimeout and the command, which never ran
// on it, runs once on the new shell.
func TestShellHungIsReplaced(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{ShellStartTimeout: 500 * time.Millisecond})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := c.Run(ctx, Command{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	hung := c.shell.pid
	if err := syscall.Kill(hung, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(hung, syscall.SIGKILL) })
	counter := filepath.Join(f.dir, "count")
	if _, err := c.Run(ctx, Command{Script: "echo x >> " + shell.Quote(counter)}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, counter); got != "x\n" || c.shell.pid == hung {
		t.Fatalf("ran %q", got)
	}
	if n := p.Sessions("web1"); n != 2 {
		t.Fatalf("%d sessions", n)
	}
}

// A command waiting for the host's shell gives up when its context ends;
// the command in flight is not disturbed.
func TestShellWaitHonoursContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.client()
	goOn := filepath.Join(f.dir, "go")
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		out, err := c.Output(testCtx(t), "echo started; while [ ! -e "+shell.Quote(goOn)+" ]; do sleep 0.02; done; echo done")
		if err == nil && out != "started\ndone" {
			err = fmt.Errorf("first command: %q", out)
		}
		errc <- err
	}()
	go func() {
		eventually(10*time.Second, func() bool { return len(c.shellSlot) == 1 })
		close(started)
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Run(ctx, Command{Script: "true"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the remote shell") {
		t.Fatalf("want a deadline error while waiting, got %v", err)
	}
	writeFile(t, goOn, "")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
