package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/demo/demoapp"
)

// An inventory that leaves the SSH port out gets it from ssh_config: the
// hosts' sshd listen on 2222, which only ~/.ssh/config says.
func TestSSHConfigGivesThePort(t *testing.T) {
	s := newStage(t, 2, "haproxy", "", func(inv string) string {
		inv = regexp.MustCompile(`(?m)^  port: 2222\n`).ReplaceAllString(inv, "")
		inv = strings.ReplaceAll(inv, "use_ssh_config: false", "use_ssh_config: true")
		return regexp.MustCompile(`address: (127\.0\.0\.\d+):2222`).ReplaceAllString(inv, "address: $1")
	})
	data, _ := os.ReadFile(s.fleetFile)
	if strings.Contains(string(data), "2222") || !strings.Contains(string(data), "use_ssh_config: true") {
		t.Fatalf("the inventory still names port 2222:\n%s", data)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte("Host 127.0.0.*\n  Port 2222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	code, out, errs := s.relctl("status")
	if code != 0 || strings.Count(out, "1.0.0") < 2 {
		t.Fatalf("status with the port from ssh_config: exit %d\n%s%s", code, out, errs)
	}
	// Without it, port 22 is tried, and nothing listens there.
	if err := os.Remove(filepath.Join(home, ".ssh", "config")); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := s.relctl("status"); code == 0 || !strings.Contains(out, ":22") {
		t.Errorf("status without ssh_config: exit %d\n%s", code, out)
	}
}

// A release rebuilt under the same version is refused, naming the host, the
// artifact and the version to build instead, never "nothing to do".
func TestRebuiltReleaseIsRefused(t *testing.T) {
	s := newStage(t, 2, "haproxy", "rollout:\n  batches: [1]\n  pause_after_canary: false\n", nil)
	if code, _, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain"); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errs)
	}
	s.f.Artifact("1.1.0", map[string]string{demoapp.ConfStartDelay: "1ms"}) // same version, other bytes
	for _, args := range [][]string{{"apply", "--to", "1.1.0", "--yes", "--plain"}, {"plan", "--to", "1.1.0"}} {
		code, out, errs := s.relctl(args...)
		if code != 2 || !strings.Contains(errs, "1.1.0 on web1 differs from ") || !strings.Contains(errs, "shop-1.1.0.tar.gz: a release version is immutable — build 1.1.1") || strings.Contains(out, "nothing to do") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
}
