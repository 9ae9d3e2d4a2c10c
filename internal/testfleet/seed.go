package testfleet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demoapp"
)

// demoBuild caches the demoapp binary for the life of the test binary.
var demoBuild struct {
	once sync.Once
	path string
	err  error
}

// BuildDemoApp builds ./cmd/demoapp once per test binary and returns its path. The
// binary lives in a per-module cache directory under $TMPDIR (replaced atomically,
// so concurrently running test binaries can share it) rather than in a temp dir no
// test could remove.
func BuildDemoApp(t testing.TB) string {
	t.Helper()
	demoBuild.once.Do(func() {
		demoBuild.path, demoBuild.err = buildDemoApp()
	})
	if demoBuild.err != nil {
		t.Fatalf("testfleet: build demoapp: %v", demoBuild.err)
	}
	return demoBuild.path
}

func buildDemoApp() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the relctl module")
	}
	sum := sha256.Sum256([]byte(mod))
	dir := filepath.Join(os.TempDir(), "relctl-testfleet-cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	os.Chmod(dir, 0o755)
	out := filepath.Join(dir, "demoapp-"+hex.EncodeToString(sum[:6]))
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/relctl/relctl/cmd/demoapp")
	cmd.Dir = filepath.Dir(mod)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

// Artifact builds shop-<version>.tar.gz into ArtifactDir, embedding the demoapp
// binary, and returns its path. conf becomes the release's app.conf (faults such as
// demoapp.ConfFailHealth).
func (f *Fleet) Artifact(version string, conf map[string]string) string {
	f.t.Helper()
	path, _, err := demoapp.BuildArtifact(f.ArtifactDir, demoapp.ArtifactOptions{
		Version: version, AppBinary: BuildDemoApp(f.t), AppConf: conf,
	})
	if err != nil {
		f.t.Fatalf("testfleet: %v", err)
	}
	return path
}

// Seed makes every host run version: the artifact is unpacked into
// <path>/releases/<version>/, current points at it, and the app is started on the
// host's AppAddr as the fleet user. Seed returns when every app is healthy and, with
// a balancer, every server is up in it.
func (f *Fleet) Seed(version, artifact string) {
	f.t.Helper()
	errs := make([]error, len(f.Hosts))
	var wg sync.WaitGroup
	for i := range f.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f.seedHost(i, version, artifact) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			f.t.Fatalf("testfleet: seed %s: %v", version, err)
		}
	}
	if f.LB != nil {
		names := make([]string, len(f.Hosts))
		for i, h := range f.Hosts {
			names[i] = h.Name
		}
		if err := f.LB.WaitAllUp(names, 15*time.Second); err != nil {
			f.t.Fatalf("testfleet: seed %s: %v\n%s", version, err, f.Logs())
		}
	}
}

func (f *Fleet) seedHost(i int, version, artifact string) error {
	h := f.Hosts[i]
	rel := filepath.Join(h.Path, "releases", version)
	if err := os.RemoveAll(rel); err != nil {
		return err
	}
	if err := demoapp.Unpack(artifact, rel); err != nil {
		return err
	}
	if err := chownTree(filepath.Join(h.Path, "releases"), f.UID, f.GID); err != nil {
		return err
	}
	cur := filepath.Join(h.Path, "current")
	tmp := cur + ".seed-tmp"
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	if err := os.Lchown(tmp, f.UID, f.GID); err != nil {
		return err
	}
	if err := os.Rename(tmp, cur); err != nil {
		return err
	}
	bin := filepath.Join(cur, "bin", "demoapp")
	// A previous Seed's app may still run another version: replace it.
	if out, err := f.RunAs(bin, "stop", "--dir", h.Path, "--timeout", "10s"); err != nil {
		return fmt.Errorf("%s: stop: %v\n%s", h.Name, err, out)
	}
	if out, err := f.RunAs(bin, "start", "--dir", h.Path, "--listen", h.AppAddr); err != nil {
		return fmt.Errorf("%s: start: %v\n%s", h.Name, err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := f.RunAs(bin, "check", "--url", "http://"+h.AppAddr, "--version", version)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not healthy: %s", h.Name, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
