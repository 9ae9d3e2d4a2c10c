package sandbox

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/relctl/relctl/internal/demo/proc"
	"github.com/relctl/relctl/internal/demo/sshserver"
	"golang.org/x/crypto/ssh"
)

// startHosts writes the client key, starts one SSH server per host (each
// with its own host key and root directory) and writes known_hosts.
func (d *Demo) startHosts() error {
	clientPub, err := sshserver.WriteKeyPair(d.IdentityFile, "relctl-demo")
	if err != nil {
		return fmt.Errorf("sandbox: client key: %w", err)
	}
	ports, err := pickPorts(d.o.Hosts)
	if err != nil {
		return err
	}
	d.Hosts = make([]Host, d.o.Hosts)
	d.ssh = make([]*sshserver.Server, d.o.Hosts)
	errs := make([]error, d.o.Hosts)
	var wg sync.WaitGroup
	for i := range d.Hosts {
		name := "web" + strconv.Itoa(i+1)
		root := filepath.Join(d.Dir, "hosts", name)
		d.Hosts[i] = Host{
			Name:    name,
			Root:    root,
			Path:    filepath.Join(root, "srv", "shop"),
			AppAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])),
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.startHost(i, clientPub)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	var kh strings.Builder
	for i, h := range d.Hosts {
		kh.WriteString(sshserver.KnownHostsLine(h.SSHAddr, d.ssh[i].HostKey()))
	}
	if err := os.WriteFile(d.KnownHosts, []byte(kh.String()), 0o644); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

func (d *Demo) startHost(i int, clientPub ssh.PublicKey) error {
	h := &d.Hosts[i]
	if err := os.MkdirAll(h.Path, 0o755); err != nil {
		return fmt.Errorf("sandbox: %s: %w", h.Name, err)
	}
	hostKey, err := sshserver.NewEd25519Signer()
	if err != nil {
		return fmt.Errorf("sandbox: %s: host key: %w", h.Name, err)
	}
	// Keep the public half beside the host, as a real host would have it.
	if err := os.WriteFile(filepath.Join(h.Root, "ssh_host_ed25519_key.pub"), ssh.MarshalAuthorizedKey(hostKey.PublicKey()), 0o644); err != nil {
		return fmt.Errorf("sandbox: %s: %w", h.Name, err)
	}
	srv, err := sshserver.Start(sshserver.Config{
		Addr:           "127.0.0.1:0",
		HostKey:        hostKey,
		AuthorizedKeys: []ssh.PublicKey{clientPub},
		Dir:            h.Root,
		Env:            d.hostEnv(h),
		MaxSessions:    10, // like OpenSSH
	})
	if err != nil {
		return fmt.Errorf("sandbox: %s: %w", h.Name, err)
	}
	d.ssh[i] = srv
	h.SSHAddr = srv.Addr()
	return nil
}

// hostEnv is the environment of every command run on host h. The lifeline
// makes every app the host starts end when this process does, even when it
// is SIGKILLed and cannot stop them.
func (d *Demo) hostEnv(h *Host) []string {
	return []string{"RELCTL_DEMO_HOST=" + h.Name, proc.LifelineEnv + "=" + d.lifeline}
}

// portLow..portHigh is where pickPorts looks first: below Linux's default
// ephemeral range (32768-60999), so that an app restarted hours later never
// finds its port taken by the source port of some outgoing connection.
const (
	portLow  = 20000
	portHigh = 32000
)

// pickPorts returns n distinct TCP ports that are free on 127.0.0.1 right
// now. Each is held while the others are chosen, so they never repeat.
func pickPorts(n int) ([]int, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	lo, hi := portLow, portHigh
	if elo, ehi, ok := ephemeralRange(); ok && elo < hi && ehi >= lo {
		hi = elo - 1 // the system's range reaches ours: stay below it
	}
	ports := make([]int, 0, n)
	if hi-lo >= 1000 {
		for tries := 0; len(ports) < n && tries < 50*n; tries++ {
			p := lo + mrand.IntN(hi-lo)
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
			held = append(held, l)
			ports = append(ports, p)
		}
	}
	// Fallback: let the kernel choose.
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("sandbox: pick a free port: %w", err)
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralRange reads Linux's ip_local_port_range.
func ephemeralRange() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	return lo, hi, err1 == nil && err2 == nil && lo <= hi
}
