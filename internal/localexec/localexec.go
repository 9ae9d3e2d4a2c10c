// Package localexec runs commands on the operator's machine as one process
// group: when the command's context ends, the whole group is killed (a
// forked child would otherwise keep running, and keep the output pipes
// open), and Wait gives up on the pipes a bounded time later. The balancer
// drivers' local connector and the run hooks use it.
//
// It never talks to hosts and never decides what to run.
package localexec

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// Group makes cmd (built with exec.CommandContext) start in its own process
// group, kills that group with SIGKILL when the context ends, and bounds by
// waitDelay how long Wait then waits for the output pipes: a child that left
// the group (setsid) and still holds them must not keep the caller past its
// deadline. Call it before cmd.Start.
func Group(cmd *exec.Cmd, waitDelay time.Duration) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return KillGroup(cmd) }
	cmd.WaitDelay = waitDelay
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
