package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Client is one live SSH connection to a host, shared by every caller of
// Pool.Get for that host. Its commands run one at a time through one
// persistent shell session, uploads through one SFTP session; besides
// those it opens at most Options.MaxSessionsPerHost sessions at once
// (uploads in flight, and every command where the host runs one session
// per command); more wait their turn.
type Client struct {
	host string // inventory name, prefix of every error
	addr string
	conn *ssh.Client
	opts *Options

	aliveEvery time.Duration // ServerAliveInterval
	aliveMax   int           // ServerAliveCountMax
	answered   atomic.Int64  // keepalives answered (tests read it)

	sem     chan struct{} // session slots
	killSem chan struct{} // one slot kept for kill sessions, beyond sem

	// The persistent shell (shell.go): shellSlot is held by the one
	// command using it, and guards shell.
	shellSlot chan struct{}
	shell     *rshell
	shellOff  atomic.Bool // the host cannot run it: one session per command

	sftpMu sync.Mutex
	sftp   *sftp.Client // the SFTP session every upload shares; nil until the first

	sessions     atomic.Int64  // sessions opened on this connection
	hostSessions *atomic.Int64 // sessions opened to this host, every connection (the pool's)

	dead      chan struct{} // closed once the connection is gone
	deadMu    sync.Mutex
	deadWhy   error
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newClient(t target, conn *ssh.Client, opts *Options, hostSessions *atomic.Int64) *Client {
	c := &Client{
		host:       t.name,
		addr:       t.addr,
		conn:       conn,
		opts:       opts,
		aliveEvery: t.aliveEvery,
		aliveMax:   t.aliveMax,
		sem:        make(chan struct{}, opts.MaxSessionsPerHost),
		killSem:    make(chan struct{}, 1),
		shellSlot:  make(chan struct{}, 1),
		dead:       make(chan struct{}),

		hostSessions: hostSessions,
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		err := conn.Wait()
		c.setDeadWhy(err)
		close(c.dead)
	}()
	go func() {
		defer c.wg.Done()
		c.keepalive()
	}()
	return c
}

// Host is the inventory name of the host.
func (c *Client) Host() string { return c.host }

// Addr is the "host:port" the client is connected to.
func (c *Client) Addr() string { return c.addr }

// Alive reports whether the connection is still up (as far as the last
// keepalive knows).
func (c *Client) Alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// Close closes the connection; operations in flight fail with
// ErrConnectionLost. Clients from a Pool are closed by Pool.Close, and a
// closed client is redialed by the next Pool.Get.
func (c *Client) Close() error {
	c.kill(errors.New("closed"))
	c.wg.Wait()
	return nil
}

func (c *Client) setDeadWhy(err error) {
	c.deadMu.Lock()
	defer c.deadMu.Unlock()
	if c.deadWhy == nil {
		if err == nil {
			err = errors.New("closed")
		}
		c.deadWhy = err
	}
}

// kill closes the connection for the given reason (first reason wins).
func (c *Client) kill(why error) {
	c.closeOnce.Do(func() {
		c.setDeadWhy(why)
		c.conn.Close()
	})
}

// lost is the error for an operation that failed because the connection
// is gone.
func (c *Client) lost(op string) error {
	c.deadMu.Lock()
	why := c.deadWhy
	c.deadMu.Unlock()
	if why == nil {
		return fmt.Errorf("%s: %s: %w", c.host, op, ErrConnectionLost)
	}
	return fmt.Errorf("%s: %s: %w (%v)", c.host, op, ErrConnectionLost, why)
}

// waitDead reports whether the connection is gone or goes within d: a
// session torn down by a dying connection often ends a moment before the
// connection reports its own end.
func (c *Client) waitDead(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.dead:
		return true
	case <-t.C:
		return false
	}
}

// keepalive follows OpenSSH's ServerAliveInterval/ServerAliveCountMax:
// every interval it checks whether the keepalive@openssh.com request sent
// at the previous tick has been answered. Any answer, even a failure (which
// is what OpenSSH sends), means alive and resets the count; the host is
// declared dead only after aliveMax intervals in a row without an answer
// (15 s × 3 by default), or when sending fails. Then the connection is
// closed, everything in flight fails with ErrConnectionLost and the next
// Get redials. One slow reply from a loaded host is not a death.
func (c *Client) keepalive() {
	tick := time.NewTicker(c.aliveEvery)
	defer tick.Stop()
	var reply chan error // the request in flight, nil when none
	missed := 0
	for {
		select {
		case <-c.dead:
			return
		case err := <-reply:
			reply = nil
			if err != nil {
				c.kill(fmt.Errorf("keepalive: %w", err))
				return
			}
			c.answered.Add(1)
			missed = 0
			continue
		case <-tick.C:
		}
		if reply != nil {
			// The request sent at an earlier tick is still unanswered
			// (x/crypto/ssh serialises global requests: one at a time).
			missed++
			if missed >= c.aliveMax {
				c.kill(fmt.Errorf("no answer to %d keepalives in a row (every %s)", missed, c.aliveEvery))
				return
			}
			continue
		}
		reply = make(chan error, 1)
		go func(reply chan<- error) {
			// Blocks on a dead TCP connection; ends when the conn closes.
			_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}(reply)
	}
}

// acquire takes a session slot.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for a session slot: %w", c.host, ctx.Err())
	case <-c.dead:
		return c.lost("waiting for a session slot")
	}
}

func (c *Client) release() { <-c.sem }

// Sessions is how many SSH sessions (commands, the persistent shell,
// kills, SFTP) were opened on this connection.
func (c *Client) Sessions() int { return int(c.sessions.Load()) }

// PersistentShell reports whether commands run through one persistent
// shell session (false: the host could not run it, or
// Options.OneSessionPerCommand, and every command has a session of its
// own).
func (c *Client) PersistentShell() bool {
	return !c.opts.OneSessionPerCommand && !c.shellOff.Load()
}

// countSession counts a session about to be opened.
func (c *Client) countSession() {
	c.sessions.Add(1)
	if c.hostSessions != nil {
		c.hostSessions.Add(1)
	}
}

func (c *Client) warnf(format string, args ...any) {
	if c.opts.Warnf != nil {
		c.opts.Warnf(format, args...)
	}
}

func (c *Client) newSession(op string) (*ssh.Session, error) {
	c.countSession()
	s, err := c.conn.NewSession()
	if err != nil {
		if !c.Alive() || c.waitDead(50*time.Millisecond) {
			return nil, c.lost(op)
		}
		return nil, fmt.Errorf("%s: %s: open session: %w", c.host, op, err)
	}
	return s, nil
}

// DialContext opens a "tcp" ("host:port") or "unix" (socket path)
// connection from the host, through the SSH connection (direct-tcpip /
// direct-streamlocal@openssh.com). The connection is closed when ctx is
// done. Deadlines are not supported on it.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("%s: dial %s %s: unsupported network", c.host, network, addr)
	}
	conn, err := c.conn.DialContext(ctx, network, addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: dial %s %s: %w", c.host, network, addr, ctx.Err())
		}
		if !c.Alive() || c.waitDead(50*time.Millisecond) {
			return nil, c.lost("dial " + network + " " + addr)
		}
		return nil, fmt.Errorf("%s: dial %s %s: %w", c.host, network, addr, err)
	}
	cc := &ctxConn{Conn: conn}
	cc.stop = context.AfterFunc(ctx, func() { conn.Close() })
	return cc, nil
}

// ctxConn is a forwarded connection closed when its context ends.
type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
