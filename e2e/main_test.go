// Package e2e proves relctl on real parts: OpenSSH sshd hosts on 127.0.0.x,
// real HAProxy and nginx, the demo app draining on SIGTERM, and the relctl
// binary itself, killed and resumed. The tests start and stop everything
// they use, by PID.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/testkit/syncbuf"
	"github.com/relctl/relctl/internal/testkit/testfleet"
)

var relctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relctl-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	relctlBin = filepath.Join(dir, "relctl")
	out, err := exec.Command("go", "build", "-o", relctlBin, "../cmd/relctl").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build relctl: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stage is a real fleet with relctl pointed at it.
type stage struct {
	t         testing.TB
	f         *testfleet.Fleet
	dir       string
	fleetFile string
	state     string
}

const releasesTable = `releases:
  "2.0.0": {upgrade_from: ">=1.1.0", downgrade_to: ["1.1.0"]}
  "1.1.0": {upgrade_from: ">=1.0.0", downgrade_to: ["1.0.0"]}
`

// newStage starts n hosts behind lbKind, seeded with 1.0.0, with artifacts
// for 1.1.0 and 2.0.0 built. edit may change the generated inventory text.
func newStage(t testing.TB, n int, lbKind string, extra string, edit func(string) string) *stage {
	t.Helper()
	testfleet.Require(t, lbKind)
	f := testfleet.Start(t, testfleet.Options{Hosts: n, Balancer: lbKind})
	f.Seed("1.0.0", f.Artifact("1.0.0", nil))
	for _, v := range []string{"1.1.0", "2.0.0"} {
		f.Artifact(v, nil)
	}
	s := &stage{t: t, f: f, dir: t.TempDir()}
	s.fleetFile = filepath.Join(s.dir, "fleet.yaml")
	s.state = filepath.Join(s.dir, "state")
	s.writeInventory(releasesTable+extra, edit)
	return s
}

func (s *stage) writeInventory(extra string, edit func(string) string) {
	inv, err := s.f.Inventory(extra)
	if err != nil {
		s.t.Fatal(err)
	}
	if edit != nil {
		inv = edit(inv)
	}
	if err := os.WriteFile(s.fleetFile, []byte(inv), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stage) cmd(args ...string) *exec.Cmd {
	c := exec.Command(relctlBin, args...)
	c.Env = append(os.Environ(), "RELCTL_FLEET="+s.fleetFile, "XDG_STATE_HOME="+s.state)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return c
}

// relctl runs relctl to the end and returns its exit code and output.
func (s *stage) relctl(args ...string) (int, string, string) {
	s.t.Helper()
	c := s.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	if err := c.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = c.Process.Kill()
		<-done
		s.t.Fatalf("relctl %v did not finish in 4m\n%s", args, errb.String())
	}
	s.t.Logf("relctl %s → exit %d", strings.Join(args, " "), c.ProcessState.ExitCode())
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

// background starts relctl and returns it with its stderr buffer.
func (s *stage) background(args ...string) (*exec.Cmd, *syncbuf.Buffer) {
	s.t.Helper()
	c := s.cmd(args...)
	buf := &syncbuf.Buffer{}
	c.Stdout, c.Stderr = buf, buf
	if err := c.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		if c.ProcessState == nil {
			_ = c.Process.Kill()
			_, _ = c.Process.Wait()
		}
	})
	return c, buf
}

// journalDir is where relctl keeps this stage's runs.
func (s *stage) journalDir() string { return filepath.Join(s.state, "relctl", "shop") }

// waitJournal waits until the newest journal has an event matching ok.
func (s *stage) waitJournal(ok func(event.Event) bool, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(s.journalDir(), "*.jsonl"))
		for _, f := range files {
			data, _ := os.ReadFile(f)
			for _, line := range strings.Split(string(data), "\n") {
				var e event.Event
				if json.Unmarshal([]byte(line), &e) == nil && ok(e) {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("no matching journal event within %s", timeout)
}

func (s *stage) latestRun() *journal.Run {
	s.t.Helper()
	r, err := journal.Latest(s.journalDir())
	if err != nil || r == nil {
		s.t.Fatalf("journal: %v", err)
	}
	return r
}

// versions returns every host's running version (from its current link).
func (s *stage) versions() []string {
	var out []string
	for i := range s.f.Hosts {
		out = append(out, s.f.CurrentVersion(i))
	}
	return out
}

func (s *stage) wantAll(v string) {
	s.t.Helper()
	for i, got := range s.versions() {
		if got != v {
			s.t.Errorf("%s runs %s, want %s", s.f.Hosts[i].Name, got, v)
		}
	}
}
