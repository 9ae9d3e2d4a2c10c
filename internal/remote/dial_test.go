package remote

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/sshserver"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

func TestHostKeyMismatchIsAHardStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	other, err := sshserver.NewEd25519Signer()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.knownHosts, "# comment\n"+knownhosts.Line([]string{f.srv.Addr()}, other.PublicKey())+"\n")
	_, err = f.pool(Options{AcceptNewHostKeys: true}).Get(testCtx(t), f.host("web2"))
	var hke *HostKeyError
	if !errors.Is(err, ErrHostKeyMismatch) || !errors.As(err, &hke) {
		t.Fatalf("want HostKeyError(ErrHostKeyMismatch), got %v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "web2: ") || !strings.Contains(msg, f.knownHosts+":2") {
		t.Fatalf("message must name the host and the known_hosts line: %s", msg)
	}
	host, port, _ := net.SplitHostPort(f.srv.Addr())
	if fix := "ssh-keygen -R '[" + host + "]:" + port + "' -f " + f.knownHosts; !strings.Contains(msg, fix) {
		t.Fatalf("message must give the command that clears the old entry (%s): %s", fix, msg)
	}
	if hke.Host != "web2" || hke.Address != f.srv.Addr() || !keysEqual(hke.Key, f.srv.HostKey()) {
		t.Fatalf("%+v", hke)
	}
	// AcceptNewHostKeys never overrides a mismatch, and never writes.
	if got := readFile(t, f.knownHosts); strings.Count(got, "\n") != 2 {
		t.Fatalf("known_hosts changed:\n%s", got)
	}
}

func TestHostKeyUnknownRefusedWithLine(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	writeFile(t, f.knownHosts, "")
	h := f.host("web3")
	_, err := f.pool(Options{}).Get(testCtx(t), h)
	var hke *HostKeyError
	if !errors.Is(err, ErrHostKeyUnknown) || !errors.As(err, &hke) {
		t.Fatalf("want ErrHostKeyUnknown, got %v", err)
	}
	if !strings.HasPrefix(err.Error(), "web3: ") || !strings.Contains(err.Error(), hke.KnownLine) {
		t.Fatalf("message: %v", err)
	}
	// The line is exactly what makes the host known.
	writeFile(t, f.knownHosts, hke.KnownLine+"\n")
	if _, err := f.pool(Options{}).Get(testCtx(t), h); err != nil {
		t.Fatalf("with the suggested line: %v", err)
	}
}

func TestHostKeyUnknownAcceptedAndWritten(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	kh := filepath.Join(f.dir, "new", "known_hosts") // does not exist yet
	h := f.host("web4")
	h.KnownHosts = []string{kh, filepath.Join(f.dir, "other_known_hosts")}
	var warnings []string
	c, err := f.pool(Options{AcceptNewHostKeys: true, Warnf: func(format string, args ...any) {
		warnings = append(warnings, format)
	}}).Get(testCtx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Output(testCtx(t), "echo hi"); err != nil || out != "hi" {
		t.Fatalf("%q %v", out, err)
	}
	content := readFile(t, kh)
	if !strings.Contains(content, knownhosts.Line([]string{f.srv.Addr()}, f.srv.HostKey())) {
		t.Fatalf("known_hosts:\n%s", content)
	}
	if len(warnings) != 1 {
		t.Fatalf("warnings: %q", warnings)
	}
	// Now known: a strict pool connects.
	if _, err := f.pool(Options{}).Get(testCtx(t), h); err != nil {
		t.Fatal(err)
	}
}

func TestHashedKnownHosts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	hashed := xknownhosts.HashHostname(knownhosts.Normalize(f.srv.Addr()))
	line := hashed + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(f.srv.HostKey())))
	writeFile(t, f.knownHosts, line+"\n")
	if !strings.HasPrefix(line, "|1|") {
		t.Fatalf("not hashed: %s", line)
	}
	if _, err := f.pool(Options{}).Get(testCtx(t), f.host("web1")); err != nil {
		t.Fatal(err)
	}
}

