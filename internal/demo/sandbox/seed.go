package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
)

var versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,127}$`)

// buildReleases writes every release's artifact into ArtifactDir. Each
// bin/demoapp is a script that execs appCmd, so artifacts are tiny and
// building them takes milliseconds.
func (d *Demo) buildReleases(appCmd string) error {
	versions := append([]string(nil), Versions...)
	for _, v := range []string{d.o.FailHealth, d.o.BadRelease} {
		if v != "" && !contains(versions, v) {
			versions = append(versions, v)
		}
	}
	for _, v := range versions {
		conf := map[string]string{}
		if v == d.o.FailHealth {
			conf[demoapp.ConfFailHealth] = "true"
		}
		d.badConf(v, conf)
		if _, _, err := demoapp.BuildArtifact(d.ArtifactDir, demoapp.ArtifactOptions{Version: v, Wrapper: appCmd, AppConf: conf}); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	d.Versions = versions
	if d.o.FailHealth != "" {
		d.logf("demo: release %s is built to fail its health check", d.o.FailHealth)
	}
	if d.o.BadRelease != "" {
		d.logf("demo: release %s is built to answer %g%% of requests with 500 (its health check stays green)", d.o.BadRelease, d.o.BadShare*100)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// seed makes every host run SeedVersion as the host contract says: the
// artifact unpacked into releases/<v>/, current an absolute symlink to it,
// and the app started with the release's own bin/demoapp. Files are all
// written before any app starts (no ETXTBSY from a concurrent fork).
func (d *Demo) seed(ctx context.Context) error {
	artifact := filepath.Join(d.ArtifactDir, demoapp.ArtifactName(SeedVersion))
	for _, h := range d.Hosts {
		rel := filepath.Join(h.Path, "releases", SeedVersion)
		if err := demoapp.Unpack(artifact, rel); err != nil {
			return fmt.Errorf("sandbox: %s: %w", h.Name, err)
		}
		cur := filepath.Join(h.Path, "current")
		tmp := cur + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(rel, tmp); err != nil {
			return fmt.Errorf("sandbox: %s: %w", h.Name, err)
		}
		if err := os.Rename(tmp, cur); err != nil {
			return fmt.Errorf("sandbox: %s: %w", h.Name, err)
		}
	}
	errs := make([]error, len(d.Hosts))
	var wg sync.WaitGroup
	for i := range d.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = d.startApp(ctx, i) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startApp runs host i's start command. When its port was taken meanwhile
// (another program bound it after pickPorts), the host gets a new port: the
// balancer and fleet.yaml are written afterwards.
func (d *Demo) startApp(ctx context.Context, i int) error {
	h := &d.Hosts[i]
	bin := filepath.Join(h.Path, "current", "bin", "demoapp")
	for attempt := 1; ; attempt++ {
		out, err := d.runOnHost(ctx, h, bin, "start", "--dir", h.Path, "--listen", h.AppAddr, "--wait", "15s")
		if err == nil {
			return nil
		}
		if attempt < 4 && strings.Contains(out, "address already in use") {
			ports, perr := pickPorts(1)
			if perr != nil {
				return perr
			}
			d.logf("demo: %s: %s was taken, moving to port %d", h.Name, h.AppAddr, ports[0])
			h.AppAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
			continue
		}
		return fmt.Errorf("sandbox: %s: start shop %s: %v\n%s", h.Name, SeedVersion, err, strings.TrimSpace(out))
	}
}

// runOnHost runs argv as host h's SSH commands run: in its root directory.
// It retries briefly on ETXTBSY (a concurrent fork elsewhere in this
// process may still hold a just-written file open).
func (d *Demo) runOnHost(ctx context.Context, h *Host, argv ...string) (string, error) {
	for try := 0; ; try++ {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = h.Root
		cmd.Env = append(append(os.Environ(), "HOME="+h.Root), d.hostEnv(h)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if errors.Is(err, syscall.ETXTBSY) && try < 20 {
			select {
			case <-time.After(20 * time.Millisecond):
				continue
			case <-ctx.Done():
				return out.String(), ctx.Err()
			}
		}
		return out.String(), err
	}
}
