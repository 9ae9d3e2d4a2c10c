package haproxycfg

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample() Config {
	return Config{
		Origin:        "a test",
		AdminSocket:   "/run/x/admin.sock",
		AdminTCP:      "127.0.0.1:9999",
		Threads:       2,
		Frontend:      "127.0.0.1:8000",
		Backend:       "shop",
		CheckInterval: 150 * time.Millisecond,
		Servers:       []Server{{"web1", "127.0.0.1:8081"}, {"web2", "127.0.0.1:8082"}},
	}
}

func TestString(t *testing.T) {
	got := sample().String()
	for _, want := range []string{
		"# written by a test\n",
		"    stats socket /run/x/admin.sock mode 666 level admin\n    stats socket ipv4@127.0.0.1:9999 level admin\n",
		"    nbthread 2\n",
		"frontend www\n    bind 127.0.0.1:8000\n    default_backend shop\n",
		"backend shop\n",
		"    default-server inter 150ms fall 2 rise 2\n    server web1 127.0.0.1:8081 check\n    server web2 127.0.0.1:8082 check\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	c := sample()
	c.AdminSocket, c.Threads = "", 0
	got = c.String()
	if strings.Contains(got, "mode 666") || strings.Contains(got, "nbthread") {
		t.Errorf("no unix socket and no nbthread asked for, got:\n%s", got)
	}
}

// TestHAProxyAccepts has HAProxy check the text it will run (haproxy -c).
func TestHAProxyAccepts(t *testing.T) {
	const haproxy = "/usr/sbin/haproxy"
	if _, err := os.Stat(haproxy); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing and CI is set", haproxy)
		}
		t.Skipf("%s not installed", haproxy)
	}
	dir := t.TempDir()
	c := sample()
	c.AdminSocket = filepath.Join(dir, "admin.sock")
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, c.String())
	}
	// And one it must refuse, so the check above can fail.
	c.Servers = append(c.Servers, Server{"web1", "not-an-address"})
	if err := os.WriteFile(path, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", path).CombinedOutput(); err == nil {
		t.Fatalf("haproxy -c accepted a bad server line:\n%s", out)
	}
}
