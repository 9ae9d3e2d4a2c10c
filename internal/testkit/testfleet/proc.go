package testfleet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one long-running process the fleet started (sshd, haproxy, nginx).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// spawn starts argv with stdout and stderr appended to logPath. cred, if set,
// runs it as another user. The process gets SIGTERM if the test binary dies.
func spawn(name, logPath string, cred *syscall.Credential, env []string, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to timeout, then SIGKILL. Safe on an exited proc.
func (p *proc) stop(timeout time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// logTail returns the end of the process's log.
func (p *proc) logTail() string { return tail(p.log, 3000) }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitTCP waits until addr accepts connections; if banner is set, the first bytes
// read must start with it. It gives up when p exits or timeout passes.
func waitTCP(p *proc, addr, banner string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", p.name, p.err, addr, p.logTail())
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			if banner == "" {
				c.Close()
				return nil
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, len(banner))
			_, err = readFull(c, buf)
			c.Close()
			if err == nil && string(buf) == banner {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("banner %q, want %q (another server on the address?)", buf, banner)
			}
		}
		last = err
		time.Sleep(30 * time.Millisecond)
	}
	name := "process"
	if p != nil {
		name = p.name
	}
	return fmt.Errorf("%s not accepting on %s after %s: %v", name, addr, timeout, last)
}

func readFull(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// descendants returns the pids below pid whose command name is comm, read from
// /proc (children before their parent is killed keep their ppid).
func descendants(pid int, comm string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	name := map[int]string{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		open, closeIdx := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closeIdx < 0 {
			continue
		}
		fields := strings.Fields(s[closeIdx+1:])
		if len(fields) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(fields[1])
		parent[p] = pp
		name[p] = s[open+1 : closeIdx]
	}
	var out []int
	for p := range parent {
		for a, hops := parent[p], 0; a > 1 && hops < 64; a, hops = parent[a], hops+1 {
			if a == pid {
				if name[p] == comm {
					out = append(out, p)
				}
				break
			}
		}
	}
	return out
}

// portFree reports whether addr can be bound right now.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// ipLocks holds flocks on loopback addresses so that fleets in concurrently
// running test binaries (go test runs packages in parallel) never share one.
type ipLocks struct{ files []*os.File }

func lockDir() string { return filepath.Join(os.TempDir(), "relctl-testfleet-locks") }

// tryLockIPs locks 127.0.0.<first..last> without blocking, all or nothing.
func tryLockIPs(first, last int) (*ipLocks, error) {
	if err := os.MkdirAll(lockDir(), 0o755); err != nil {
		return nil, err
	}
	l := &ipLocks{}
	for i := first; i <= last; i++ {
		f, err := os.OpenFile(filepath.Join(lockDir(), fmt.Sprintf("127.0.0.%d.lock", i)), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			l.release()
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			l.release()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errBusy
			}
			return nil, err
		}
		l.files = append(l.files, f)
	}
	return l, nil
}

var errBusy = errors.New("addresses in use by another fleet")

func (l *ipLocks) release() {
	if l == nil {
		return
	}
	for _, f := range l.files {
		f.Close()
	}
	l.files = nil
}
