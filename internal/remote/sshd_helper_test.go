package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

// realSSHD is one OpenSSH sshd started by a test, for as long as the test.
type realSSHD struct {
	addr       string
	dir        string
	identity   string // private key authorized for root
	knownHosts string
	logPath    string
}

// startRealSSHD runs /usr/sbin/sshd -D -e on listen (e.g.
// "127.0.0.21:2222") with its own host key, pid file and authorized_keys
// in a temp dir, and stops it (by its PID) when the test ends. Without
// sshd the test is skipped, unless $CI is set: then it fails.
func startRealSSHD(t testing.TB, listen string) *realSSHD {
	t.Helper()
	return startRealSSHDWith(t, listen, "")
}

// startRealSSHDWith is startRealSSHD with authorized_keys options for the
// client key (e.g. a forced command that adds a per-session cost).
func startRealSSHDWith(t testing.TB, listen, keyOptions string) *realSSHD {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required when CI is set: %v", sshdPath, err)
		}
		t.Skipf("%s not installed (apt-get install openssh-server); skipping the real-OpenSSH test", sshdPath)
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the real-OpenSSH test must run as root (sshd privilege separation)")
		}
		t.Skip("not root: skipping the real-OpenSSH test")
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &realSSHD{addr: listen, dir: dir, logPath: filepath.Join(dir, "sshd.log")}

	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(hostPriv, "relctl test host")
	if err != nil {
		t.Fatal(err)
	}
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hostKeyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)

	userPriv, userSigner := newUserKey(t)
	s.identity = writeIdentity(t, dir, "id_ed25519", userPriv, "")
	authKeys := filepath.Join(dir, "authorized_keys")
	opts := ""
	if keyOptions != "" {
		opts = keyOptions + " "
	}
	writeFile(t, authKeys, opts+string(ssh.MarshalAuthorizedKey(userSigner.PublicKey())))
	s.knownHosts = filepath.Join(dir, "known_hosts")

	// The requested address first; if something else holds it (another
	// test's sshd), a free port on the same loopback address.
	for attempt := 0; ; attempt++ {
		addr := listen
		if attempt > 0 {
			addr = freePort(t, listen)
		}
		writeFile(t, s.knownHosts, knownhosts.Line([]string{addr}, hostSigner.PublicKey())+"\n")
		s.addr = addr
		err := s.run(t, addr, hostKeyPath, authKeys)
		if err == nil {
			return s
		}
		if attempt >= 3 || !strings.Contains(err.Error(), "Address already in use") {
			t.Fatalf("sshd on %s: %v", addr, err)
		}
		t.Logf("sshd on %s: %v; trying another port", addr, err)
	}
}

// run starts sshd on addr and waits until it logs that it listens.
func (s *realSSHD) run(t testing.TB, addr, hostKeyPath, authKeys string) error {
	conf := filepath.Join(s.dir, "sshd_config")
	writeFile(t, conf, strings.Join([]string{
		"ListenAddress " + addr,
		"HostKey " + hostKeyPath,
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AuthorizedKeysFile " + authKeys,
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"Subsystem sftp internal-sftp",
		"LogLevel VERBOSE",
		"",
	}, "\n"))

	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()

	// Ready when *this* sshd says it listens (a probe connection could
	// reach someone else's server on the same address).
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.log(), "Server listening on") {
		select {
		case err := <-exited:
			return fmt.Errorf("exited at start: %v: %s", err, strings.TrimSpace(s.log()))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("not listening after 5s: %s", s.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() {
		// Only the sshd we started, by its PID.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log())
		}
	})
	return nil
}

func freePort(t testing.TB, like string) string {
	host, _, _ := net.SplitHostPort(like)
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *realSSHD) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func (s *realSSHD) host(name string) HostConfig {
	return HostConfig{
		Name:           name,
		Address:        s.addr,
		User:           "root",
		IdentityFile:   s.identity,
		KnownHosts:     []string{s.knownHosts},
		ConnectTimeout: 5 * time.Second,
	}
}
