package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relctl/relctl/internal/demo/haproxycfg"
	"github.com/relctl/relctl/internal/demo/minilb"
	"github.com/relctl/relctl/internal/demo/proc"
	"github.com/relctl/relctl/internal/lb"
)

// Health checking, the same for both balancers: every 200ms, two results
// in a row to go UP or DOWN.
const (
	checkInterval = 200 * time.Millisecond
	upTimeout     = 20 * time.Second
)

// startBalancer starts HAProxy or minilb in front of the hosts and waits
// until every server is UP with a passing check.
func (d *Demo) startBalancer(ctx context.Context) error {
	var err error
	switch d.BalancerKind {
	case BalancerHAProxy:
		err = d.startHAProxy(ctx)
	default:
		err = d.startMinilb()
	}
	if err != nil {
		return err
	}
	d.logf("demo: %s balancer on %s (admin %s); waiting for every server to be UP", d.BalancerKind, d.Frontend, d.AdminAddr)
	return d.waitAllUp(ctx, upTimeout)
}

func (d *Demo) startMinilb() error {
	servers := make([]minilb.Server, len(d.Hosts))
	for i, h := range d.Hosts {
		servers[i] = minilb.Server{Name: h.Name, Addr: h.AppAddr}
	}
	l, err := minilb.Start(minilb.Config{
		Listen:        "127.0.0.1:0",
		AdminListen:   "127.0.0.1:0",
		Backend:       Backend,
		Servers:       servers,
		CheckInterval: checkInterval,
		CheckPath:     "/health",
	})
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	d.mini = l
	d.Frontend = "http://" + l.Addr()
	d.AdminAddr = l.AdminAddr()
	return nil
}

// haproxyConfig is the demo's HAProxy configuration: a TCP admin socket
// only, two threads.
func (d *Demo) haproxyConfig(frontend, admin string) string {
	c := haproxycfg.Config{
		Origin:        "relctl's demo (internal/demo/sandbox); HAProxy runs with -db and is stopped by PID",
		AdminTCP:      admin,
		Threads:       2,
		Frontend:      frontend,
		Backend:       Backend,
		CheckInterval: checkInterval,
	}
	for _, h := range d.Hosts {
		c.Servers = append(c.Servers, haproxycfg.Server{Name: h.Name, Addr: h.AppAddr})
	}
	return c.String()
}

func (d *Demo) startHAProxy(ctx context.Context) error {
	dir := filepath.Join(d.Dir, "haproxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	logPath := filepath.Join(dir, "haproxy.log")
	var lastErr error
	// A port picked free may be taken before HAProxy binds it: pick again.
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := pickPorts(2)
		if err != nil {
			return err
		}
		frontend := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		if err := os.WriteFile(cfgPath, []byte(d.haproxyConfig(frontend, admin)), 0o644); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		p, err := proc.Start(proc.Spec{
			Name: "haproxy", Log: logPath, Argv: []string{HAProxyPath, "-f", cfgPath, "-db"},
			// HAProxy holds nothing to flush: if relctl dies, even by SIGKILL, it goes at once.
			DeathSignal: syscall.SIGKILL,
			PidDir:      d.pidDir(),
		})
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		err = proc.WaitListening(ctx, p, 10*time.Second, "", admin, frontend)
		if err == nil {
			d.hap = p
			d.Frontend = "http://" + frontend
			d.AdminAddr = admin
			return nil
		}
		_ = p.Stop(2 * time.Second)
		lastErr = err
		if ctx.Err() != nil || !strings.Contains(err.Error(), "exited") {
			break
		}
	}
	return fmt.Errorf("sandbox: haproxy: %w", lastErr)
}

// LB returns relctl's haproxy driver bound to the demo balancer's admin
// socket: what `relctl apply` uses, for tests and the demo's own checks.
func (d *Demo) LB() (lb.Balancer, error) {
	return lb.New(lb.Config{
		Kind:         lb.KindHAProxy,
		Backend:      Backend,
		DrainTimeout: 5 * time.Second,
		Endpoints:    []lb.Endpoint{{TCP: d.AdminAddr}},
	}, lb.LocalConnector{})
}

// waitAllUp waits until the balancer reports every server UP with a
// passing check.
func (d *Demo) waitAllUp(ctx context.Context, timeout time.Duration) error {
	b, err := d.LB()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for {
		if d.hap != nil && d.hap.Exited() {
			return fmt.Errorf("sandbox: haproxy exited (%v):\n%s", d.hap.Err(), d.hap.LogTail(3000))
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		states, err := b.States(qctx)
		cancel()
		if err == nil {
			up := map[string]bool{}
			var not []string
			for _, s := range states {
				if s.Status == lb.StatusUp && strings.HasPrefix(s.CheckStatus, "L7OK") {
					up[s.Server] = true
				}
			}
			for _, h := range d.Hosts {
				if !up[h.Name] {
					not = append(not, h.Name)
				}
			}
			if len(not) == 0 {
				return nil
			}
			last = describeStates(states)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox: %s: servers not all UP after %s: %s", d.BalancerKind, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func describeStates(states []lb.ServerState) string {
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = fmt.Sprintf("%s=%s(%s)", s.Server, s.Status, s.CheckStatus)
	}
	return strings.Join(parts, " ")
}
