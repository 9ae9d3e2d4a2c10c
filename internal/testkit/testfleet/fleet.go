// Package testfleet starts real parts for integration tests: one OpenSSH sshd per
// host on 127.0.0.x, a deploy user, host directories laid out as relctl's host
// contract says, the demo app running on every host, and HAProxy or nginx in front.
// Everything it starts is stopped by PID, and its files removed, in t.Cleanup.
//
// It needs root (CI runs as root on Debian). Without root or the binaries it skips
// the test, unless $CI is set, where it fails: CI must never silently skip.
//
// Addresses: hosts are 127.0.0.<FirstIP+i> (SSH on SSHPort, app on AppPort) and the
// balancer frontend is on 127.0.0.<FirstIP-1> (HAProxy :8000, nginx :8001, HAProxy
// admin :9999). Fleets in test binaries that run at the same time lock their
// addresses; with FirstIP 0 a fleet moves to the next free block.
package testfleet

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/demo/proc"
	"github.com/relctl/relctl/internal/demo/sshserver"
	"golang.org/x/crypto/ssh"
)

// Binaries the fleet runs.
const (
	SSHDPath    = "/usr/sbin/sshd"
	HAProxyPath = "/usr/sbin/haproxy"
	NginxPath   = "/usr/sbin/nginx"
)

// Ports on the frontend address.
const (
	HAProxyPort      = 8000
	NginxPort        = 8001
	HAProxyAdminPort = 9999
)

// Options shape a fleet. Zero values take the defaults in brackets.
type Options struct {
	Hosts    int    // [5]
	User     string // ["deploy"] (created with useradd -m if absent) or "root"
	FirstIP  int    // [0 = 11, or the next free block]; 127.0.0.<FirstIP> is web1
	SSHPort  int    // [2222]
	AppPort  int    // [8080]
	Balancer string // "haproxy" | "nginx" | "" (none)
	// Workers is how many of the Hosts (the last ones, named work1,
	// work2, ...) are background workers: they run the same app but are
	// not in the balancer, and Inventory gives them role worker with
	// balancer: none (the others role web).
	Workers int
}

// Host is one application server of the fleet.
type Host struct {
	Name        string // web1, web2, ...
	IP          string // 127.0.0.11
	SSHAddr     string // 127.0.0.11:2222
	AppAddr     string // 127.0.0.11:8080
	Path        string // the host's app path, e.g. <root>/hosts/web1/srv/shop
	HostKeyFile string // sshd's private host key
}

// Fleet is a running set of hosts.
type Fleet struct {
	Root           string // temp root (0755), removed in cleanup
	Hosts          []Host
	User           string
	UID, GID       int
	Home           string
	IdentityFile   string // unencrypted ed25519 client key authorised on every host
	KnownHostsFile string // [ip]:port entries for every host key
	MigrationsLog  string // where the demo app's migrate command records runs
	ArtifactDir    string // <root>/dist: Artifact writes shop-<v>.tar.gz here
	LB             *Balancer
	Workers        int // the last Workers hosts are workers, outside the balancer
	SSHPort        int
	AppPort        int

	t     testing.TB
	mu    sync.Mutex
	sshd  []*proc.Proc
	locks *ipLocks
}

