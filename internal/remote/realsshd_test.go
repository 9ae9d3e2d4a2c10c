package remote

import (
	"context"
	"errors"
	"fmt"
	"github.com/relctl/relctl/internal/demo/proc"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/shell"
)

// TestRealOpenSSH runs the transport against a real OpenSSH sshd as root,
// where Session.Signal is refused and a closed session leaves its command
// running: the timeout must still kill the remote process group.
func TestRealOpenSSH(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	sshd := startRealSSHD(t, "127.0.0.21:2222")
	t.Logf("sshd up in %s", time.Since(t0))
	p := NewPool(Options{SSHConfigPath: filepath.Join(sshd.dir, "none"), KillGrace: 500 * time.Millisecond, KeepAlive: time.Second})
	defer p.Close()
	ctx := testCtx(t)
	c, err := p.Get(ctx, sshd.host("real1"))
	if err != nil {
		t.Fatal(err)
	}

	// A command, with env and both streams.
	var out, errs []string
	_, err = c.Run(ctx, Command{
		Script: `echo "v=$RELCTL_VERSION"; echo oops >&2; exit 4`,
		Env:    map[string]string{"RELCTL_VERSION": "1.4.0"},
		Stdout: func(l string) { out = append(out, l) },
		Stderr: func(l string) { errs = append(errs, l) },
	})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 4 || ee.StderrTail != "oops" {
		t.Fatalf("exit 4: %v", err)
	}
	if strings.Join(out, "|") != "v=1.4.0" || strings.Join(errs, "|") != "oops" {
		t.Fatalf("out %q err %q", out, errs)
	}

	t.Logf("run done %s", time.Since(t0))
	// Upload over internal-sftp, then skip.
	local := filepath.Join(t.TempDir(), "artifact.tar.gz")
	sum := writeRandom(t, local, 1<<20)
	remote := filepath.Join(sshd.dir, "srv", "releases", "artifact.tar.gz")
	if skipped, err := c.Upload(ctx, local, remote, sum); err != nil || skipped {
		t.Fatalf("upload: %v %v", skipped, err)
	}
	if readFile(t, remote) != readFile(t, local) {
		t.Fatal("content differs")
	}
	if skipped, err := c.Upload(ctx, local, remote, sum); err != nil || !skipped {
		t.Fatalf("re-upload: %v %v", skipped, err)
	}

	t.Logf("upload done %s", time.Since(t0))
	// Timeout kills the whole process group on the host.
	pidfile := filepath.Join(sshd.dir, "sleep.pid")
	start := time.Now()
	_, err = c.Run(ctx, Command{
		Script:  "sleep 300 & echo $! > " + shell.Quote(pidfile) + "; wait",
		Timeout: 500 * time.Millisecond,
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("timeout took %s", d)
	}
	t.Logf("after %s: %v", time.Since(start), err)
	pid, perr := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if perr != nil {
		t.Fatal(perr)
	}
	if !eventually(3*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sleep %d survived the timeout under real sshd", pid)
	}

	// Many concurrent commands over one connection stay under MaxSessions.
	errc := make(chan error, 12)
	for i := 0; i < 12; i++ {
		go func() { _, err := c.Output(ctx, "sleep 0.2"); errc <- err }()
	}
	for i := 0; i < 12; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("concurrent done %s", time.Since(t0))

	// As a non-root login, where signals follow different rules.
	t.Run("non-root", func(t *testing.T) {
		u, err := user.Lookup("deploy")
		if err != nil {
			t.Skip("no deploy user on this machine (useradd -m deploy to run this)")
		}
		allowNonRoot(t, sshd)
		work := filepath.Join(sshd.dir, "deploy-work")
		if err := os.Mkdir(work, 0o777); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(work, 0o777) // umask
		h := sshd.host("real-deploy")
		h.User = u.Username
		c, err := p.Get(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := c.Output(ctx, "id -un"); err != nil || out != u.Username {
			t.Fatalf("id: %q %v", out, err)
		}
		pidfile := filepath.Join(work, "sleep.pid")
		_, err = c.Run(ctx, Command{
			Script:  "sleep 300 & echo $! > " + shell.Quote(pidfile) + "; wait",
			Timeout: 300 * time.Millisecond,
		})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("want ErrTimeout, got %v", err)
		}
		pid, perr := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
		if perr != nil {
			t.Fatal(perr)
		}
		if !eventually(3*time.Second, func() bool { return !proc.Alive(pid) }) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("sleep %d survived the timeout for a non-root login", pid)
		}
		local := filepath.Join(t.TempDir(), "a.tar.gz")
		sum := writeRandom(t, local, 4096)
		if _, err := c.Upload(ctx, local, filepath.Join(work, "releases", "a.tar.gz"), sum); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRealOpenSSHPersistentShell runs the persistent shell against real
// OpenSSH: commands in sequence over one session, env out of every command
// line, a timeout that kills the process group while the shell lives on,
// the shell killed mid-command, and the sessions counted.
func TestRealOpenSSHPersistentShell(t *testing.T) {
	t.Parallel()
	sshd := startRealSSHD(t, "127.0.0.22:2222")
	p := NewPool(Options{SSHConfigPath: filepath.Join(sshd.dir, "none"), KillGrace: 500 * time.Millisecond})
	defer p.Close()
	ctx := testCtx(t)
	c, err := p.Get(ctx, sshd.host("real1"))
	if err != nil {
		t.Fatal(err)
	}

	// Sequence: separate streams and statuses, no bleed between commands.
	for i := range 5 {
		var l lines
		_, err := c.Run(ctx, l.cmd(fmt.Sprintf("echo out%d; printf 'err%d' >&2; exit %d", i, i, i)))
		if i == 0 && err != nil || i > 0 && !isExit(err, i) {
			t.Fatalf("%d: %v", i, err)
		}
		if l.String() != fmt.Sprintf("out [\"out%d\"] err [\"err%d\"]", i, i) {
			t.Fatalf("%d: %s", i, l.String())
		}
	}
	if out, err := c.Output(ctx, `cat; echo "eof"`); err != nil || out != "eof" {
		t.Fatalf("stdin: %q %v", out, err)
	}
	checkEnvNotInArgv(t, c, sshd.dir)
	if !c.PersistentShell() || p.Sessions("real1") != 1 {
		t.Fatalf("persistent %v, %d sessions", c.PersistentShell(), p.Sessions("real1"))
	}

	// Timeout: the group dies, the shell lives.
	shellPID := c.shell.pid
	pidfile := filepath.Join(sshd.dir, "sleep.pid")
	_, err = c.Run(ctx, Command{Script: "sleep 300 & echo $! > " + shell.Quote(pidfile) + "; wait", Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if perr != nil {
		t.Fatal(perr)
	}
	if !eventually(5*time.Second, func() bool { return !proc.Alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sleep %d survived the timeout", pid)
	}
	if out, err := c.Output(ctx, "echo next"); err != nil || out != "next" || c.shell.pid != shellPID {
		t.Fatalf("after timeout: %q %v", out, err)
	}
	if n := p.Sessions("real1"); n != 1 {
		t.Fatalf("%d sessions after the timeout: want the shell only (the host's watchdog killed it)", n)
	}

	// The shell killed mid-command: outcome unknown, the next reopens.
	_, err = c.Run(ctx, Command{Script: "echo before; kill -KILL $PPID; sleep 0.1; echo after"})
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("want ErrConnectionLost, got %v", err)
	}
	if out, err := c.Output(ctx, "echo again"); err != nil || out != "again" {
		t.Fatalf("after the shell died: %q %v", out, err)
	}
	if n := p.Sessions("real1"); n != 2 {
		t.Fatalf("%d sessions: want 2 shells", n)
	}
}

// BenchmarkRealSSHDCommands compares 20 commands over the persistent shell
// with 20 commands in a session each, on real OpenSSH, for three logins:
// the deploy user (login shell dash, nothing to read), the same with a
// forced command on the key that sleeps 0.2 s per session (issue 14's
// stand-in for rc files and PAM), and root, whose login shell is bash and
// whose ~/.bashrc on this machine runs pyenv init. One op = 20 commands.
//
//	go test ./internal/remote -run '^$' -bench RealSSHDCommands -benchtime 3x -count 3
func BenchmarkRealSSHDCommands(b *testing.B) {
	const n = 20
	u, err := user.Lookup("deploy")
	if err != nil {
		b.Skip("no deploy user on this machine (useradd -m deploy to run this)")
	}
	for _, login := range []struct{ name, user, keyOpts string }{
		{"login=deploy", u.Username, ""},
		{"login=deploy+0.2s", u.Username, `command="sleep 0.2; eval \"$SSH_ORIGINAL_COMMAND\""`},
		{"login=root-bashrc", "root", ""},
	} {
		sshd := startRealSSHDWith(b, "127.0.0.23:2222", login.keyOpts)
		allowNonRoot(b, sshd)
		for _, mode := range []struct {
			name  string
			plain bool
		}{{"shell", false}, {"session-per-command", true}} {
			b.Run(login.name+"/"+mode.name, func(b *testing.B) {
				p := NewPool(Options{SSHConfigPath: filepath.Join(sshd.dir, "none"), OneSessionPerCommand: mode.plain})
				defer p.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
				defer cancel()
				h := sshd.host("bench")
				h.User = login.user
				c, err := p.Get(ctx, h)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Run(ctx, Command{Script: "true"}); err != nil { // the shell opens once per run
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					for i := range n {
						if out, err := c.Output(ctx, "echo "+strconv.Itoa(i)); err != nil || out != strconv.Itoa(i) {
							b.Fatalf("%q %v", out, err)
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(p.Sessions("bench"))/float64(b.N*n+1), "sessions/cmd")
			})
		}
	}
}

// allowNonRoot lets a non-root login reach the test sshd's files (sshd
// reads authorized_keys as the user).
func allowNonRoot(t testing.TB, sshd *realSSHD) {
	t.Helper()
	for _, d := range []string{filepath.Dir(sshd.dir), sshd.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(sshd.dir, "authorized_keys"), 0o644); err != nil {
		t.Fatal(err)
	}
}