func TestKnownHostsWithOnlyEd25519WhileServerOffersOthers(t *testing.T) {
	t.Parallel()
	ecdsaKey, err := sshserver.NewECDSASigner()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := sshserver.NewRSASigner()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *sshserver.Config) { c.ExtraHostKeys = []ssh.Signer{ecdsaKey, rsaKey} })
	// A client with no preference is shown a key other than ed25519: plain
	// x/crypto/ssh/knownhosts would call that a mismatch.
	var offered string
	cfg := &ssh.ClientConfig{
		User: "x",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(f.userKey)},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			offered = k.Type()
			return nil
		},
	}
	if c, err := ssh.Dial("tcp", f.srv.Addr(), cfg); err == nil {
		c.Close()
	}
	if offered == "" || offered == ssh.KeyAlgoED25519 {
		t.Fatalf("server offered %q by default; the test needs it to prefer another type", offered)
	}
	// known_hosts (from the fixture) lists only the ed25519 key.
	c, err := f.pool(Options{}).Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Output(testCtx(t), "echo ok"); out != "ok" {
		t.Fatal(out)
	}
}

func TestCertAuthorityKnownHosts(t *testing.T) {
	t.Parallel()
	ca, err := sshserver.NewEd25519Signer()
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := sshserver.NewEd25519Signer()
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{
		Key:             hostKey.PublicKey(),
		CertType:        ssh.HostCert,
		KeyId:           "web1",
		ValidPrincipals: []string{"127.0.0.1"},
		ValidBefore:     ssh.CertTimeInfinity,
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(cert, hostKey)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *sshserver.Config) { c.HostKey = certSigner })
	var b strings.Builder
	if err := knownhosts.WriteKnownHostCA(&b, "127.0.0.1", ca.PublicKey()); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(f.srv.Addr())
	var b2 strings.Builder
	_ = knownhosts.WriteKnownHostCA(&b2, "[127.0.0.1]:"+port, ca.PublicKey())
	writeFile(t, f.knownHosts, b.String()+b2.String())
	if _, err := f.pool(Options{}).Get(testCtx(t), f.host("web1")); err != nil {
		t.Fatal(err)
	}
}

func TestHungHandshakeHonoursConnectTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *sshserver.Config) { c.HandshakeDelay = 30 * time.Second })
	h := f.host("web5")
	h.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := f.pool(Options{}).Get(testCtx(t), h)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "web5: handshake") {
		t.Fatalf("want a handshake timeout, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
	// The caller's context wins when it is shorter, and says so.
	h.ConnectTimeout = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := f.pool(Options{}).Get(ctx, h); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("ctx: %v after %s", err, time.Since(start))
	}
}

func TestConnectRefusedNamesHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := f.host("web6")
	h.Address = addr
	_, err = f.pool(Options{}).Get(testCtx(t), h)
	if err == nil || !strings.HasPrefix(err.Error(), "web6: dial "+addr) {
		t.Fatalf("got %v", err)
	}
}

func TestWrongUserKeyRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	priv, _ := newUserKey(t)
	h := f.host("web7")
	h.IdentityFile = writeIdentity(t, f.dir, "other", priv, "") // unencrypted: the agent is not asked
	if _, err := f.pool(Options{}).Get(testCtx(t), h); err == nil || !strings.HasPrefix(err.Error(), "web7: handshake") {
		t.Fatalf("got %v", err)
	}
}

func TestAgentUsedForPassphraseProtectedIdentity(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	// The authorized key, passphrase-protected on disk.
	priv, signer := newUserKey(t)
	f.srv.Close()
	srv, err := sshserver.Start(sshserver.Config{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}, Dir: f.dir, HostKey: nil})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f.srv = srv
	writeFile(t, f.knownHosts, knownhosts.Line([]string{srv.Addr()}, srv.HostKey())+"\n")
	h := f.host("web8")
	h.IdentityFile = writeIdentity(t, f.dir, "id_protected", priv, "secret")

	// Without an agent: a clear error, no secret in it.
	_, err = f.pool(Options{AgentSocket: filepath.Join(f.dir, "no-agent.sock")}).Get(testCtx(t), h)
	if err == nil || !strings.Contains(err.Error(), "passphrase-protected") || !strings.HasPrefix(err.Error(), "web8: auth") {
		t.Fatalf("got %v", err)
	}

	// An agent holding several keys; only the identity's is offered (the
	// server would refuse after too many wrong ones; here we check that
	// the filter keeps the right one).
	keyring := agent.NewKeyring()
	for i := 0; i < 3; i++ {
		other, _ := newUserKey(t)
		if err := keyring.Add(agent.AddedKey{PrivateKey: other}); err != nil {
			t.Fatal(err)
		}
	}
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortTempDir(t), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	c, err := f.pool(Options{AgentSocket: sock}).Get(testCtx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Output(testCtx(t), "echo ok"); out != "ok" {
		t.Fatal(out)
	}

	// The identity file is absent but its .pub names a key the agent
	// lacks: refused with a reason.
	_, other := newUserKey(t)
	h.IdentityFile = filepath.Join(f.dir, "id_absent")
	writeFile(t, h.IdentityFile+".pub", string(ssh.MarshalAuthorizedKey(other.PublicKey())))
	_, err = f.pool(Options{AgentSocket: sock}).Get(testCtx(t), h)
	if err == nil || !strings.Contains(err.Error(), "none of them") {
		t.Fatalf("got %v", err)
	}
}

func TestSSHConfigFallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	host, port, _ := net.SplitHostPort(f.srv.Addr())
	cfgPath := filepath.Join(f.dir, "ssh_config")
	writeFile(t, cfgPath, "Host web-alias\n  HostName "+host+"\n  Port "+port+"\n  User cfguser\n  IdentityFile "+f.identity+"\n\nHost *\n  User ignored-later\n")
	var warned []string
	p := NewPool(Options{SSHConfigPath: cfgPath, Warnf: func(format string, args ...any) { warned = append(warned, format) }})
	t.Cleanup(func() { p.Close() })
	c, err := p.Get(testCtx(t), HostConfig{Name: "web9", Address: "web-alias", UseSSHConfig: true, KnownHosts: []string{f.knownHosts}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != f.srv.Addr() {
		t.Fatalf("addr %s", c.Addr())
	}
	if len(warned) != 0 {
		t.Fatalf("warnings: %q", warned)
	}
	// The inventory wins: an explicit port that is wrong is used (and fails).
	_, err = p.Get(testCtx(t), HostConfig{Name: "web9b", Address: "web-alias:1", UseSSHConfig: true, KnownHosts: []string{f.knownHosts}, IdentityFile: f.identity})
	if err == nil {
		t.Fatal("inventory port ignored")
	}
}

func TestSSHConfigUnparsableWarnsOnceAndContinues(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	cfgPath := filepath.Join(f.dir, "ssh_config")
	writeFile(t, cfgPath, "Match exec \"true\"\n  User x\n")
	var mu sync.Mutex
	var warned []string
	p := NewPool(Options{SSHConfigPath: cfgPath, Warnf: func(format string, args ...any) {
		mu.Lock()
		warned = append(warned, format)
		mu.Unlock()
	}})
	t.Cleanup(func() { p.Close() })
	for _, name := range []string{"a", "b", "c"} {
		h := f.host(name)
		h.UseSSHConfig = true
		if _, err := p.Get(testCtx(t), h); err != nil {
			t.Fatal(err)
		}
	}
	if len(warned) != 1 {
		t.Fatalf("want one warning, got %q", warned)
	}
}

func TestJumpHost(t *testing.T) {
	t.Parallel()
	target := newFixture(t, nil)
	jump := newFixture(t, func(c *sshserver.Config) {
		c.AuthorizedKeys = []ssh.PublicKey{target.userKey.PublicKey()}
	})
	// One known_hosts for both.
	writeFile(t, target.knownHosts,
		knownhosts.Line([]string{target.srv.Addr()}, target.srv.HostKey())+"\n"+
			knownhosts.Line([]string{jump.srv.Addr()}, jump.srv.HostKey())+"\n")
	h := target.host("web10")
	h.Jump = "deploy@" + jump.srv.Addr()
	p := target.pool(Options{})
	c, err := p.Get(testCtx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Output(testCtx(t), "echo via jump"); err != nil || out != "via jump" {
		t.Fatalf("%q %v", out, err)
	}
	if !jump.logs.contains("forward tcp " + target.srv.Addr()) {
		t.Fatalf("the jump host forwarded nothing: %q", jump.logs.lines)
	}
	// The jump host's key is verified too.
	writeFile(t, target.knownHosts, knownhosts.Line([]string{target.srv.Addr()}, target.srv.HostKey())+"\n")
	_, err = target.pool(Options{}).Get(testCtx(t), h)
	var hke *HostKeyError
	if !errors.As(err, &hke) || !errors.Is(err, ErrHostKeyUnknown) || !strings.HasPrefix(err.Error(), "web10: jump ") {
		t.Fatalf("unknown jump key: %v", err)
	}
}

func TestPoolClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if c.Alive() {
		t.Fatal("client alive after Pool.Close")
	}
	if _, err := p.Get(testCtx(t), f.host("web1")); err == nil {
		t.Fatal("Get after Close succeeded")
	}
}

func TestConcurrentGetsShareOneConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{})
	var wg sync.WaitGroup
	clients := make([]*Client, 10)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Get(testCtx(t), f.host("web1"))
			if err != nil {
				t.Error(err)
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if c != clients[0] {
			t.Fatal("several connections for one host")
		}
	}
}

