package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Spec says how to start one long-running process.
type Spec struct {
	Name string   // for errors and logs: "haproxy", "sshd web1"
	Argv []string // absolute path first
	Log  string   // stdout and stderr are appended here
	Env  []string // nil: this process's environment
	// Cred, if set, runs the process as another user.
	Cred *syscall.Credential
	// DeathSignal is what the process gets when the OS thread that started
	// it ends, which Start makes the same as this process ending (SIGKILL
	// included). Zero means SIGTERM.
	DeathSignal syscall.Signal
	// PidDir, if set, gets a pidfile <PidDir>/<pid>.pid naming the process
	// and its start time while it runs, for Reap after this process was
	// killed. Removed when the process is reaped.
	PidDir string
}

// Proc is a process Start started. Its fields are read-only.
type Proc struct {
	Name    string
	log     string
	pid     int
	pidfile string
	done    chan struct{}
	err     error
}

// Start starts s.Argv in its own process group. The process is started from
// a goroutine locked to its own OS thread, which stays alive until the
// process has been waited for: the kernel's parent-death signal fires when
// the starting thread ends, so this way it fires only when this whole
// process ends. Start returns once the process runs (or could not start).
func Start(s Spec) (*Proc, error) {
	if len(s.Argv) == 0 {
		return nil, fmt.Errorf("start %s: no command", s.Name)
	}
	logf, err := os.OpenFile(s.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	sig := s.DeathSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = s.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig, Credential: s.Cred}
	p := &Proc{Name: s.Name, log: s.Log, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns, its thread ends too,
		// and by then the process has been reaped.
		runtime.LockOSThread()
		err := cmd.Start()
		logf.Close()
		if err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		if s.PidDir != "" {
			p.pidfile, err = writePidfile(s.PidDir, s.Name, p.pid)
			if err != nil {
				_ = syscall.Kill(-p.pid, syscall.SIGKILL)
				_ = cmd.Wait()
				started <- err
				return
			}
		}
		started <- nil
		p.err = cmd.Wait()
		if p.pidfile != "" {
			_ = os.Remove(p.pidfile)
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended (cmd.Wait's error); nil before it ended.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Exited reports whether the process has exited and been reaped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process, waits up to timeout, then SIGKILLs its
// process group, and reaps it. Safe on a nil or exited process. The error
// says when SIGTERM was not enough, or even SIGKILL.
func (p *Proc) Stop(timeout time.Duration) error {
	if p == nil || p.Exited() {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for %s and was killed", p.Name, p.pid, timeout)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) survives SIGKILL", p.Name, p.pid)
	}
}

// LogTail is the last n bytes of the process's log.
func (p *Proc) LogTail(n int) string { return Tail(p.log, n) }

// Tail is the last n bytes of the file at path, or the error in brackets.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// WaitListening waits until every addr accepts TCP connections; with a
// banner, the first bytes the server sends must be it (so that another
// server on the address is not mistaken for p). It fails at once when p
// exits (with the end of its log), when ctx ends, or after timeout.
func WaitListening(ctx context.Context, p *Proc, timeout time.Duration, banner string, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		for {
			if p.Exited() {
				return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", p.Name, p.err, addr, p.LogTail(3000))
			}
			err := probe(addr, banner)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not listening on %s after %s: %v", p.Name, addr, timeout, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-p.done:
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// probe connects to addr once and, with a banner, reads and compares it.
func probe(addr, banner string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	if banner == "" {
		return nil
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, len(banner))
	n := 0
	for n < len(buf) && err == nil {
		var m int
		m, err = c.Read(buf[n:])
		n += m
	}
	if n == len(buf) && string(buf) == banner {
		return nil
	}
	if err == nil || n == len(buf) {
		return fmt.Errorf("banner %q, want %q (another server on the address?)", buf[:n], banner)
	}
	return err
}

// Terminate sends SIGTERM to pid, waits up to timeout for it to exit, then
// sends SIGKILL and waits a little longer. It reports "SIGTERM", "SIGKILL"
// or "already gone". For processes this one did not start (a daemon found
// by its pidfile); Stop is for a Proc.
func Terminate(pid int, timeout time.Duration) (string, error) {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return "already gone", nil
		}
		return "", fmt.Errorf("signal pid %d: %w", pid, err)
	}
	if WaitGone(pid, timeout) {
		return "SIGTERM", nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return "", fmt.Errorf("kill pid %d: %w", pid, err)
	}
	if WaitGone(pid, 5*time.Second) {
		return "SIGKILL", nil
	}
	return "", fmt.Errorf("pid %d still alive after SIGKILL", pid)
}

// WaitGone polls until pid is no longer Alive; false if it still is after d.
func WaitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
