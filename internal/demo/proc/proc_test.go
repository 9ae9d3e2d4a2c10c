package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary plays two helpers when these variables are set: an owner
// that starts processes and waits to be killed, and a daemon on a lifeline.
const (
	ownerEnv  = "PROC_TEST_OWNER"  // a pid dir: start a sleeper there, print its pid, block
	daemonEnv = "PROC_TEST_DAEMON" // run until the lifeline's owner is gone, then exit 0
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(ownerEnv); dir != "" {
		os.Exit(runOwner(dir))
	}
	if os.Getenv(daemonEnv) != "" {
		os.Exit(runDaemon())
	}
	os.Exit(m.Run())
}

// runOwner starts a sleeper with a pidfile and a detached daemon on this
// process's lifeline (like a demo app, started by a short-lived parent so
// that no parent-death signal can reach it), prints both pids, and blocks
// until it is killed.
func runOwner(dir string) int {
	p, err := Start(Spec{Name: "sleeper", Argv: []string{"/bin/sleep", "300"}, Log: filepath.Join(dir, "sleeper.log"),
		DeathSignal: syscall.SIGKILL, PidDir: filepath.Join(dir, "run")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "owner:", err)
		return 1
	}
	lifeline, err := Lifeline()
	if err != nil {
		fmt.Fprintln(os.Stderr, "owner:", err)
		return 1
	}
	self, _ := os.Executable()
	d := exec.Command(self)
	d.Env = append(os.Environ(), daemonEnv+"=1", LifelineEnv+"="+lifeline, ownerEnv+"=")
	d.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "owner:", err)
		return 1
	}
	go func() { _ = d.Wait() }()
	pids := filepath.Join(dir, "pids")
	if err := os.WriteFile(pids+".tmp", []byte(fmt.Sprintln(p.PID(), d.Process.Pid)), 0o644); err != nil || os.Rename(pids+".tmp", pids) != nil {
		return 1
	}
	select {}
}

func runDaemon() int {
	ctx, cancel, err := WithLifeline(context.Background(), os.Getenv(LifelineEnv), 50*time.Millisecond)
	if err != nil {
		return 2
	}
	defer cancel()
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), ErrOwnerGone) {
		return 3
	}
	return 0
}

// TestOwnerSIGKILLed is the promise the demo rests on: when the process that
// started a child (parent-death signal) or handed out a lifeline (a daemon)
// is SIGKILLed, both end on their own, and Reap finds nothing left to stop.
func TestOwnerSIGKILLed(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	owner := exec.Command(self)
	owner.Env = append(os.Environ(), ownerEnv+"="+dir)
	owner.Stdout, owner.Stderr = os.Stderr, os.Stderr
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Process.Kill(); _ = owner.Wait() })
	var pids []byte
	waitFor(t, 30*time.Second, "the owner to write its children's pids", func() bool {
		pids, err = os.ReadFile(filepath.Join(dir, "pids"))
		return err == nil
	})
	var sleeper, daemon int
	if _, err := fmt.Sscan(string(pids), &sleeper, &daemon); err != nil {
		t.Fatalf("owner wrote %q: %v", pids, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(sleeper, syscall.SIGKILL); _ = syscall.Kill(daemon, syscall.SIGKILL) })
	for _, pid := range []int{sleeper, daemon} {
		if !Alive(pid) {
			t.Fatalf("pid %d is not running before the owner is killed", pid)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "run", "*.pid")); len(files) != 1 {
		t.Fatalf("pidfiles %v, want the sleeper's", files)
	}

	if err := owner.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = owner.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range []int{sleeper, daemon} {
		for Alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still runs %s after its owner was SIGKILLed", pid, 30*time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	left, err := Reap(filepath.Join(dir, "run"), time.Second)
	if err != nil || len(left) > 0 {
		t.Fatalf("Reap = %v, %v", left, err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "run", "*.pid")); len(files) != 0 {
		t.Fatalf("Reap left pidfiles %v", files)
	}
}

