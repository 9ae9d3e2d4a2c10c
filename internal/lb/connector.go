package lb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// LocalConnector is a Connector for balancers on this machine (the demo,
// tests, a relctl running on the balancer host). It refuses SSH hosts.
type LocalConnector struct{}

var _ Connector = LocalConnector{}

// DialVia dials network addr locally; sshHost must be "".
func (LocalConnector) DialVia(ctx context.Context, sshHost, network, addr string) (net.Conn, error) {
	if sshHost != "" {
		return nil, fmt.Errorf("dial %s %s via %s: local connector cannot use ssh", network, addr, sshHost)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// RunOn runs script with `sh -c` locally; sshHost must be "".
func (LocalConnector) RunOn(ctx context.Context, sshHost, script string) (string, error) {
	if sshHost != "" {
		return "", fmt.Errorf("run on %s: local connector cannot use ssh", sshHost)
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return stdout.String(), fmt.Errorf("%w: %s", err, msg)
		}
		return stdout.String(), err
	}
	return stdout.String(), nil
}