func keysEqual(a, b ssh.PublicKey) bool {
	return a != nil && b != nil && string(a.Marshal()) == string(b.Marshal())
}

// shortTempDir is a temp dir with a path short enough for a unix socket.
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/tmp", "rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// A missing known_hosts file is reported as missing, not as an unknown key
// with a line to add to a file that is not there; --accept-new-host-keys
// creates it.
func TestKnownHostsMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	h := f.host("web4")
	missing := filepath.Join(f.dir, "nope", "known_hosts")
	h.KnownHosts = []string{missing}
	_, err := f.pool(Options{}).Get(testCtx(t), h)
	if !errors.Is(err, ErrKnownHostsMissing) || errors.Is(err, ErrHostKeyUnknown) ||
		!strings.HasPrefix(err.Error(), "web4: ") || !strings.Contains(err.Error(), missing+" does not exist") {
		t.Fatalf("got %v", err)
	}
	if _, err := f.pool(Options{AcceptNewHostKeys: true}).Get(testCtx(t), h); err != nil {
		t.Fatalf("with --accept-new-host-keys: %v", err)
	}
	if got := readFile(t, missing); !strings.Contains(got, f.srv.HostKey().Type()) {
		t.Fatalf("known_hosts not written: %q", got)
	}
}

// A jump host named by an ssh_config alias gets its own HostName, Port,
// User and IdentityFile from ssh_config, not the target's: here the jump
// server accepts only its own key.
func TestJumpHostFromSSHConfig(t *testing.T) {
	t.Parallel()
	target := newFixture(t, nil)
	jump := newFixture(t, nil) // authorizes only jump.identity
	writeFile(t, target.knownHosts,
		knownhosts.Line([]string{target.srv.Addr()}, target.srv.HostKey())+"\n"+
			knownhosts.Line([]string{jump.srv.Addr()}, jump.srv.HostKey())+"\n")
	jhost, jport, _ := net.SplitHostPort(jump.srv.Addr())
	cfgPath := filepath.Join(target.dir, "ssh_config")
	writeFile(t, cfgPath, "Host bastion\n  HostName "+jhost+"\n  Port "+jport+"\n  User bastionuser\n  IdentityFile "+jump.identity+"\n")
	h := target.host("web11")
	h.Jump, h.UseSSHConfig = "bastion", true
	p := target.pool(Options{SSHConfigPath: cfgPath})
	c, err := p.Get(testCtx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Output(testCtx(t), "echo via bastion"); err != nil || out != "via bastion" {
		t.Fatalf("%q %v", out, err)
	}
	tt, err := p.resolve(h, false)
	if err != nil {
		t.Fatal(err)
	}
	jh, err := jumpConfig(h, tt)
	if err != nil {
		t.Fatal(err)
	}
	jt, err := p.resolve(jh, true)
	if err != nil {
		t.Fatal(err)
	}
	if jt.user != "bastionuser" || jt.addr != jump.srv.Addr() || jt.identity != jump.identity {
		t.Fatalf("jump resolved to user %q addr %q identity %q", jt.user, jt.addr, jt.identity)
	}
	// Without ssh_config entries the jump host falls back to the target's
	// user and identity, and port 22.
	jh2, _ := jumpConfig(h, target2(tt, "elsewhere"))
	jt2, err := p.resolve(jh2, true)
	if err != nil {
		t.Fatal(err)
	}
	if jt2.user != "deploy" || jt2.identity != target.identity || jt2.addr != "elsewhere:22" {
		t.Fatalf("fallback: user %q identity %q addr %q", jt2.user, jt2.identity, jt2.addr)
	}
}

func target2(t target, jump string) target { t.jump = jump; return t }