// TestReap stops a process whose starter died without stopping it (here: a
// pidfile written for a process started without a parent-death signal),
// and leaves alone a process whose pid a pidfile names with another start
// time.
func TestReap(t *testing.T) {
	dir := t.TempDir()
	orphan := exec.Command("/bin/sleep", "300")
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = orphan.Wait(); close(exited) }()
	t.Cleanup(func() { _ = orphan.Process.Kill(); <-exited })
	if _, err := writePidfile(dir, "orphan", orphan.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// A pidfile naming this test process with a start time it does not have.
	stale := filepath.Join(dir, strconv.Itoa(os.Getpid())+".pid")
	if err := os.WriteFile(stale, []byte(fmt.Sprintf("%d 1 stale\n", os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	left, err := Reap(dir, 5*time.Second)
	if err != nil || len(left) > 0 {
		t.Fatalf("Reap = %v, %v", left, err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphan still runs after Reap")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.pid")); len(files) != 0 {
		t.Fatalf("Reap left pidfiles %v", files)
	}
	// Reaching here at all means this process survived its stale pidfile.
}

func TestStartStop(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "x.log")
	// Ignores SIGTERM: Stop must fall back to SIGKILL of the process group
	// (the sleep below the shell included) and say so.
	p, err := Start(Spec{Name: "stubborn", Argv: []string{"/bin/sh", "-c", "trap '' TERM; echo up; sleep 300 & wait"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the shell to log", func() bool { return strings.Contains(p.LogTail(100), "up") })
	var kids []int
	waitFor(t, 10*time.Second, "one sleep below the shell", func() bool {
		kids = Descendants(p.PID(), "sleep")
		return len(kids) == 1
	})
	err = p.Stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "ignored SIGTERM") {
		t.Fatalf("Stop = %v, want it to say SIGTERM was ignored", err)
	}
	if !p.Exited() || p.Err() == nil {
		t.Fatalf("after Stop: exited %v, err %v", p.Exited(), p.Err())
	}
	waitFor(t, 10*time.Second, "the sleep below the shell to die", func() bool { return !Alive(kids[0]) })
	if err := p.Stop(time.Second); err != nil {
		t.Fatalf("Stop on an exited process = %v", err)
	}

	if _, err := Start(Spec{Name: "missing", Argv: []string{filepath.Join(dir, "nope")}, Log: log}); err == nil || !strings.Contains(err.Error(), "start missing") {
		t.Fatalf("Start of a missing binary = %v", err)
	}
}

func TestWaitListening(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.0 400\r\n"))
			c.Close()
		}
	}()
	p, err := Start(Spec{Name: "sleeper", Argv: []string{"/bin/sleep", "300"}, Log: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	ctx := context.Background()
	if err := WaitListening(ctx, p, 5*time.Second, "", ln.Addr().String()); err != nil {
		t.Fatalf("plain: %v", err)
	}
	err = WaitListening(ctx, p, 2*time.Second, "SSH-2.0-", ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "another server on the address") {
		t.Fatalf("wrong banner: %v", err)
	}

	// A process that dies before it listens: the error carries its log.
	q, err := Start(Spec{Name: "dies", Argv: []string{"/bin/sh", "-c", "echo cannot bind >&2; exit 3"}, Log: filepath.Join(dir, "dies.log")})
	if err != nil {
		t.Fatal(err)
	}
	err = WaitListening(ctx, q, 30*time.Second, "", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "dies exited") || !strings.Contains(err.Error(), "cannot bind") {
		t.Fatalf("dying process: %v", err)
	}
}

func TestLifelineMalformed(t *testing.T) {
	for _, v := range []string{"", "12", "x:1", "12:x", "-1:5"} {
		if _, _, err := WithLifeline(context.Background(), v, time.Second); err == nil {
			t.Errorf("WithLifeline(%q) accepted", v)
		}
	}
	me, err := Lifeline()
	if err != nil {
		t.Fatal(err)
	}
	if alive, err := OwnerAlive(me); err != nil || !alive {
		t.Fatalf("OwnerAlive(own lifeline %q) = %v, %v", me, alive, err)
	}
}

func TestMatchingSkipsSelf(t *testing.T) {
	needle := "relctl-proc-test-" + strconv.Itoa(os.Getpid())
	// The shell waits in its builtin read, so it never forks: a forked child
	// keeps the parent's command line until it execs, and would be a second,
	// real match for as long as that window lasts (seen once under CI load).
	cmd := exec.Command("/bin/sh", "-c", "read x", needle)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	got := Matching(needle)
	if len(got) != 1 || got[0] != cmd.Process.Pid {
		t.Fatalf("Matching = %v, want [%d]", got, cmd.Process.Pid)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
