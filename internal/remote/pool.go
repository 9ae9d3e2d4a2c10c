// Package remote owns relctl's SSH transport: dialing hosts with real
// timeouts (optionally through a jump host), verifying host keys against
// known_hosts, authenticating with an identity file or ssh-agent, reading
// ~/.ssh/config as a fallback, keeping one connection per host alive
// (OpenSSH keepalive semantics) and reusing it, running every command of a
// host through one persistent shell session (one session per command as
// the fallback) with streamed, sanitized and capped output, timeouts that
// really kill the remote process group, SFTP uploads checked by sha256,
// counting the sessions it opens, and TCP or unix-socket connections
// through the SSH connection.
//
// It never decides what to run (that is the caller's plan), never skips
// host key verification, never forwards the agent, and never logs a secret.
package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kevinburke/ssh_config"
)

// HostConfig is one host's connection settings (already merged from the
// inventory by the caller).
type HostConfig struct {
	Name           string        // inventory host name, used in every error: "web2: ..."
	Address        string        // "host" or "host:port"
	Port           int           // used when Address has no port (default 22)
	User           string        // default: ssh_config User, then the local user
	IdentityFile   string        // "~" expanded; empty: ssh_config, then ~/.ssh/id_{ed25519,ecdsa,rsa}, then the agent
	KnownHosts     []string      // known_hosts files ("~" expanded); default ~/.ssh/known_hosts
	Jump           string        // optional "[user@]host[:port]" jump host (same identity/known_hosts)
	UseSSHConfig   bool          // ~/.ssh/config as fallback for HostName, User, Port, IdentityFile, ProxyJump
	ConnectTimeout time.Duration // TCP connect + handshake, default 10s

	// ServerAliveInterval and ServerAliveCountMax have OpenSSH's meaning:
	// a keepalive every interval, and the host is dead after CountMax of
	// them in a row go unanswered. Zero: ssh_config's value when
	// UseSSHConfig, else Options.KeepAlive and Options.KeepAliveCountMax.
	ServerAliveInterval time.Duration
	ServerAliveCountMax int

	// A jump host's user and identity when neither its spec nor ssh_config
	// gives one: the target's (see jumpConfig).
	fallbackUser, fallbackIdentity string
}

// Options are the pool-wide settings.
type Options struct {
	AcceptNewHostKeys  bool                             // unknown keys are accepted AND appended to the first known_hosts file
	MaxSessionsPerHost int                              // sessions at once beside the persistent shell and one kill; default 8 (OpenSSH MaxSessions is 10)
	KeepAlive          time.Duration                    // default ServerAliveInterval, 15s
	KeepAliveCountMax  int                              // default ServerAliveCountMax, 3: dead after 3 unanswered keepalives in a row
	SSHConfigPath      string                           // default ~/.ssh/config (tests override)
	Warnf              func(format string, args ...any) // e.g. unparsable ssh_config, accepted host key; may be nil

	// AgentSocket is the ssh-agent socket; default $SSH_AUTH_SOCK.
	AgentSocket string

	// KillGrace is how long a timed-out or cancelled command's process
	// group has between TERM and KILL. Default 2s.
	KillGrace time.Duration

	// OneSessionPerCommand turns the persistent shell off: every command
	// opens a session of its own (the fallback for hosts that cannot run
	// the shell; also for comparisons).
	OneSessionPerCommand bool

	// ShellStartTimeout bounds the start of a host's persistent shell
	// (its login shell's rc files included); past it the host falls back
	// to one session per command. A running shell that does not
	// acknowledge a command within it is replaced, and the command (which
	// never started) sent to the new one. Default 30s.
	ShellStartTimeout time.Duration
}

// Pool holds at most one live connection per host and hands it out to
// every caller. It is safe for concurrent use.
type Pool struct {
	opts Options

	mu      sync.Mutex
	closed  bool
	entries map[poolKey]*entry
	clients map[*Client]struct{} // every client dialed and not yet replaced

	sshConfigOnce sync.Once
	sshConfig     *ssh_config.Config // nil: absent or unparsable

	knownHostsMu  sync.Mutex // serialises appends to known_hosts files and guards knownHostsDBs
	knownHostsDBs map[string]knownHostsEntry

	sessionsMu sync.Mutex
	sessions   map[string]*atomic.Int64 // host name → sessions opened, every connection
}

type poolKey struct {
	Name, Address, User, IdentityFile, KnownHosts, Jump string
	Port                                                int
	UseSSHConfig                                        bool
	ConnectTimeout                                      time.Duration
	AliveInterval                                       time.Duration
	AliveCountMax                                       int
	isJump                                              bool
}

