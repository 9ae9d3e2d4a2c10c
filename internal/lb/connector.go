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

// shellQuote quotes s as one POSIX shell word.
//
// NOTE: internal/shell (shell.Quote) did not exist when this was written;
// switch to it once it lands so the whole module quotes one way.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%_-+=:,./", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
