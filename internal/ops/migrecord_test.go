package ops

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

// The record reader, on real sh, in every state the wrapper can leave:
// what resume --rollback says for each.
func TestMigrationRecordStates(t *testing.T) {
	live := exec.Command("sleep", "300")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", live.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))[19] // field 22
	for _, c := range []struct {
		name  string
		files map[string]string // "" = a directory
		want  string
	}{
		{"running", map[string]string{"claim": "", "pid": fmt.Sprintf("%d %s\n", live.Process.Pid, start)},
			fmt.Sprintf("still running on web1 (pid %d) — it will finish once; relctl did not switch any host", live.Process.Pid)},
		{"pid reused", map[string]string{"claim": "", "pid": fmt.Sprintf("%d 1\n", live.Process.Pid)},
			fmt.Sprintf("on web1 (pid %d) ended without recording its exit status: it may have run in part", live.Process.Pid)},
		{"ended", map[string]string{"claim": "", "pid": "4194297 1\n", "status": "3\n"},
			"on web1 ended with exit status 3 (recorded on the host after relctl died)"},
		{"claimed", map[string]string{"claim": ""}, "was claimed but its shell never recorded a pid: it did not start"},
		{"none", nil, "never started on web1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			base := t.TempDir()
			f.env.Inv.Hosts[0].Path = base
			p := f.upgrade()
			var mig plan.Step
			for _, s := range p.Steps {
				if s.Kind == plan.StepMigrate {
					mig = s
				}
			}
			if mig.Host != f.env.Inv.Hosts[0].Name {
				t.Fatalf("migrations host %q", mig.Host)
			}
			path := f.journalState(p, plan.StepMigrate, "")
			id := strings.TrimSuffix(filepath.Base(path), ".jsonl")
			dir := rollout.MigrationDir(base, id, mig.ID)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, body := range c.files {
				var err error
				if body == "" {
					err = os.Mkdir(filepath.Join(dir, name), 0o755)
				} else {
					err = os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			f.env.RemoteOutput = func(_ context.Context, host, script string) (string, error) {
				out, err := exec.Command("sh", "-c", script).Output()
				return string(out), err
			}
			pr, err := f.env.PlanResume(context.Background(), true)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(pr.Nothing, "nothing to roll back") || !strings.Contains(pr.Nothing, "pre-deploy migration to 1.4.0 (step "+mig.ID+") ") || !strings.Contains(pr.Nothing, c.want) {
				t.Fatalf("resume --rollback says:\n%s\nwant %q", pr.Nothing, c.want)
			}
		})
	}
}

// A record that cannot be read is said, never taken for "not running".
func TestMigrationRecordUnreadable(t *testing.T) {
	f := newFixture(t)
	p := f.upgrade()
	f.journalState(p, plan.StepMigrate, "")
	f.env.RemoteOutput = func(context.Context, string, string) (string, error) {
		return "", fmt.Errorf("web1: connection lost")
	}
	pr, err := f.env.PlanResume(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pr.Nothing, "cannot be read: web1: connection lost: it may still be running there") {
		t.Fatalf("resume --rollback says:\n%s", pr.Nothing)
	}
}