type entry struct {
	lock   chan struct{} // held while dialing; a channel so waiting honours ctx
	client *Client
}

// NewPool returns an empty pool; connections are dialed on first Get.
func NewPool(opts Options) *Pool {
	if opts.MaxSessionsPerHost <= 0 {
		opts.MaxSessionsPerHost = 8
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.KeepAliveCountMax <= 0 {
		opts.KeepAliveCountMax = 3
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 2 * time.Second
	}
	if opts.ShellStartTimeout <= 0 {
		opts.ShellStartTimeout = 30 * time.Second
	}
	if opts.SSHConfigPath == "" {
		opts.SSHConfigPath = "~/.ssh/config"
	}
	return &Pool{opts: opts, entries: make(map[poolKey]*entry), clients: make(map[*Client]struct{})}
}

// Get returns the host's client, dialing it on first use and redialing it
// when the previous connection died. Concurrent Gets for one host share
// one dial.
func (p *Pool) Get(ctx context.Context, h HostConfig) (*Client, error) {
	return p.get(ctx, h, false)
}

func (p *Pool) get(ctx context.Context, h HostConfig, isJump bool) (*Client, error) {
	if h.Name == "" {
		h.Name = h.Address
	}
	key := poolKey{
		Name: h.Name, Address: h.Address, User: h.User, IdentityFile: h.IdentityFile,
		KnownHosts: strings.Join(h.KnownHosts, "\x00"), Jump: h.Jump, Port: h.Port,
		UseSSHConfig: h.UseSSHConfig, ConnectTimeout: h.ConnectTimeout,
		AliveInterval: h.ServerAliveInterval, AliveCountMax: h.ServerAliveCountMax, isJump: isJump,
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("%s: connection pool closed", h.Name)
	}
	e := p.entries[key]
	if e == nil {
		e = &entry{lock: make(chan struct{}, 1)}
		p.entries[key] = e
	}
	p.mu.Unlock()

	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for connection: %w", h.Name, ctx.Err())
	}
	defer func() { <-e.lock }()

	if e.client != nil && e.client.Alive() {
		return e.client, nil
	}
	if e.client != nil {
		e.client.Close()
		p.mu.Lock()
		delete(p.clients, e.client)
		p.mu.Unlock()
		e.client = nil
	}
	c, err := p.dial(ctx, h, isJump)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return nil, fmt.Errorf("%s: connection pool closed", h.Name)
	}
	p.clients[c] = struct{}{}
	p.mu.Unlock()
	e.client = c
	return c, nil
}

// Sessions is how many SSH sessions were opened to the named host (its
// inventory name) since the pool was made, over every connection: the
// persistent shell, SFTP uploads, kills of timed-out commands, and every
// command when the host runs one session per command.
func (p *Pool) Sessions(host string) int {
	p.sessionsMu.Lock()
	defer p.sessionsMu.Unlock()
	if n := p.sessions[host]; n != nil {
		return int(n.Load())
	}
	return 0
}

// SessionCounts is Sessions for every host the pool connected to.
func (p *Pool) SessionCounts() map[string]int {
	p.sessionsMu.Lock()
	defer p.sessionsMu.Unlock()
	out := make(map[string]int, len(p.sessions))
	for h, n := range p.sessions {
		out[h] = int(n.Load())
	}
	return out
}

func (p *Pool) sessionCounter(host string) *atomic.Int64 {
	p.sessionsMu.Lock()
	defer p.sessionsMu.Unlock()
	if p.sessions == nil {
		p.sessions = map[string]*atomic.Int64{}
	}
	n := p.sessions[host]
	if n == nil {
		n = new(atomic.Int64)
		p.sessions[host] = n
	}
	return n
}

// Close closes every connection. Commands in flight fail with
// ErrConnectionLost; later Gets fail.
func (p *Pool) Close() error {
	// A dial in flight checks p.closed when it finishes and closes its
	// own client.
	p.mu.Lock()
	p.closed = true
	clients := p.clients
	p.clients = map[*Client]struct{}{}
	p.mu.Unlock()
	for c := range clients {
		c.Close()
	}
	return nil
}

func (p *Pool) warnf(format string, args ...any) {
	if p.opts.Warnf != nil {
		p.opts.Warnf(format, args...)
	}
}

// target is a HostConfig resolved against ssh_config and defaults.
type target struct {
	name       string
	addr       string // "host:port" dialed and verified against known_hosts
	user       string
	identity   string // expanded; "" when none configured
	knownHosts []string
	jump       string
	timeout    time.Duration
	aliveEvery time.Duration // keepalive interval
	aliveMax   int           // unanswered keepalives in a row before the host is dead
}

