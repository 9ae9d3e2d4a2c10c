// Package sshserver owns an in-process SSH server built on
// golang.org/x/crypto/ssh: the "hosts" of fast tests, of fault injection and
// of the built-in demo fleet. It runs exec requests with sh -c in its own
// process group, serves SFTP, forwards direct-tcpip and
// direct-streamlocal@openssh.com channels and answers keepalives, behaving
// like OpenSSH where that matters to a client (a closed session does not
// stop its command; a dropped connection leaves commands running; global
// requests are answered with failure).
//
// It never authenticates by password, never allocates a PTY, never opens a
// shell, and never leaves anything behind: Close kills every process group
// it started and waits for every goroutine and connection it owns.
package sshserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// Config describes one server. AuthorizedKeys is required.
type Config struct {
	Addr           string          // listen address; default "127.0.0.1:0"
	HostKey        ssh.Signer      // nil: a fresh ed25519 key
	ExtraHostKeys  []ssh.Signer    // more host keys offered (e.g. ECDSA and RSA beside ed25519)
	AuthorizedKeys []ssh.PublicKey // public-key auth only; any user name is accepted
	Dir            string          // working directory of commands and of relative SFTP paths; default: the process's
	Env            []string        // extra environment for commands ("K=V")
	Shell          string          // default /bin/sh
	MaxSessions    int             // session channels open at once per connection; 0: unlimited (OpenSSH: 10)

	// Fault injection.
	HandshakeDelay  time.Duration // sleep after accept, before the handshake (a hung handshake)
	IgnoreKeepalive bool          // never answer global requests (a dead peer, for keepalive tests)
	// KeepaliveDelay, when set, is how long to wait before answering the
	// n-th global request of a connection (n from 0): a slow, loaded host.
	KeepaliveDelay func(n int) time.Duration

	// Logf, when set, receives one line per notable event (auth failure,
	// command start/exit). Never receives secrets.
	Logf func(format string, args ...any)
}

// Server is a running server. All methods are safe for concurrent use.
type Server struct {
	cfg     Config
	sshCfg  *ssh.ServerConfig
	hostKey ssh.Signer
	ln      net.Listener
	env     []string

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts

	globalReqs atomic.Int64 // global requests answered, every connection

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	procs  map[int]func() // pid → abort (kill the group, unblock output readers)

	closeOnce sync.Once
	closeErr  error
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Server, error) {
	if len(cfg.AuthorizedKeys) == 0 {
		return nil, errors.New("sshserver: no authorized keys")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Shell == "" {
		cfg.Shell = "/bin/sh"
	}
	if cfg.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("sshserver: %w", err)
		}
		cfg.Dir = wd
	}
	hostKey := cfg.HostKey
	if hostKey == nil {
		var err error
		if hostKey, err = NewEd25519Signer(); err != nil {
			return nil, fmt.Errorf("sshserver: host key: %w", err)
		}
	}
	authorized := make([][]byte, len(cfg.AuthorizedKeys))
	for i, k := range cfg.AuthorizedKeys {
		authorized[i] = k.Marshal()
	}
	s := &Server{
		cfg:     cfg,
		hostKey: hostKey,
		conns:   make(map[net.Conn]struct{}),
		procs:   make(map[int]func()),
	}
	s.sshCfg = &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-relctl_sshserver",
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			m := key.Marshal()
			for _, a := range authorized {
				if bytes.Equal(a, m) {
					return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": ssh.FingerprintSHA256(key)}}, nil
				}
			}
			s.logf("auth refused for %s from %s: key %s", meta.User(), meta.RemoteAddr(), ssh.FingerprintSHA256(key))
			return nil, fmt.Errorf("unknown public key for %s", meta.User())
		},
	}
	s.sshCfg.AddHostKey(hostKey)
	for _, k := range cfg.ExtraHostKeys {
		s.sshCfg.AddHostKey(k)
	}
	s.env = baseEnv(cfg)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sshserver: %w", err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr is the "host:port" the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey is the server's primary host public key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// HostKeys are all host public keys the server offers.
func (s *Server) HostKeys() []ssh.PublicKey {
	keys := []ssh.PublicKey{s.hostKey.PublicKey()}
	for _, k := range s.cfg.ExtraHostKeys {
		keys = append(keys, k.PublicKey())
	}
	return keys
}