// Start starts a fleet; everything stops in t.Cleanup. Call Fleet methods from
// the test goroutine (they t.Fatal on failure).
func Start(t testing.TB, o Options) *Fleet {
	t.Helper()
	if o.Hosts == 0 {
		o.Hosts = 5
	}
	if o.User == "" {
		o.User = "deploy"
	}
	if o.SSHPort == 0 {
		o.SSHPort = 2222
	}
	if o.AppPort == 0 {
		o.AppPort = 8080
	}
	Require(t, o.Balancer)

	f := &Fleet{t: t, SSHPort: o.SSHPort, AppPort: o.AppPort, User: o.User, Workers: o.Workers}
	root, err := os.MkdirTemp("", "relctl-fleet-")
	if err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	f.Root = root
	t.Cleanup(f.close)
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	if err := traversable(root); err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	if err := f.ensureUser(); err != nil {
		t.Fatalf("testfleet: user %s: %v", o.User, err)
	}
	first, locks, err := allocate(o)
	if err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	f.locks = locks

	f.IdentityFile = filepath.Join(root, "id_ed25519")
	clientKey, err := sshserver.WriteKeyPair(f.IdentityFile, "relctl-testfleet")
	if err != nil {
		t.Fatalf("testfleet: client key: %v", err)
	}
	authKeys := filepath.Join(root, "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(clientKey), 0o644); err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	f.KnownHostsFile = filepath.Join(root, "known_hosts")
	f.MigrationsLog = filepath.Join(root, "migrations.log")
	f.ArtifactDir = filepath.Join(root, "dist")
	if err := f.makeUserFile(f.MigrationsLog, 0o666); err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	if err := os.MkdirAll(f.ArtifactDir, 0o755); err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("testfleet: %v", err)
	}

	f.sshd = make([]*proc.Proc, o.Hosts)
	for i := range o.Hosts {
		ip := fmt.Sprintf("127.0.0.%d", first+i)
		name := fmt.Sprintf("web%d", i+1)
		if w := i - (o.Hosts - o.Workers); w >= 0 {
			name = fmt.Sprintf("work%d", w+1)
		}
		dir := filepath.Join(root, "hosts", name)
		h := Host{
			Name: name, IP: ip,
			SSHAddr:     net.JoinHostPort(ip, strconv.Itoa(o.SSHPort)),
			AppAddr:     net.JoinHostPort(ip, strconv.Itoa(o.AppPort)),
			Path:        filepath.Join(dir, "srv", "shop"),
			HostKeyFile: filepath.Join(dir, "ssh_host_ed25519_key"),
		}
		if err := os.MkdirAll(h.Path, 0o755); err != nil {
			t.Fatalf("testfleet: %v", err)
		}
		if err := os.Chown(h.Path, f.UID, f.GID); err != nil {
			t.Fatalf("testfleet: %v", err)
		}
		if _, err := sshserver.WriteKeyPair(h.HostKeyFile, "root@"+name); err != nil {
			t.Fatalf("testfleet: host key: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(sshdConfig(h, dir, authKeys)), 0o644); err != nil {
			t.Fatalf("testfleet: %v", err)
		}
		f.Hosts = append(f.Hosts, h)
	}
	if err := f.WriteKnownHosts(); err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	// Start the daemons in parallel: each sshd takes a moment to come up.
	errs := make([]error, o.Hosts)
	var wg sync.WaitGroup
	for i := range f.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f.startSSHD(i) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("testfleet: %v", err)
		}
	}
	if o.Balancer != "" {
		lb, err := f.startBalancer(o.Balancer, fmt.Sprintf("127.0.0.%d", first-1))
		if err != nil {
			t.Fatalf("testfleet: %v", err)
		}
		f.LB = lb
	}
	return f
}

// Require skips the test (or, with $CI set, fails it) when this machine cannot run
// a fleet: not root, or sshd or the balancer binary missing.
func Require(t testing.TB, balancer string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (testfleet starts sshd and creates users)")
	}
	need := []string{SSHDPath}
	switch balancer {
	case "haproxy":
		need = append(need, HAProxyPath)
	case "nginx":
		need = append(need, NginxPath)
	case "":
	default:
		t.Fatalf("testfleet: unknown balancer %q (want haproxy, nginx or empty)", balancer)
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "testfleet needs " + strings.Join(missing, ", ") + " (apt-get install openssh-server haproxy nginx; run as root)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip(msg)
}