func (p *Pool) resolve(h HostConfig, isJump bool) (target, error) {
	t := target{name: h.Name, user: h.User, jump: h.Jump, timeout: h.ConnectTimeout,
		aliveEvery: h.ServerAliveInterval, aliveMax: h.ServerAliveCountMax}
	host, port := h.Address, h.Port
	if host == "" {
		host = h.Name
	}
	if hh, pp, err := net.SplitHostPort(host); err == nil {
		n, err := strconv.Atoi(pp)
		if err != nil || n <= 0 || n > 65535 {
			return t, fmt.Errorf("%s: address %q: bad port", h.Name, h.Address)
		}
		host, port = hh, n
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if host == "" {
		return t, fmt.Errorf("%s: no address", h.Name)
	}
	identity := h.IdentityFile
	if h.UseSSHConfig {
		if cfg := p.loadSSHConfig(); cfg != nil {
			alias := host
			get := func(key string) string {
				v, err := cfg.Get(alias, key)
				if err != nil {
					return ""
				}
				return strings.TrimSpace(v)
			}
			if hn := get("HostName"); hn != "" {
				host = strings.ReplaceAll(hn, "%h", alias)
			}
			if port == 0 {
				if v := get("Port"); v != "" {
					if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 65535 {
						port = n
					}
				}
			}
			if t.user == "" {
				t.user = get("User")
			}
			if identity == "" {
				identity = get("IdentityFile")
			}
			if t.aliveEvery <= 0 {
				if v := get("ServerAliveInterval"); v != "" {
					// Seconds, as OpenSSH reads it (0 there disables
					// keepalives; relctl always keeps them).
					if n, err := strconv.Atoi(v); err == nil && n > 0 {
						t.aliveEvery = time.Duration(n) * time.Second
					} else {
						p.warnf("%s: ssh_config ServerAliveInterval %q is not a positive number of seconds; using %s", h.Name, v, p.opts.KeepAlive)
					}
				}
			}
			if t.aliveMax <= 0 {
				if v := get("ServerAliveCountMax"); v != "" {
					if n, err := strconv.Atoi(v); err == nil && n > 0 {
						t.aliveMax = n
					} else {
						p.warnf("%s: ssh_config ServerAliveCountMax %q is not a positive number; using %d", h.Name, v, p.opts.KeepAliveCountMax)
					}
				}
			}
			if t.jump == "" && !isJump {
				if j := get("ProxyJump"); j != "" && !strings.EqualFold(j, "none") {
					t.jump = j
				}
			}
		}
	}
	if t.user == "" {
		t.user = h.fallbackUser
	}
	if identity == "" {
		identity = h.fallbackIdentity
	}
	if strings.Contains(t.jump, ",") {
		return t, fmt.Errorf("%s: jump %q: only one jump host is supported", h.Name, t.jump)
	}
	if port == 0 {
		port = 22
	}
	if t.user == "" {
		t.user = localUser()
	}
	if t.timeout <= 0 {
		t.timeout = 10 * time.Second
	}
	if t.aliveEvery <= 0 {
		t.aliveEvery = p.opts.KeepAlive
	}
	if t.aliveMax <= 0 {
		t.aliveMax = p.opts.KeepAliveCountMax
	}
	t.addr = net.JoinHostPort(host, strconv.Itoa(port))
	if identity != "" {
		t.identity = expandHome(strings.ReplaceAll(identity, "%d", homeDir()))
	}
	for _, f := range h.KnownHosts {
		if f = strings.TrimSpace(f); f != "" {
			t.knownHosts = append(t.knownHosts, expandHome(f))
		}
	}
	if len(t.knownHosts) == 0 {
		t.knownHosts = []string{expandHome("~/.ssh/known_hosts")}
	}
	return t, nil
}

func (p *Pool) loadSSHConfig() *ssh_config.Config {
	p.sshConfigOnce.Do(func() {
		path := expandHome(p.opts.SSHConfigPath)
		f, err := os.Open(path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				p.warnf("ssh_config %s: %v; ignoring it", path, err)
			}
			return
		}
		defer f.Close()
		cfg, err := ssh_config.Decode(f)
		if err != nil {
			p.warnf("ssh_config %s: %v; ignoring it (the inventory's settings still apply)", path, err)
			return
		}
		p.sshConfig = cfg
	})
	return p.sshConfig
}

func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return "/"
}

func expandHome(p string) string {
	if p == "~" {
		return homeDir()
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(homeDir(), p[2:])
	}
	return p
}

func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