// DropConnections abruptly closes every client connection (TCP close, no
// SSH disconnect message), as a network failure mid-step would. Like
// OpenSSH, commands started on those connections keep running until they
// exit or write to their closed output; Close kills them.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// GlobalRequests reports how many global requests (keepalives) the server
// has answered, over every connection.
func (s *Server) GlobalRequests() int { return int(s.globalReqs.Load()) }

// Running reports how many commands the server has started that have not
// exited yet.
func (s *Server) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.procs)
}

// Close stops listening, closes every connection, kills every process
// group the server started, and waits until all of it has ended.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.cancel()
		s.closeErr = s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
		for _, abort := range s.procs {
			abort()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s.closeErr
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// goAndTrack starts f in a goroutine counted by Close, unless the server is
// closing.
func (s *Server) goAndTrack(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
				case <-s.ctx.Done():
					return
				}
				continue
			}
			s.logf("accept: %v", err)
			return
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(c)
		}()
	}
}

func (s *Server) serveConn(c net.Conn) {
	if d := s.cfg.HandshakeDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-s.ctx.Done():
			return
		}
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	sconn, chans, reqs, err := ssh.NewServerConn(c, s.sshCfg)
	if err != nil {
		s.logf("handshake with %s: %v", c.RemoteAddr(), err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sconn.Close()

	// connCtx ends when this connection does: forwarded sockets close with it.
	connCtx, cancel := context.WithCancel(s.ctx)
	defer cancel()

	s.goAndTrack(func() {
		n := 0
		for req := range reqs {
			if s.cfg.IgnoreKeepalive {
				continue // a black hole: the client's SendRequest never returns
			}
			if s.cfg.KeepaliveDelay != nil {
				select {
				case <-time.After(s.cfg.KeepaliveDelay(n)):
				case <-connCtx.Done():
					return
				}
			}
			n++
			s.globalReqs.Add(1)
			if req.WantReply {
				// OpenSSH answers keepalive@openssh.com (and anything it
				// does not know) with failure; any answer proves liveness.
				_ = req.Reply(false, nil)
			}
		}
	})

	var sessions atomic.Int32
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			if max := s.cfg.MaxSessions; max > 0 && int(sessions.Load()) >= max {
				_ = nc.Reject(ssh.Prohibited, "open failed")
				continue
			}
			sessions.Add(1)
			// The slot is freed when the server ends the session, before
			// it sends channel close: OpenSSH processes the client's close
			// before its next open, so a client that waited for the end
			// of a session may open the next one at once.
			release := sync.OnceFunc(func() { sessions.Add(-1) })
			if !s.goAndTrack(func() { defer release(); s.session(nc, release) }) {
				_ = nc.Reject(ssh.ResourceShortage, "server closing")
			}
		case "direct-tcpip":
			s.goAndTrack(func() { s.directTCPIP(connCtx, nc) })
		case "direct-streamlocal@openssh.com":
			s.goAndTrack(func() { s.directStreamLocal(connCtx, nc) })
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
}

type exitStatusMsg struct{ Status uint32 }

type exitSignalMsg struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}

func (s *Server) session(nc ssh.NewChannel, release func()) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	var env []string
	started := false
	for req := range reqs {
		ok := false
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil && !started {
				env = append(env, kv.Name+"="+kv.Value)
				ok = true
			}
		case "exec":
			var m struct{ Command string }
			if ssh.Unmarshal(req.Payload, &m) == nil && !started {
				started, ok = true, true
				cmd := m.Command
				envCopy := append([]string(nil), env...)
				// Reply before starting so the client sees success first.
				_ = req.Reply(true, nil)
				if !s.goAndTrack(func() { s.exec(ch, cmd, envCopy, release) }) {
					ch.Close()
				}
				continue
			}
		case "subsystem":
			var m struct{ Name string }
			if ssh.Unmarshal(req.Payload, &m) == nil && m.Name == "sftp" && !started {
				started, ok = true, true
				_ = req.Reply(true, nil)
				if !s.goAndTrack(func() { s.sftp(ch, release) }) {
					ch.Close()
				}
				continue
			}
		}
		// pty-req, shell, signal, x11, agent forwarding...: refused.
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	if !started {
		ch.Close()
	}
}

