package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// dial opens a new connection to h: TCP (directly or through the jump
// host), then the SSH handshake, all within h's ConnectTimeout and ctx.
func (p *Pool) dial(ctx context.Context, h HostConfig, isJump bool) (*Client, error) {
	t, err := p.resolve(h, isJump)
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	// timeoutErr names what ran out: the caller's context, or ConnectTimeout.
	deadline, _ := ctx.Deadline()
	timeoutErr := func(stage string, err error) error {
		if perr := parent.Err(); perr != nil {
			return fmt.Errorf("%s: %s %s: %w", t.name, stage, t.addr, perr)
		}
		var ne net.Error
		if ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() {
			if pdl, ok := parent.Deadline(); ok && !pdl.After(deadline) {
				return fmt.Errorf("%s: %s %s: %w", t.name, stage, t.addr, context.DeadlineExceeded)
			}
			return fmt.Errorf("%s: %s %s: timed out after %s (connect_timeout): %w", t.name, stage, t.addr, t.timeout, context.DeadlineExceeded)
		}
		return fmt.Errorf("%s: %s %s: %w", t.name, stage, t.addr, err)
	}

	var conn net.Conn
	if t.jump != "" {
		jh, err := jumpConfig(h, t)
		if err != nil {
			return nil, err
		}
		jc, err := p.get(ctx, jh, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
		conn, err = jc.conn.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			if !jc.Alive() {
				err = fmt.Errorf("%w: %v", ErrConnectionLost, err)
			}
			return nil, timeoutErr("dial via "+jh.Name+" to", err)
		}
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			return nil, timeoutErr("dial", err)
		}
	}

	auth, closeAgent, err := p.authMethods(t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer closeAgent()
	hk, err := p.hostKeyCheck(t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              t.user,
		Auth:              auth,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms,
		ClientVersion:     "SSH-2.0-relctl",
	}

	// The handshake can hang (ClientConfig.Timeout covers only the TCP
	// connect): a deadline on the raw conn, and closing it when ctx ends
	// (jump-host channels support no deadlines).
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sconn, chans, reqs, err := ssh.NewClientConn(conn, t.addr, cfg)
	if !stop() {
		if err == nil {
			sconn.Close()
			err = errors.New("closed")
		}
		return nil, timeoutErr("handshake with", err)
	}
	if err != nil {
		conn.Close()
		if hk.err != nil {
			return nil, hk.err
		}
		return nil, timeoutErr("handshake with", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return newClient(t, ssh.NewClient(sconn, chans, reqs), &p.opts, p.sessionCounter(t.name)), nil
}

// jumpConfig is the HostConfig of h's jump host "[user@]host[:port]",
// sharing h's known_hosts and timeout. Its user, port and identity are the
// spec's, then ssh_config's for the jump host itself, then (user and
// identity) the target's.
func jumpConfig(h HostConfig, t target) (HostConfig, error) {
	spec := t.jump
	jh := HostConfig{
		Name:             "jump " + spec,
		KnownHosts:       h.KnownHosts,
		UseSSHConfig:     h.UseSSHConfig,
		ConnectTimeout:   t.timeout,
		fallbackUser:     t.user,
		fallbackIdentity: t.identity,

		ServerAliveInterval: t.aliveEvery,
		ServerAliveCountMax: t.aliveMax,
	}
	if i := strings.LastIndexByte(spec, '@'); i >= 0 {
		jh.User, spec = spec[:i], spec[i+1:]
	}
	if spec == "" {
		return jh, fmt.Errorf("%s: jump %q: no host", h.Name, t.jump)
	}
	if _, pp, err := net.SplitHostPort(spec); err == nil {
		if _, err := strconv.Atoi(pp); err != nil {
			return jh, fmt.Errorf("%s: jump %q: bad port", h.Name, t.jump)
		}
	}
	jh.Address = spec
	return jh, nil
}

// hostKeys is the verification state of one dial.
type hostKeys struct {
	callback   ssh.HostKeyCallback
	algorithms []string
	err        *HostKeyError // set by callback when it refuses
}

func (p *Pool) hostKeyCheck(t target) (*hostKeys, error) {
	var existing []string
	for _, f := range t.knownHosts {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: known_hosts %s: %w", t.name, f, err)
		}
	}
	if len(existing) == 0 && !p.opts.AcceptNewHostKeys {
		// Not "unknown key, add this line" to a file that is not there.
		return nil, fmt.Errorf("%s: %w: %s does not exist: create it with the host keys (ssh-keyscan, after checking them), or run with --accept-new-host-keys to record them on first use",
			t.name, ErrKnownHostsMissing, strings.Join(t.knownHosts, ", "))
	}
	db, err := p.knownHostsDB(existing)
	if err != nil {
		return nil, fmt.Errorf("%s: known_hosts: %w", t.name, err)
	}
	hk := &hostKeys{algorithms: db.HostKeyAlgorithms(t.addr)}
	verify := db.HostKeyCallback()
	hk.callback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := verify(hostname, remote, key)
		if err == nil {
			return nil
		}
		herr := &HostKeyError{
			Host:      t.name,
			Address:   hostname,
			Key:       key,
			Files:     t.knownHosts,
			KnownLine: knownhosts.Line([]string{hostname}, key),
		}
		switch {
		case knownhosts.IsHostKeyChanged(err):
			herr.Err = ErrHostKeyMismatch
			var ke *xknownhosts.KeyError
			if errors.As(err, &ke) {
				for _, w := range ke.Want {
					herr.Want = append(herr.Want, w.Filename+":"+strconv.Itoa(w.Line))
				}
			}
		case knownhosts.IsHostUnknown(err):
			if p.opts.AcceptNewHostKeys {
				if werr := p.appendKnownHost(t.knownHosts[0], hostname, remote, key); werr != nil {
					return fmt.Errorf("%s: accepting new host key: %w", t.name, werr)
				}
				p.warnf("%s: permanently added %s host key %s for %s to %s", t.name, key.Type(), ssh.FingerprintSHA256(key), hostname, t.knownHosts[0])
				return nil
			}
			herr.Err = ErrHostKeyUnknown
		default:
			return fmt.Errorf("%s: host key: %w", t.name, err) // e.g. @revoked
		}
		hk.err = herr
		return herr
	}
	return hk, nil
}

