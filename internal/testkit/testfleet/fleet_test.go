package testfleet

import (
	"context"
	"encoding/csv"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/demo/loadgen"
	"github.com/relctl/relctl/internal/fleet"
	"go.yaml.in/yaml/v3"
)

func sshRun(t *testing.T, f *Fleet, i int, cmd ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ssh", append(f.SSHArgs(i), cmd...)...).CombinedOutput()
	return string(out), err
}

// loadN sends n requests to url (4 workers), however long that takes
// within a minute: a count, not a duration, so that a busy machine sends
// as many as an idle one.
func loadN(t *testing.T, url string, n int) loadgen.Stats {
	t.Helper()
	g, err := loadgen.Start(context.Background(), loadgen.Options{URL: url, Concurrency: 4, MaxRequests: n, MaxDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	<-g.Done()
	return g.Stop()
}

func TestSmokeHAProxy(t *testing.T) {
	f := Start(t, Options{Hosts: 3, User: "deploy", Balancer: "haproxy"})
	f.Seed("1.0.0", f.Artifact("1.0.0", nil))

	for i, h := range f.Hosts {
		out, err := sshRun(t, f, i, "cat", h.Path+"/current/VERSION")
		if err != nil || out != "1.0.0\n" {
			t.Fatalf("ssh %s cat VERSION = %q, %v\n%s", h.Name, out, err, f.Logs())
		}
		out, err = sshRun(t, f, i, "id", "-un")
		if err != nil || strings.TrimSpace(out) != "deploy" {
			t.Fatalf("ssh %s id = %q, %v", h.Name, out, err)
		}
		// The app runs as the fleet user, so relctl's stop (over SSH) may signal it.
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s: no app pid", h.Name)
		}
		if uid := procUID(t, pid); uid != f.UID {
			t.Fatalf("%s: app runs as uid %d, want %d", h.Name, uid, f.UID)
		}
	}
	st, err := f.LB.ServerStatus()
	if err != nil || len(st) != 3 || st["web1"] != "UP" || st["web3"] != "UP" {
		t.Fatalf("haproxy status = %v, %v", st, err)
	}
	s := loadN(t, f.LB.Frontend+"/", 200)
	t.Logf("through haproxy: %s", s)
	if s.Requests != 200 || !s.Clean() {
		t.Fatalf("load through haproxy: %s %v %v", s, s.ByStatus, s.FirstErrors)
	}
}

// TestRollingRestartUnderLoad proves the parts compose the way a rollout uses them:
// drain in HAProxy, stop and start over real SSH, enable, with zero client errors.
// Each step waits for what it needs, as relctl does (traffic flowing, web1 without
// a session, both servers UP), and the load runs until traffic has flowed again
// after the restart: a fixed 3 s of load could end before a slow machine restarted
// web1, and the test then proved nothing.
func TestRollingRestartUnderLoad(t *testing.T) {
	f := Start(t, Options{Hosts: 2, Balancer: "haproxy"})
	f.Seed("1.0.0", f.Artifact("1.0.0", nil))
	h := f.Hosts[0]
	bin := h.Path + "/current/bin/demoapp"
	g, err := loadgen.Start(context.Background(), loadgen.Options{URL: f.LB.Frontend + "/slow?ms=20", Concurrency: 4, Rate: 400, MaxRequests: 1 << 20, MaxDuration: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	moreOK := func(n int64, what string) {
		t.Helper()
		want := g.Snapshot().OK + n
		for deadline := time.Now().Add(time.Minute); g.Snapshot().OK < want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d more requests not answered within a minute: %s", what, n, g.Snapshot())
			}
		}
	}
	moreOK(50, "before the drain")
	if out, err := f.LB.Admin("set server shop/web1 state drain"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("drain: %q %v", out, err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		scur, err := serverStat(f.LB, "web1", "scur")
		if err == nil && scur == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web1 still has sessions a minute after the drain: scur %q, %v", scur, err)
		}
	}
	if out, err := sshRun(t, f, 0, bin, "stop", "--dir", h.Path); err != nil {
		t.Fatalf("stop over ssh: %v %s", err, out)
	}
	if out, err := sshRun(t, f, 0, bin, "start", "--dir", h.Path, "--listen", h.AppAddr); err != nil {
		t.Fatalf("start over ssh: %v %s", err, out)
	}
	if out, err := f.LB.Admin("set server shop/web1 state ready"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("ready: %q %v", out, err)
	}
	if err := f.LB.WaitAllUp([]string{"web1", "web2"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	moreOK(50, "after web1 is back")
	s := g.Stop()
	t.Logf("restart under load: %s", s)
	if !s.Clean() {
		t.Fatalf("clients saw errors: %s %v %v", s, s.ByStatus, s.FirstErrors)
	}
}

// serverStat is one column of HAProxy's show stat for a server of the backend.
func serverStat(b *Balancer, server, column string) (string, error) {
	out, err := b.Admin("show stat")
	if err != nil {
		return "", err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return "", fmt.Errorf("parse show stat: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	px, sv, c := col["pxname"], col["svname"], col[column]
	for _, row := range rows[1:] {
		if len(row) > c && row[px] == b.Backend && row[sv] == server {
			return row[c], nil
		}
	}
	return "", fmt.Errorf("no %s/%s in show stat", b.Backend, server)
}

func TestSSHFaults(t *testing.T) {
	f := Start(t, Options{Hosts: 2, Balancer: ""})
	if out, err := sshRun(t, f, 1, "true"); err != nil {
		t.Fatalf("ssh: %v %s", err, out)
	}
	f.StopSSHD(1)
	if out, err := sshRun(t, f, 1, "true"); err == nil || !strings.Contains(out, "refused") {
		t.Fatalf("ssh to a stopped sshd = %v %q", err, out)
	}
	f.StartSSHD(1)
	if out, err := sshRun(t, f, 1, "true"); err != nil {
		t.Fatalf("ssh after StartSSHD: %v %s", err, out)
	}
	f.RotateHostKey(0)
	if out, err := sshRun(t, f, 0, "true"); err == nil || !strings.Contains(out, "Host key verification failed") {
		t.Fatalf("ssh after host key rotation = %v %q", err, out)
	}
	if err := f.WriteKnownHosts(); err != nil {
		t.Fatal(err)
	}
	if out, err := sshRun(t, f, 0, "true"); err != nil {
		t.Fatalf("ssh after trusting the new key: %v %s", err, out)
	}
}

func TestRootUser(t *testing.T) {
	f := Start(t, Options{Hosts: 1, User: "root"})
	f.Seed("1.0.0", f.Artifact("1.0.0", map[string]string{demoapp.ConfFailMigrate: "true"}))
	if out, err := sshRun(t, f, 0, "id", "-un"); err != nil || strings.TrimSpace(out) != "root" {
		t.Fatalf("ssh as root = %q, %v", out, err)
	}
	if v := f.CurrentVersion(0); v != "1.0.0" {
		t.Fatalf("CurrentVersion = %q", v)
	}
	// The release's app.conf reaches migrate, run the way the inventory runs it.
	rel := f.Hosts[0].Path + "/releases/1.0.0"
	if out, err := sshRun(t, f, 0, rel+"/bin/demoapp", "migrate", "--log", f.MigrationsLog, "--version", "1.0.0", "--phase", "pre"); err == nil {
		t.Fatalf("migrate with fail_migrate succeeded: %s", out)
	}
	if m := f.Migrations(); len(m) != 1 || !m[0].Failed || m[0].Phase != "pre" {
		t.Fatalf("migrations = %+v", m)
	}
}

func TestNginx(t *testing.T) {
	f := Start(t, Options{Hosts: 2, Balancer: "nginx"})
	f.Seed("2.0.0", f.Artifact("2.0.0", nil))
	// The fleet user edits the upstream and reloads nginx, as relctl's driver does.
	if out, err := f.RunAs("sh", "-c", "sed -i 's|"+f.Hosts[0].AppAddr+";|"+f.Hosts[0].AppAddr+" down;|' "+f.LB.UpstreamFile+" && "+f.LB.NginxCommand+" -t && "+f.LB.NginxCommand+" -s reload"); err != nil {
		t.Fatalf("reload as %s: %v\n%s", f.User, err, out)
	}
	s := loadN(t, f.LB.Frontend+"/", 200)
	t.Logf("through nginx: %s", s)
	if s.Requests != 200 || !s.Clean() {
		t.Fatalf("load through nginx: %s %v %v", s, s.ByStatus, s.FirstErrors)
	}
}

func TestInventory(t *testing.T) {
	f := &Fleet{
		User: "deploy", SSHPort: 2222, IdentityFile: "/r/id", KnownHostsFile: "/r/kh",
		MigrationsLog: "/r/migrations.log", ArtifactDir: "/r/dist",
		Hosts: []Host{
			{Name: "web1", IP: "127.0.0.11", SSHAddr: "127.0.0.11:2222", AppAddr: "127.0.0.11:8080", Path: "/r/hosts/web1/srv/shop"},
			{Name: "web2", IP: "127.0.0.12", SSHAddr: "127.0.0.12:2222", AppAddr: "127.0.0.12:8080", Path: "/r/hosts/web2/srv/shop"},
		},
		LB: &Balancer{Kind: "haproxy", Backend: "shop", AdminTCP: "127.0.0.10:9999"},
	}
	s, err := f.Inventory("rollout:\n  batches: [2]\n")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		SSH      map[string]any    `yaml:"ssh"`
		Artifact map[string]string `yaml:"artifact"`
		Commands map[string]string `yaml:"commands"`
		Rollout  map[string]any    `yaml:"rollout"`
		Balancer struct {
			Kind      string              `yaml:"kind"`
			Endpoints []map[string]string `yaml:"endpoints"`
		} `yaml:"balancer"`
		Hosts []struct {
			Name, Address, Server, Path string
			Labels                      []string
			Vars                        map[string]string
		} `yaml:"hosts"`
	}
	dec := yaml.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	if doc.Commands["migrate"] != "{{.Release}}/bin/demoapp migrate --log /r/migrations.log --version {{.Version}} --phase pre" ||
		doc.Commands["health"] != "{{.Path}}/current/bin/demoapp check --url http://{{.Vars.listen}} --version {{.Version}}" ||
		doc.Artifact["source"] != "/r/dist/shop-{{.Version}}.tar.gz" {
		t.Fatalf("commands/artifact wrong:\n%s", s)
	}
	if len(doc.Hosts) != 2 || doc.Hosts[1].Vars["listen"] != "127.0.0.12:8080" || doc.Hosts[0].Labels[0] != "canary" || doc.Hosts[1].Path != "/r/hosts/web2/srv/shop" {
		t.Fatalf("hosts wrong: %+v\n%s", doc.Hosts, s)
	}
	if doc.Balancer.Kind != "haproxy" || doc.Balancer.Endpoints[0]["tcp"] != "127.0.0.10:9999" {
		t.Fatalf("balancer wrong:\n%s", s)
	}
	if len(doc.Rollout) != 1 || strings.Count(s, "rollout:") != 1 {
		t.Fatalf("extra did not replace the rollout section:\n%s", s)
	}
	// known_hosts is a list or a string (fleet.StringList): ask the loader.
	inv, err := fleet.Parse("fleet.yaml", []byte(s))
	if err != nil {
		t.Fatalf("fleet.Parse: %v\n%s", err, s)
	}
	if len(inv.SSH.KnownHosts) != 1 || inv.SSH.KnownHosts[0] != "/r/kh" || *inv.SSH.UseSSHConfig || inv.SSH.Port != 2222 {
		t.Fatalf("ssh wrong: %+v\n%s", inv.SSH, s)
	}
}
