package sshserver

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/relctl/relctl/internal/demo/proc"
)

func start(t *testing.T, mutate func(*Config)) (*Server, ssh.Signer) {
	t.Helper()
	user, err := NewEd25519Signer()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{AuthorizedKeys: []ssh.PublicKey{user.PublicKey()}, Dir: t.TempDir()}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, user
}

func dial(t *testing.T, s *Server, user ssh.Signer) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User:            "deploy",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(user)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
		Timeout:         5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *ssh.Client, cmd string, env ...string) (stdout, stderr string, err error) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if err := sess.Setenv(k, v); err != nil {
			t.Fatal(err)
		}
	}
	var o, e bytes.Buffer
	sess.Stdout, sess.Stderr = &o, &e
	err = sess.Run(cmd)
	return o.String(), e.String(), err
}

func TestExec(t *testing.T) {
	s, user := start(t, func(c *Config) { c.Env = []string{"EXTRA=yes"} })
	c := dial(t, s, user)

	out, errOut, err := run(t, c, `pwd; echo "$EXTRA $FROMREQ"; echo warn >&2; exit 7`, "FROMREQ=req")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
		t.Fatalf("exit: %v", err)
	}
	if out != s.cfg.Dir+"\nyes req\n" || errOut != "warn\n" {
		t.Fatalf("out %q err %q", out, errOut)
	}

	_, _, err = run(t, c, `kill -KILL $$`)
	if !errors.As(err, &ee) || ee.Signal() != "KILL" {
		t.Fatalf("signal: %v", err)
	}

	// Each command leads its own process group.
	out, _, err = run(t, c, `kill -0 -$$ && echo leader`)
	if err != nil || out != "leader\n" {
		t.Fatalf("%q %v", out, err)
	}

	// stdin reaches the command.
	sess, _ := c.NewSession()
	sess.Stdin = strings.NewReader("from stdin\n")
	got, err := sess.Output("cat")
	if err != nil || string(got) != "from stdin\n" {
		t.Fatalf("stdin: %q %v", got, err)
	}

	// No PTY, no shell.
	sess, _ = c.NewSession()
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Fatal("pty granted")
	}
	if err := sess.Shell(); err == nil {
		t.Fatal("shell granted")
	}
}

func TestWrongKeyRefused(t *testing.T) {
	s, _ := start(t, nil)
	other, _ := NewEd25519Signer()
	_, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User: "deploy", Auth: []ssh.AuthMethod{ssh.PublicKeys(other)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
	})
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	if _, err := Start(Config{}); err == nil {
		t.Fatal("started without authorized keys")
	}
}

func TestSFTP(t *testing.T) {
	s, user := start(t, nil)
	c := dial(t, s, user)
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.MkdirAll("a/b"); err != nil {
		t.Fatal(err)
	}
	f, err := sc.Create("a/b/f.part")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "content")
	f.Close()
	if err := sc.PosixRename("a/b/f.part", "a/b/f"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(s.cfg.Dir, "a/b/f"))
	if err != nil || string(got) != "content" {
		t.Fatalf("%q %v", got, err)
	}
}

func TestForwarding(t *testing.T) {
	s, user := start(t, nil)
	c := dial(t, s, user)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(conn, conn)
		conn.Close()
	}()
	conn, err := c.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("%q %v", buf, err)
	}
	conn.Close()

	if _, err := c.Dial("unix", filepath.Join(s.cfg.Dir, "missing.sock")); err == nil {
		t.Fatal("dial to a missing socket succeeded")
	}
}

func TestMaxSessions(t *testing.T) {
	s, user := start(t, func(c *Config) { c.MaxSessions = 2 })
	c := dial(t, s, user)
	var open []*ssh.Session
	for i := 0; i < 2; i++ {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, sess)
	}
	if _, err := c.NewSession(); err == nil {
		t.Fatal("third session opened")
	}
	open[0].Close()
	if !eventuallyOK(2*time.Second, func() bool {
		sess, err := c.NewSession()
		if err == nil {
			sess.Close()
		}
		return err == nil
	}) {
		t.Fatal("slot not freed")
	}
}

func TestIgnoreKeepalive(t *testing.T) {
	s, user := start(t, func(c *Config) { c.IgnoreKeepalive = true })
	c := dial(t, s, user)
	done := make(chan struct{})
	go func() { c.SendRequest("keepalive@openssh.com", true, nil); close(done) }()
	select {
	case <-done:
		t.Fatal("keepalive answered")
	case <-time.After(200 * time.Millisecond):
	}
	s2, user2 := start(t, nil)
	ok, _, err := dial(t, s2, user2).SendRequest("keepalive@openssh.com", true, nil)
	if err != nil || ok {
		t.Fatalf("want a failure reply like OpenSSH: %v %v", ok, err)
	}
}

func TestHandshakeDelayAndCloseDuringIt(t *testing.T) {
	s, _ := start(t, func(c *Config) { c.HandshakeDelay = time.Minute })
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := conn.Read(make([]byte, 64)); n != 0 {
		t.Fatal("server spoke during its handshake delay")
	}
	t0 := time.Now()
	s.Close()
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Close took %s", d)
	}
}

func eventuallyOK(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// A dropped connection leaves its command running (as under sshd); Close
// kills it, grandchildren included, and leaves no goroutine behind.
func TestDropThenCloseLeavesNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	fdsBefore := openFDs(t)
	user, _ := NewEd25519Signer()
	dir := t.TempDir()
	s, err := Start(Config{AuthorizedKeys: []ssh.PublicKey{user.PublicKey()}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, user)
	sess, _ := c.NewSession()
	if err := sess.Start("sleep 300 & echo $! > child.pid; echo $$ > parent.pid; wait"); err != nil {
		t.Fatal(err)
	}
	// Forwarded connection open at Close time.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, conn)
			conn.Close()
		}
	}()
	fwd, err := c.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()

	readPID := func(name string) int {
		var pid int
		eventuallyOK(3*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			return pid > 0
		})
		return pid
	}
	child, parent := readPID("child.pid"), readPID("parent.pid")
	if child == 0 || parent == 0 {
		t.Fatal("no pids")
	}
	s.DropConnections()
	time.Sleep(100 * time.Millisecond)
	if !proc.Alive(parent) || !proc.Alive(child) || s.Running() != 1 {
		t.Fatal("a dropped connection killed its command; sshd does not")
	}
	t0 := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Close took %s", d)
	}
	if !eventuallyOK(2*time.Second, func() bool { return !proc.Alive(parent) && !proc.Alive(child) }) {
		syscall.Kill(child, syscall.SIGKILL)
		syscall.Kill(parent, syscall.SIGKILL)
		t.Fatal("Close left processes running")
	}
	c.Close()
	fwd.Close()
	ln.Close()
	if !eventuallyOK(3*time.Second, func() bool { return runtime.NumGoroutine() <= before+1 }) {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
	}
	if after := openFDs(t); after > fdsBefore {
		t.Fatalf("file descriptors: %d before, %d after", fdsBefore, after)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}
