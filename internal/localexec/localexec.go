// Package localexec runs commands on the operator's machine as one process
// group: when the command's context ends, the whole group is killed (a
// forked child would otherwise keep running, and keep the output pipes
// open), and Wait gives up on the pipes a bounded time later. The group
// also dies with relctl: if relctl is killed (SIGKILL included) while the
// command runs, nothing it started keeps running. The balancer drivers'
// local connector, the analysis checks and the run hooks use it.
//
// It never talks to hosts and never decides what to run.
package localexec

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// supervisor is the group leader's script. The leader gets SIGTERM when
// relctl ends (the kernel's parent-death signal, which reaches only the
// direct child), and then kills its whole group, itself included, with
// SIGKILL: the command and everything it forked. The command runs in the
// background so that wait is interrupted by the trap; stdin is passed on
// through fd 3, since a background command's stdin is otherwise
// /dev/null. The leader exits with the command's status (128+n when a
// signal ended the command).
//
// SIGTERM rather than SIGKILL: the leader must outlive the signal long
// enough to pass it on. Go installs its own SIGTERM handler even when
// relctl was started with SIGTERM ignored, so the child starts with the
// default disposition, and the trap takes.
const supervisor = `trap 'trap - TERM; kill -KILL 0' TERM
exec 3<&0
"$@" <&3 3<&- &
exec 3<&-
wait $!`

// supervisorName is the leader's $0 (ps shows it).
const supervisorName = "relctl-localexec"

// Group makes cmd (built with exec.CommandContext) start in its own process
// group, kills that group with SIGKILL when the context ends, and bounds by
// waitDelay how long Wait then waits for the output pipes: a child that left
// the group (setsid) and still holds them must not keep the caller past its
// deadline. Call it before Run, and run cmd with Run (not cmd.Run): the
// group's leader is then a small /bin/sh supervisor that runs cmd and
// kills the group when relctl dies.
func Group(cmd *exec.Cmd, waitDelay time.Duration) {
	if cmd.Err == nil {
		args := []string{"/bin/sh", "-c", supervisor, supervisorName, cmd.Path}
		if len(cmd.Args) > 1 {
			args = append(args, cmd.Args[1:]...)
		}
		cmd.Path, cmd.Args = "/bin/sh", args
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return KillGroup(cmd) }
	cmd.WaitDelay = waitDelay
}

// Run starts cmd (prepared by Group) and waits for it, both from one
// goroutine locked to its OS thread. The parent-death signal is sent when
// the thread that started the child ends, not the process (prctl(2);
// golang/go#27505): Go ends a thread when a goroutine locked to it exits,
// so an unlocked Start could see its group killed in the middle of its work
// by an unrelated goroutine's end. Locked until Wait returns, the thread
// ends only with relctl.
func Run(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		if err == nil {
			err = cmd.Wait()
		}
		// The child is reaped: the thread may serve others again.
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// KillGroup sends SIGKILL to cmd's process group (its id is the leader's
// pid: Setpgid with Pgid 0). A group that is already gone is not an error.
// Callers use it after Wait returned exec.ErrWaitDelay: the command exited
// but a child it started still held its output, and must not outlive it.
func KillGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