func (s *Server) exec(ch ssh.Channel, command string, reqEnv []string, release func()) {
	defer ch.Close()
	defer release()
	fail := func(format string, args ...any) {
		fmt.Fprintf(ch.Stderr(), "sshserver: "+format+"\n", args...)
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{Status: 127}))
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		fail("%v", err)
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		fail("%v", err)
		return
	}
	cmd := exec.Command(s.cfg.Shell, "-c", command)
	cmd.Dir = s.cfg.Dir
	cmd.Env = append(append(append([]string(nil), s.env...), s.cfg.Env...), reqEnv...)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // like sshd: own session and process group
	stdin, err := cmd.StdinPipe()
	if err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		fail("%v", err)
		return
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		stdin.Close()
		fail("server closing")
		return
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		s.mu.Unlock()
		outR.Close()
		errR.Close()
		fail("%v", err)
		return
	}
	pid := cmd.Process.Pid
	s.procs[pid] = func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		// A descendant that left the group may still hold the pipes.
		outR.Close()
		errR.Close()
	}
	s.mu.Unlock()
	s.logf("exec pid %d: %s", pid, command)

	// stdin: from the channel until EOF. Ends when the channel closes.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_, _ = io.Copy(stdin, ch)
		stdin.Close()
	}()
	var out sync.WaitGroup
	out.Add(2)
	go func() { defer out.Done(); pump(ch, outR) }()
	go func() { defer out.Done(); pump(ch.Stderr(), errR) }()
	out.Wait() // EOF: the command and everything it started closed stdout/stderr
	werr := cmd.Wait()

	s.mu.Lock()
	delete(s.procs, pid)
	s.mu.Unlock()

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		name := strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG")
		if name == "" {
			name = strconv.Itoa(int(ws.Signal()))
		}
		s.logf("exec pid %d: killed by %s", pid, name)
		_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(exitSignalMsg{Signal: name, CoreDumped: ws.CoreDump()}))
	default:
		code := cmd.ProcessState.ExitCode()
		if code < 0 {
			code = 255
			s.logf("exec pid %d: wait: %v", pid, werr)
		}
		s.logf("exec pid %d: exit %d", pid, code)
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{Status: uint32(code)}))
	}
	_ = ch.CloseWrite()
}

// pump copies a command's output to the channel. When the channel can no
// longer be written (client gone), it closes the pipe so the command gets
// EPIPE/SIGPIPE on its next write, as it would under sshd.
func pump(w io.Writer, r *os.File) {
	defer r.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) sftp(ch ssh.Channel, release func()) {
	defer ch.Close()
	defer release()
	srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(s.cfg.Dir))
	if err != nil {
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{Status: 1}))
		return
	}
	err = srv.Serve()
	srv.Close()
	status := uint32(0)
	if err != nil && !errors.Is(err, io.EOF) {
		status = 1
	}
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{Status: status}))
}

func (s *Server) directTCPIP(ctx context.Context, nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip payload")
		return
	}
	s.forward(ctx, nc, "tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
}

func (s *Server) directStreamLocal(ctx context.Context, nc ssh.NewChannel) {
	var p struct {
		SocketPath string
		Reserved0  string
		Reserved1  uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad direct-streamlocal payload")
		return
	}
	s.forward(ctx, nc, "unix", p.SocketPath)
}

func (s *Server) forward(ctx context.Context, nc ssh.NewChannel, network, addr string) {
	s.logf("forward %s %s", network, addr)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var d net.Dialer
	conn, err := d.DialContext(dctx, network, addr)
	cancel()
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	stop := context.AfterFunc(ctx, func() { conn.Close(); ch.Close() })
	defer stop()
	defer conn.Close()
	defer ch.Close()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); ssh.DiscardRequests(reqs) }()

	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(conn, ch)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			conn.Close()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(ch, conn)
		_ = ch.CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}

func baseEnv(cfg Config) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{"PATH=" + path, "HOME=" + cfg.Dir, "SHELL=" + cfg.Shell}
	if u, err := user.Current(); err == nil {
		env = append(env, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	return env
}
