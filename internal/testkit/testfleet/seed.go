package testfleet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
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

// moduleGoMod finds relctl's go.mod: next to this source file when the tree is
// there (any working directory), else from the go tool.
func moduleGoMod() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		mod := filepath.Join(filepath.Dir(file), "..", "..", "..", "go.mod")
		if _, err := os.Stat(mod); err == nil {
			return filepath.Clean(mod), nil
		}
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("cannot find relctl's go.mod (run from inside the module)")
	}
	return mod, nil
}

func buildDemoApp() (string, error) {
	mod, err := moduleGoMod()
	if err != nil {
		return "", err
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
// demoapp.ConfFailHealth). Artifacts are deterministic, so they are cached on disk
// next to the binary (compressing 10 MB under -race takes seconds).
func (f *Fleet) Artifact(version string, conf map[string]string) string {
	f.t.Helper()
	bin := BuildDemoApp(f.t)
	path, err := cachedArtifact(bin, f.ArtifactDir, version, conf)
	if err != nil {
		f.t.Fatalf("testfleet: artifact %s: %v", version, err)
	}
	return path
}

func cachedArtifact(bin, dir, version string, conf map[string]string) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	binSum := sha256.Sum256(data)
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "v=%s\n", version)
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, conf[k])
	}
	cacheDir := filepath.Join(filepath.Dir(bin), "artifacts-"+hex.EncodeToString(binSum[:6]))
	cached := filepath.Join(cacheDir, hex.EncodeToString(h.Sum(nil)[:8])+".tar.gz")
	dst := filepath.Join(dir, demoapp.ArtifactName(version))
	if err := copyFile(cached, dst); err == nil {
		return dst, nil
	}
	// Cache miss: drop caches of older binaries, build, and keep a copy.
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), "artifacts-*"))
	for _, d := range old {
		if d != cacheDir {
			os.RemoveAll(d)
		}
	}
	path, _, err := demoapp.BuildArtifact(dir, demoapp.ArtifactOptions{Version: version, AppBinary: bin, AppConf: conf})
	if err != nil {
		return "", err
	}
	if os.MkdirAll(cacheDir, 0o755) == nil {
		tmp := fmt.Sprintf("%s.%d.tmp", cached, os.Getpid())
		if copyFile(path, tmp) == nil {
			os.Rename(tmp, cached)
		}
	}
	return path, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Seed makes every host run version: the artifact is unpacked into
// <path>/releases/<version>/, current points at it, and the app is started on the
// host's AppAddr as the fleet user. Seed returns when every app is healthy and, with
// a balancer, every server is up in it.
func (f *Fleet) Seed(version, artifact string) {
	f.t.Helper()
	// Two phases: every file is written and closed before any app is exec'd, or a
	// concurrent fork may hold a binary open for writing (ETXTBSY).
	for _, phase := range []func(int) error{
		func(i int) error { return f.install(i, version, artifact) },
		func(i int) error { return f.restartApp(i, version) },
	} {
		errs := make([]error, len(f.Hosts))
		var wg sync.WaitGroup
		for i := range f.Hosts {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = phase(i) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				f.t.Fatalf("testfleet: seed %s: %v", version, err)
			}
		}
	}
	if f.LB != nil {
		var names []string
		for _, h := range f.Balanced() {
			names = append(names, h.Name)
		}
		if err := f.LB.WaitAllUp(names, 15*time.Second); err != nil {
			f.t.Fatalf("testfleet: seed %s: %v\n%s", version, err, f.Logs())
		}
	}
}

// install unpacks the artifact into host i's releases/<version> and points current
// at it.
func (f *Fleet) install(i int, version, artifact string) error {
	h := f.Hosts[i]
	rel := filepath.Join(h.Path, "releases", version)
	if err := os.RemoveAll(rel); err != nil {
		return err
	}
	// Unpack the way a host would: tar, as the fleet user.
	if out, err := f.RunAs("mkdir", "-p", rel); err != nil {
		return fmt.Errorf("%s: mkdir: %v %s", h.Name, err, out)
	}
	if out, err := f.RunAs("tar", "-xzf", artifact, "-C", rel); err != nil {
		return fmt.Errorf("%s: unpack: %v %s", h.Name, err, out)
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
	return os.Rename(tmp, cur)
}

// restartApp (re)starts host i's app from current, as the fleet user, and waits
// until it is healthy on version.
func (f *Fleet) restartApp(i int, version string) error {
	h := f.Hosts[i]
	bin := filepath.Join(h.Path, "current", "bin", "demoapp")
	// A previous Seed's app may still run another version: replace it.
	if out, err := f.runRetry(bin, "stop", "--dir", h.Path, "--timeout", "10s"); err != nil {
		return fmt.Errorf("%s: stop: %v\n%s", h.Name, err, out)
	}
	if out, err := f.runRetry(bin, "start", "--dir", h.Path, "--listen", h.AppAddr); err != nil {
		return fmt.Errorf("%s: start: %v\n%s", h.Name, err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := f.runRetry(bin, "check", "--url", "http://"+h.AppAddr, "--version", version)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not healthy: %s", h.Name, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runRetry is RunAs, retried briefly on ETXTBSY: another goroutine of the test
// binary (another test) may fork while holding a freshly written binary open.
func (f *Fleet) runRetry(argv ...string) (string, error) {
	for try := 0; ; try++ {
		out, err := f.RunAs(argv...)
		if !errors.Is(err, syscall.ETXTBSY) || try == 20 {
			return out, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CurrentVersion returns the VERSION of host i's current release ("" if none).
func (f *Fleet) CurrentVersion(i int) string {
	b, err := os.ReadFile(filepath.Join(f.Hosts[i].Path, "current", "VERSION"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Migrations returns the runs the demo app's migrate command recorded.
func (f *Fleet) Migrations() []demoapp.MigrationRecord {
	f.t.Helper()
	recs, err := demoapp.ReadMigrations(f.MigrationsLog)
	if err != nil {
		f.t.Fatalf("testfleet: %v", err)
	}
	return recs
}