// traversable checks that every directory above dir lets other users through.
func traversable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not traversable by other users (mode %s): set TMPDIR to a directory that is", d, st.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// allocate picks and locks the fleet's loopback block: the frontend address and
// one address per host.
func allocate(o Options) (int, *ipLocks, error) {
	free := func(first int) bool {
		fe := fmt.Sprintf("127.0.0.%d", first-1)
		for _, p := range []int{HAProxyPort, NginxPort, HAProxyAdminPort} {
			if !portFree(net.JoinHostPort(fe, strconv.Itoa(p))) {
				return false
			}
		}
		for i := range o.Hosts {
			ip := fmt.Sprintf("127.0.0.%d", first+i)
			if !portFree(net.JoinHostPort(ip, strconv.Itoa(o.SSHPort))) || !portFree(net.JoinHostPort(ip, strconv.Itoa(o.AppPort))) {
				return false
			}
		}
		return true
	}
	if o.FirstIP != 0 {
		if o.FirstIP < 2 || o.FirstIP+o.Hosts-1 > 254 {
			return 0, nil, fmt.Errorf("FirstIP %d with %d hosts is outside 127.0.0.2-254", o.FirstIP, o.Hosts)
		}
		deadline := time.Now().Add(3 * time.Minute)
		for {
			l, err := tryLockIPs(o.FirstIP-1, o.FirstIP+o.Hosts-1)
			if err == nil {
				if !free(o.FirstIP) {
					l.release()
					return 0, nil, fmt.Errorf("ports on 127.0.0.%d-%d are in use by something else", o.FirstIP-1, o.FirstIP+o.Hosts-1)
				}
				return o.FirstIP, l, nil
			}
			if err != errBusy || time.Now().After(deadline) {
				return 0, nil, fmt.Errorf("lock 127.0.0.%d-%d: %w", o.FirstIP-1, o.FirstIP+o.Hosts-1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// After the default block, jump far from addresses other tests hand-pick
	// (127.0.0.21, ...); blocks stay readable: 100-105, 110-115, ...
	step := (o.Hosts + 1 + 9) / 10 * 10
	for first := 11; first+o.Hosts-1 <= 254; first += step {
		if first > 11 && first < 101 {
			first = 101
		}
		l, err := tryLockIPs(first-1, first+o.Hosts-1)
		if err == errBusy {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		if free(first) {
			return first, l, nil
		}
		l.release()
	}
	return 0, nil, fmt.Errorf("no free block of %d loopback addresses", o.Hosts+1)
}

// ensureUser finds (or creates) the fleet user and makes sure sshd will let it in.
func (f *Fleet) ensureUser() error {
	u, err := user.Lookup(f.User)
	if err != nil {
		out, cerr := exec.Command("useradd", "-m", "-s", "/bin/sh", f.User).CombinedOutput()
		// Another test binary may have created it meanwhile.
		if u, err = user.Lookup(f.User); err != nil {
			return fmt.Errorf("useradd: %v %s", cerr, out)
		}
	}
	f.UID, _ = strconv.Atoi(u.Uid)
	f.GID, _ = strconv.Atoi(u.Gid)
	f.Home = u.HomeDir
	// With UsePAM no, sshd refuses accounts whose password field starts with "!"
	// (useradd's default). "*" means "no password" without locking the account.
	locked, err := shadowLocked(f.User)
	if err != nil {
		return err
	}
	if locked {
		if f.User == "root" {
			return fmt.Errorf("root's password field starts with \"!\", so sshd (UsePAM no) refuses it: use User deploy")
		}
		if out, err := exec.Command("usermod", "-p", "*", f.User).CombinedOutput(); err != nil {
			return fmt.Errorf("unlock: %v %s", err, out)
		}
	}
	return nil
}

// shadowLocked reports whether name's /etc/shadow password starts with "!".
func shadowLocked(name string) (bool, error) {
	b, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) > 1 && fields[0] == name {
			return strings.HasPrefix(fields[1], "!"), nil
		}
	}
	return false, nil
}

// makeUserFile creates an empty file owned by the fleet user.
func (f *Fleet) makeUserFile(path string, mode os.FileMode) error {
	if err := os.WriteFile(path, nil, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return os.Chown(path, f.UID, f.GID)
}

// cred returns the credential to run commands as the fleet user (nil for root).
func (f *Fleet) cred() *syscall.Credential {
	if f.UID == 0 {
		return nil
	}
	return &syscall.Credential{Uid: uint32(f.UID), Gid: uint32(f.GID)}
}

// userEnv is the environment of commands run as the fleet user.
func (f *Fleet) userEnv() []string {
	return []string{"HOME=" + f.Home, "USER=" + f.User, "LOGNAME=" + f.User, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
}

// RunAs runs argv on the local machine as the fleet user, like a command over SSH
// would, and returns its combined output.
func (f *Fleet) RunAs(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = f.userEnv()
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: f.cred()}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// close stops everything in reverse order of starting, then removes the root.
func (f *Fleet) close() {
	for _, h := range f.Hosts {
		if pid, ok := demoapp.ServingPid(h.Path); ok {
			if _, err := proc.Terminate(pid, 10*time.Second); err != nil {
				f.t.Logf("testfleet: stop app on %s: %v", h.Name, err)
			}
		}
	}
	if f.LB != nil {
		f.LB.stop()
	}
	f.mu.Lock()
	for _, p := range f.sshd {
		_ = p.Stop(5 * time.Second)
	}
	f.mu.Unlock()
	f.locks.release()
	if f.Root != "" {
		if err := os.RemoveAll(f.Root); err != nil {
			f.t.Logf("testfleet: remove %s: %v", f.Root, err)
		}
	}
}

// Logs returns the tails of the fleet's logs (sshd, balancer, apps), for a test to
// print when it fails.
func (f *Fleet) Logs() string {
	var b strings.Builder
	for i, h := range f.Hosts {
		fmt.Fprintf(&b, "--- %s sshd ---\n%s\n", h.Name, proc.Tail(filepath.Join(f.hostDir(i), "sshd.log"), 1500))
		fmt.Fprintf(&b, "--- %s app ---\n%s\n", h.Name, proc.Tail(filepath.Join(h.Path, demoapp.LogFile), 1500))
	}
	if f.LB != nil {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", f.LB.Kind, f.LB.proc.LogTail(3000))
	}
	return b.String()
}

func (f *Fleet) hostDir(i int) string { return filepath.Join(f.Root, "hosts", f.Hosts[i].Name) }

// Balanced returns the hosts that are in the balancer: all but the workers.
func (f *Fleet) Balanced() []Host { return f.Hosts[:len(f.Hosts)-f.Workers] }
