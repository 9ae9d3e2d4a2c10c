package testfleet

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/demo/haproxycfg"
	"github.com/relctl/relctl/internal/demo/proc"
)

// Backend is the name of the balancer backend (HAProxy) or upstream (nginx).
const Backend = "shop"

// Balancer is the fleet's HAProxy or nginx.
type Balancer struct {
	Kind     string // "haproxy" | "nginx"
	Frontend string // http://127.0.0.10:8000 (nginx: :8001)
	Backend  string // "shop"
	// HAProxy: the admin socket (mode 666, level admin) and its TCP twin.
	AdminSocket, AdminTCP string
	// nginx: the file holding `upstream shop { server ...; }` (owned by the fleet
	// user), and the command prefix for `-t` / `-s reload` (lb.Config.NginxBinary).
	// nginx runs as the fleet user so that user can reload it.
	UpstreamFile string
	NginxCommand string
	ConfigFile   string

	proc *proc.Proc
}

func (f *Fleet) startBalancer(kind, ip string) (*Balancer, error) {
	dir := filepath.Join(f.Root, kind)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	switch kind {
	case "haproxy":
		return f.startHAProxy(dir, ip)
	case "nginx":
		return f.startNginx(dir, ip)
	}
	return nil, fmt.Errorf("unknown balancer %q", kind)
}

func (f *Fleet) startHAProxy(dir, ip string) (*Balancer, error) {
	b := &Balancer{
		Kind:        "haproxy",
		Backend:     Backend,
		Frontend:    fmt.Sprintf("http://%s:%d", ip, HAProxyPort),
		AdminSocket: filepath.Join(f.Root, "admin.sock"),
		AdminTCP:    fmt.Sprintf("%s:%d", ip, HAProxyAdminPort),
		ConfigFile:  filepath.Join(dir, "haproxy.cfg"),
	}
	cfg := haproxycfg.Config{
		Origin:        "relctl's testfleet",
		AdminSocket:   b.AdminSocket,
		AdminTCP:      b.AdminTCP,
		Frontend:      fmt.Sprintf("%s:%d", ip, HAProxyPort),
		Backend:       Backend,
		CheckInterval: 100 * time.Millisecond,
	}
	for _, h := range f.Balanced() {
		cfg.Servers = append(cfg.Servers, haproxycfg.Server{Name: h.Name, Addr: h.AppAddr})
	}
	if err := os.WriteFile(b.ConfigFile, []byte(cfg.String()), 0o644); err != nil {
		return nil, err
	}
	p, err := proc.Start(proc.Spec{Name: "haproxy", Log: filepath.Join(dir, "haproxy.log"),
		Argv: []string{HAProxyPath, "-f", b.ConfigFile, "-db"}})
	if err != nil {
		return nil, err
	}
	b.proc = p
	if err := proc.WaitListening(context.Background(), p, 10*time.Second, "", b.AdminTCP, strings.TrimPrefix(b.Frontend, "http://")); err != nil {
		_ = p.Stop(time.Second)
		return nil, err
	}
	return b, nil
}

func (f *Fleet) startNginx(dir, ip string) (*Balancer, error) {
	b := &Balancer{
		Kind:         "nginx",
		Backend:      Backend,
		Frontend:     fmt.Sprintf("http://%s:%d", ip, NginxPort),
		UpstreamFile: filepath.Join(dir, "upstream.conf"),
		ConfigFile:   filepath.Join(dir, "nginx.conf"),
	}
	errorLog := filepath.Join(dir, "error.log")
	b.NginxCommand = fmt.Sprintf("%s -p %s/ -c %s -e %s", NginxPath, dir, b.ConfigFile, errorLog)
	var up strings.Builder
	fmt.Fprintf(&up, "upstream %s {\n", Backend)
	for _, h := range f.Balanced() {
		fmt.Fprintf(&up, "    server %s;\n", h.AppAddr)
	}
	up.WriteString("}\n")
	cfg := fmt.Sprintf(`# written by relctl's testfleet
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[2]s;
daemon off;
events { worker_connections 512; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include %[3]s;
    server {
        listen %[4]s:%[5]d;
        location / {
            proxy_pass http://%[6]s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502 http_503;
        }
    }
}
`, dir, errorLog, b.UpstreamFile, ip, NginxPort, Backend)
	for path, content := range map[string]string{b.UpstreamFile: up.String(), b.ConfigFile: cfg} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	// nginx runs as the fleet user, who must be able to rewrite the upstream file
	// (atomically: a new file in dir) and signal the master for a reload.
	for _, d := range []string{dir, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := chownTree(dir, f.UID, f.GID); err != nil {
		return nil, err
	}
	p, err := proc.Start(proc.Spec{Name: "nginx", Log: filepath.Join(dir, "nginx.log"),
		Argv: strings.Fields(b.NginxCommand), Cred: f.cred(), Env: f.userEnv()})
	if err != nil {
		return nil, err
	}
	b.proc = p
	if err := proc.WaitListening(context.Background(), p, 10*time.Second, "", strings.TrimPrefix(b.Frontend, "http://")); err != nil {
		_ = p.Stop(time.Second)
		return nil, fmt.Errorf("%w\n%s", err, proc.Tail(errorLog, 2000))
	}
	return b, nil
}

func (b *Balancer) stop() {
	// HAProxy and nginx both stop at once on SIGTERM.
	_ = b.proc.Stop(5 * time.Second)
}

// Admin sends one command to HAProxy's TCP admin socket and returns the answer.
func (b *Balancer) Admin(cmd string) (string, error) {
	if b.Kind != "haproxy" {
		return "", fmt.Errorf("%s has no admin socket", b.Kind)
	}
	c, err := net.DialTimeout("tcp", b.AdminTCP, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	out, err := io.ReadAll(bufio.NewReader(c))
	return string(out), err
}

// ServerStatus returns HAProxy's status ("UP", "DOWN", "DRAIN", "MAINT", "UP 1/2",
// ...) of every server in the backend, by server name.
func (b *Balancer) ServerStatus() (map[string]string, error) {
	out, err := b.Admin("show stat")
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("parse show stat: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	px, sv, st := col["pxname"], col["svname"], col["status"]
	states := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) <= st || row[px] != b.Backend || row[sv] == "BACKEND" || row[sv] == "FRONTEND" {
			continue
		}
		states[row[sv]] = row[st]
	}
	return states, nil
}

// WaitAllUp waits until HAProxy reports every server UP (nginx: until the frontend
// answers 200).
func (b *Balancer) WaitAllUp(servers []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if b.Kind == "nginx" {
			resp, err := http.Get(b.Frontend + "/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return nil
				}
				last = resp.Status
			} else {
				last = err.Error()
			}
		} else {
			st, err := b.ServerStatus()
			if err != nil {
				last = err.Error()
			} else {
				up := 0
				for _, s := range servers {
					if st[s] == "UP" {
						up++
					}
				}
				if up == len(servers) {
					return nil
				}
				last = fmt.Sprint(st)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: servers not all up after %s: %s", b.Kind, timeout, last)
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
