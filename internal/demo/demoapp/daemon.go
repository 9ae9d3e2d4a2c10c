package demoapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relctl/relctl/internal/demo/proc"
)

// Files kept under a host path (HOSTPATH is the inventory's path).
const (
	StateDir = ".relctl"  // HOSTPATH/.relctl, shared with relctl's own files
	PidFile  = "app.pid"  // HOSTPATH/.relctl/app.pid: pid of the serving process
	LockFile = "app.lock" // HOSTPATH/.relctl/app.lock: serialises start and stop
	LogFile  = "app.log"  // HOSTPATH/app.log: stdout and stderr of serve, appended
)

func cmdStart(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("start", stderr)
	dir := fs.String("dir", "", "host path (holds current, releases/, .relctl/)")
	listen := fs.String("listen", "", "address the app listens on")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the app to listen")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if !required(fs, stderr, "dir", *dir, "listen", *listen) {
		return ExitUsage
	}
	if err := start(*dir, *listen, *wait, stdout); err != nil {
		fmt.Fprintf(stderr, "demoapp start: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}

// start daemonizes "serve" from the current release, or does nothing if that release
// already serves on listen.
func start(dir, listen string, wait time.Duration, stdout io.Writer) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	rel, ver, err := currentRelease(dir)
	if err != nil {
		return err
	}
	state := filepath.Join(dir, StateDir)
	if err := os.MkdirAll(state, 0o755); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	unlock, err := lockFile(filepath.Join(state, LockFile))
	if err != nil {
		return err
	}
	defer unlock()
	pidPath := filepath.Join(state, PidFile)
	logPath := filepath.Join(dir, LogFile)

	if pid, ok := readPid(pidPath); ok && isServing(pid) {
		// Give a process that is still coming up the same patience as a new one.
		v, err := waitVersion(listen, wait, nil)
		switch {
		case err != nil:
			return fmt.Errorf("pid %d (from %s) is alive but does not answer on %s: %w", pid, pidPath, listen, err)
		case v != ver:
			return fmt.Errorf("pid %d already serves %s on %s but current is %s: stop it first", pid, v, listen, ver)
		}
		fmt.Fprintf(stdout, "shop %s already running (pid %d) on %s\n", ver, pid, listen)
		return nil
	}

	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)

	bin := filepath.Join(rel, "bin", "demoapp")
	cmd := exec.Command(bin, "serve", "--listen", listen, "--version", ver, "--release-dir", rel)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	if err := writeFileAtomic(pidPath, []byte(strconv.Itoa(pid)+"\n")); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("write pidfile: %w", err)
	}
	v, err := waitVersion(listen, wait, exited)
	if err == nil && v == ver {
		fmt.Fprintf(stdout, "started shop %s (pid %d) on %s\n", ver, pid, listen)
		return nil
	}
	if err == nil {
		err = fmt.Errorf("%s answers version %q, want %q (another process on the address?)", listen, v, ver)
	}
	select {
	case <-exited:
		err = fmt.Errorf("app exited (%v) before listening on %s", waitErr, listen)
	default:
		_ = cmd.Process.Kill()
		<-exited
	}
	_ = os.Remove(pidPath)
	return fmt.Errorf("%w\n--- %s (tail) ---\n%s", err, logPath, logTail(logPath, logStart, 4096))
}

// currentRelease resolves HOSTPATH/current and reads its VERSION.
func currentRelease(dir string) (rel, version string, err error) {
	rel, err = filepath.EvalSymlinks(filepath.Join(dir, "current"))
	if err != nil {
		return "", "", fmt.Errorf("resolve current release: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(rel, "VERSION"))
	if err != nil {
		return "", "", fmt.Errorf("read release version: %w", err)
	}
	version = strings.TrimSpace(string(b))
	if version == "" {
		return "", "", fmt.Errorf("%s/VERSION is empty", rel)
	}
	return rel, version, nil
}

// waitVersion polls GET http://listen/version until it answers 200 or wait passes
// or exited is closed.
func waitVersion(listen string, wait time.Duration, exited <-chan struct{}) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		v, err := getVersion(listen)
		if err == nil {
			return v, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not listening after %s: %w", wait, err)
		}
		select {
		case <-exited:
			return "", errors.New("app exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// getVersion asks a serving app for its version.
func getVersion(listen string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+dialAddr(listen)+"/version", nil)
	if err != nil {
		return "", err
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/version: %s", resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// dialAddr turns a listen address into one a client can dial.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

func cmdStop(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("stop", stderr)
	dir := fs.String("dir", "", "host path (holds .relctl/app.pid)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait after SIGTERM before SIGKILL")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if !required(fs, stderr, "dir", *dir) {
		return ExitUsage
	}
	if err := stop(*dir, *timeout, stdout); err != nil {
		fmt.Fprintf(stderr, "demoapp stop: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}

// stop terminates the app recorded in the pidfile, if any, and waits for it to exit.
func stop(dir string, timeout time.Duration, stdout io.Writer) error {
	state := filepath.Join(dir, StateDir)
	pidPath := filepath.Join(state, PidFile)
	if _, err := os.Stat(pidPath); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(stdout, "not running (no pidfile)")
		return nil
	}
	unlock, err := lockFile(filepath.Join(state, LockFile))
	if err != nil {
		return err
	}
	defer unlock()
	pid, ok := readPid(pidPath)
	if !ok || !isServing(pid) {
		fmt.Fprintln(stdout, "not running (stale pidfile)")
		return removeIfExists(pidPath)
	}
	begin := time.Now()
	how, err := proc.Terminate(pid, timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stopped pid %d (%s) in %s\n", pid, how, time.Since(begin).Round(time.Millisecond))
	return removeIfExists(pidPath)
}

// isServing reports whether pid is alive and is a demoapp "serve" process, so a
// stale pidfile whose pid was reused is never signalled.
func isServing(pid int) bool {
	if !proc.Alive(pid) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return true // no /proc: trust the pidfile
	}
	return bytes.Contains(cmdline, []byte("\x00serve\x00"))
}

// ServingPid returns the pid recorded under HOSTPATH if that process is a live
// demoapp server. Test harnesses use it to clean up.
func ServingPid(dir string) (int, bool) {
	pid, ok := readPid(filepath.Join(dir, StateDir, PidFile))
	if !ok || !isServing(pid) {
		return 0, false
	}
	return pid, true
}

func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// lockFile takes an exclusive flock on path, creating it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// logTail returns up to limit bytes of path written since offset from.
func logTail(path string, from int64, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	from = max(from, end-limit)
	b := make([]byte, end-from)
	n, _ := f.ReadAt(b, from)
	return string(b[:n])
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	dir := fs.String("dir", "", "host path: print the VERSION of its current release")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "demoapp version: --dir is required (the binary is the same for every version; versions live in each release's VERSION file)")
		return ExitUsage
	}
	_, v, err := currentRelease(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "demoapp version: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintln(stdout, v)
	return ExitOK
}
