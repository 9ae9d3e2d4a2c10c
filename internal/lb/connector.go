package lb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/localexec"
)

// LocalConnector is a Connector for balancers on this machine (the demo,
// tests, a relctl running on the balancer host). It refuses SSH hosts.
type LocalConnector struct{}

var _ Connector = LocalConnector{}

// localWaitDelay bounds how long RunOn waits for the output pipes after the
// process group was killed: a child that left the group (setsid) and still
// holds stdout must not keep RunOn past its deadline.
const localWaitDelay = 2 * time.Second

// DialVia dials network addr locally; sshHost must be "".
func (LocalConnector) DialVia(ctx context.Context, sshHost, network, addr string) (net.Conn, error) {
	if sshHost != "" {
		return nil, fmt.Errorf("dial %s %s via %s: local connector cannot use ssh", network, addr, sshHost)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// RunOn runs script with `sh -c` locally; sshHost must be "". The script
// runs in its own process group: when ctx ends, the whole group is killed
// (a forked child would otherwise keep the stdout pipe, and RunOn, open),
// and RunOn returns within localWaitDelay with an error wrapping ctx.Err().
func (LocalConnector) RunOn(ctx context.Context, sshHost, script string) (string, error) {
	if sshHost != "" {
		return "", fmt.Errorf("run on %s: local connector cannot use ssh", sshHost)
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	localexec.Group(cmd, localWaitDelay)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := localexec.Run(cmd)
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
		// Killed because ctx ended: say so, whatever Wait saw.
		return stdout.String(), fmt.Errorf("%w (local command killed with its process group: %v)", ctxErr, err)
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// A child still holds the output: it belongs to this command, and
		// must not outlive it.
		_ = localexec.KillGroup(cmd)
		return stdout.String(), fmt.Errorf("%w: the command exited but a child it started still held its output open (killed with its process group)", err)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return stdout.String(), fmt.Errorf("%w: %s", err, msg)
		}
		return stdout.String(), err
	}
	return stdout.String(), nil
}
