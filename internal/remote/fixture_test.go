package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/sshserver"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// fixture is one in-process SSH host plus everything a client needs for it.
type fixture struct {
	t          *testing.T
	dir        string // the host's root and the test's scratch space
	srv        *sshserver.Server
	userKey    ssh.Signer
	identity   string // unencrypted private key file
	knownHosts string // known_hosts holding srv's key
	logs       *logBuffer
	plain      bool // pools run one session per command (no persistent shell)
}

// newModeFixture is newFixture whose pools use the persistent shell, or
// one session per command when plain.
func newModeFixture(t *testing.T, mutate func(*sshserver.Config), plain bool) *fixture {
	f := newFixture(t, mutate)
	f.plain = plain
	return f
}

// bothModes runs test over the persistent shell and over one session per
// command: both paths keep the same guarantees.
func bothModes(t *testing.T, test func(t *testing.T, plain bool)) {
	t.Run("shell", func(t *testing.T) { test(t, false) })
	t.Run("plain", func(t *testing.T) { test(t, true) })
}

type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (l *logBuffer) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *logBuffer) contains(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func newFixture(t *testing.T, mutate func(*sshserver.Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	priv, userKey := newUserKey(t)
	f := &fixture{t: t, dir: dir, userKey: userKey, logs: &logBuffer{}}
	f.identity = writeIdentity(t, dir, "id_ed25519", priv, "")
	cfg := sshserver.Config{
		AuthorizedKeys: []ssh.PublicKey{userKey.PublicKey()},
		Dir:            dir,
		MaxSessions:    10, // like OpenSSH
		Logf:           f.logs.logf,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := sshserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f.srv = srv
	f.knownHosts = filepath.Join(dir, "known_hosts")
	writeFile(t, f.knownHosts, knownhosts.Line([]string{srv.Addr()}, srv.HostKey())+"\n")
	return f
}

// host is the HostConfig for the fixture's server.
func (f *fixture) host(name string) HostConfig {
	return HostConfig{
		Name:           name,
		Address:        f.srv.Addr(),
		User:           "deploy",
		IdentityFile:   f.identity,
		KnownHosts:     []string{f.knownHosts},
		ConnectTimeout: 5 * time.Second,
	}
}

func (f *fixture) pool(opts Options) *Pool {
	if opts.SSHConfigPath == "" {
		opts.SSHConfigPath = filepath.Join(f.dir, "no-ssh-config")
	}
	if f.plain {
		opts.OneSessionPerCommand = true
	}
	p := NewPool(opts)
	f.t.Cleanup(func() { p.Close() })
	return p
}

// client dials the fixture's server with default options.
func (f *fixture) client() *Client {
	f.t.Helper()
	c, err := f.pool(Options{}).Get(testCtx(f.t), f.host("web1"))
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newUserKey(t testing.TB) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, s
}

func writeIdentity(t testing.TB, dir, name string, priv ed25519.PrivateKey, passphrase string) string {
	t.Helper()
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path+".pub", string(ssh.MarshalAuthorizedKey(key.PublicKey())))
	return path
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually polls cond for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