// knownHostsDB parses a set of known_hosts files once for the whole pool:
// every connection keeps its verifier (SSH re-keying checks the host key
// again), and a database per connection made memory grow with hosts × lines
// (≈0.44 MB per host at 1,000 hosts). The cache entry is reparsed when a
// file's size or mtime changes (an accepted new key was appended).
func (p *Pool) knownHostsDB(files []string) (*knownhosts.HostKeyDB, error) {
	var stamp strings.Builder
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&stamp, "%s\x00%d\x00%d\n", f, st.Size(), st.ModTime().UnixNano())
	}
	key := strings.Join(files, "\x00")
	p.knownHostsMu.Lock()
	defer p.knownHostsMu.Unlock()
	if e, ok := p.knownHostsDBs[key]; ok && e.stamp == stamp.String() {
		return e.db, nil
	}
	db, err := knownhosts.NewDB(files...)
	if err != nil {
		return nil, err
	}
	if p.knownHostsDBs == nil {
		p.knownHostsDBs = map[string]knownHostsEntry{}
	}
	p.knownHostsDBs[key] = knownHostsEntry{stamp: stamp.String(), db: db}
	return db, nil
}

type knownHostsEntry struct {
	stamp string
	db    *knownhosts.HostKeyDB
}

func (p *Pool) appendKnownHost(file, hostname string, remote net.Addr, key ssh.PublicKey) error {
	p.knownHostsMu.Lock()
	defer p.knownHostsMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// Make sure the new entry starts on its own line.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			if _, err := f.Write([]byte("\n")); err != nil {
				f.Close()
				return err
			}
		}
	}
	if remote == nil {
		remote = &net.TCPAddr{IP: net.IPv4zero}
	}
	if err := knownhosts.WriteKnownHost(f, hostname, remote, key); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// authMethods returns the public-key auth for t: the identity file when it
// is an unencrypted key; otherwise the agent's keys, limited to the one
// matching the identity when its public half is known. closeAgent must be
// called after the handshake.
func (p *Pool) authMethods(t target) (methods []ssh.AuthMethod, closeAgent func(), err error) {
	closeAgent = func() {}
	var signers []ssh.Signer
	var want ssh.PublicKey // the key the agent must hold, when known
	var problems []string

	files := []string{t.identity}
	explicit := t.identity != ""
	if !explicit {
		files = []string{expandHome("~/.ssh/id_ed25519"), expandHome("~/.ssh/id_ecdsa"), expandHome("~/.ssh/id_rsa")}
	}
	for _, file := range files {
		pem, err := os.ReadFile(file)
		if err != nil {
			if explicit || !errors.Is(err, os.ErrNotExist) {
				problems = append(problems, fmt.Sprintf("identity file %s: %v", file, errors.Unwrap(err)))
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(pem)
		clear(pem)
		var pm *ssh.PassphraseMissingError
		switch {
		case err == nil:
			signers = append(signers, s)
		case errors.As(err, &pm):
			problems = append(problems, fmt.Sprintf("identity file %s is passphrase-protected", file))
			if explicit {
				want = pm.PublicKey
			}
		default:
			// The parse error never quotes key material.
			problems = append(problems, fmt.Sprintf("identity file %s: %v", file, err))
		}
	}
	if explicit && want == nil {
		if pub, err := os.ReadFile(t.identity + ".pub"); err == nil {
			if k, _, _, _, err := ssh.ParseAuthorizedKey(pub); err == nil {
				want = k
			}
		}
	}

	if len(signers) == 0 {
		sock := p.opts.AgentSocket
		if sock == "" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
		if sock == "" {
			problems = append(problems, "no ssh-agent (SSH_AUTH_SOCK is empty)")
		} else {
			conn, err := net.DialTimeout("unix", sock, 5*time.Second)
			if err != nil {
				problems = append(problems, fmt.Sprintf("ssh-agent: %v", err))
			} else {
				closeAgent = func() { conn.Close() }
				all, err := agent.NewClient(conn).Signers()
				if err != nil {
					problems = append(problems, fmt.Sprintf("ssh-agent: %v", err))
				}
				for _, s := range all {
					if want == nil || bytes.Equal(s.PublicKey().Marshal(), want.Marshal()) {
						signers = append(signers, s)
					}
				}
				if len(signers) == 0 && len(all) > 0 {
					problems = append(problems, fmt.Sprintf("ssh-agent holds %d keys, none of them %s", len(all), t.identity))
				} else if len(all) == 0 {
					problems = append(problems, "ssh-agent holds no keys")
				}
			}
		}
	}
	if len(signers) == 0 {
		closeAgent()
		return nil, nil, fmt.Errorf("%s: auth: no usable key: %s", t.name, strings.Join(problems, "; "))
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent, nil
}
