package rollout

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/testkit/syncbuf"
)

// The migration wrapper on real sh: a migration runs once per run, whatever
// happens to the relctl process that started it.
func TestMigrationWrapperRunsOnce(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "ran")
	rec := migrationDir(filepath.Join(dir, "app dir"), "20261129T000000Z-ab", "migrate@1.1.0")
	run := func(script string) (int, string) {
		out, err := exec.Command("sh", "-c", migrationWrapper(rec, script)).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	ran := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "x")
	}
	migrate := "echo x >> '" + count + "'; exit 5"

	if code, out := run(migrate); code != 5 || ran() != 1 {
		t.Fatalf("first run: exit %d, ran %d: %s", code, ran(), out)
	}
	// The status is the result: not run again, even though it failed.
	if code, out := run(migrate); code != 5 || ran() != 1 || !strings.Contains(out, "already ran") {
		t.Fatalf("second run: exit %d, ran %d: %s", code, ran(), out)
	}
	if got, _ := os.ReadFile(filepath.Join(rec, "status")); strings.TrimSpace(string(got)) != "5" {
		t.Errorf("status file %q", got)
	}
}

func TestMigrationWrapperWaitsForTheRunningOne(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "ran")
	gate := filepath.Join(dir, "gate")
	rec := migrationDir(dir, "run", "migrate")
	migrate := "echo x >> '" + count + "'; while [ ! -f '" + gate + "' ]; do sleep 0.05; done"
	// The first process's migration: started, then its relctl "dies"
	// (nobody waits on it); the host keeps it running.
	first := exec.Command("sh", "-c", migrationWrapper(rec, migrate))
	first.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-first.Process.Pid, syscall.SIGKILL); _ = first.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(rec, "pid")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the wrapper recorded no pid")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The resume: it must wait for the running migration, not start one.
	second := exec.Command("sh", "-c", migrationWrapper(rec, migrate))
	out := &syncbuf.Buffer{}
	second.Stdout, second.Stderr = out, out
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "still running") {
		if time.Now().After(deadline) {
			t.Fatalf("the resume did not wait: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("resume's wrapper: %v: %s", err, out.String())
	}
	if b, _ := os.ReadFile(count); strings.Count(string(b), "x") != 1 {
		t.Fatalf("the migration ran %d times", strings.Count(string(b), "x"))
	}
}

func TestMigrationWrapperRefusesAnUnknownEnd(t *testing.T) {
	dir := t.TempDir()
	rec := migrationDir(dir, "run", "post-migrate")
	if err := os.MkdirAll(filepath.Join(rec, "claim"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A pid that ended without a status (the wrapper itself was KILLed).
	if err := os.WriteFile(filepath.Join(rec, "pid"), []byte("4194000 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", migrationWrapper(rec, "echo ran")).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 || strings.Contains(string(out), "\nran") || !strings.Contains(string(out), "remove "+rec) {
		t.Fatalf("err %v: %s", err, out)
	}
}

func TestMigrationWrapperRecordsTERM(t *testing.T) {
	dir := t.TempDir()
	rec := migrationDir(dir, "run", "migrate")
	c := exec.Command("sh", "-c", migrationWrapper(rec, "sleep 30"))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(rec, "pid")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pid recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The step's timeout: TERM to the process group.
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	_ = c.Wait()
	if got, _ := os.ReadFile(filepath.Join(rec, "status")); strings.TrimSpace(string(got)) != "143" {
		t.Fatalf("status after TERM %q, want 143", got)
	}
}

// Two wrappers of the same run started at once (a resume racing the
// original's command still on its way): one runs the migration, the other
// waits for it.
func TestMigrationWrapperClaimIsAtomic(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "ran")
	rec := migrationDir(dir, "run", "migrate")
	migrate := "echo x >> '" + count + "'; sleep 0.5"
	var cmds []*exec.Cmd
	for range 4 {
		c := exec.Command("sh", "-c", migrationWrapper(rec, migrate))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("a wrapper: %v", err)
		}
	}
	if b, _ := os.ReadFile(count); strings.Count(string(b), "x") != 1 {
		t.Fatalf("the migration ran %d times", strings.Count(string(b), "x"))
	}
}

// The migration outlives the session of the relctl that started it: its
// output goes to files, so a closed session is no broken pipe for it.
func TestMigrationWrapperSurvivesAClosedSession(t *testing.T) {
	dir := t.TempDir()
	rec := migrationDir(dir, "run", "migrate")
	gate := filepath.Join(dir, "gate")
	migrate := "while [ ! -f '" + gate + "' ]; do sleep 0.05; done; for i in 1 2 3 4 5; do echo line $i; done; echo err >&2"
	c := exec.Command("sh", "-c", migrationWrapper(rec, migrate))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stdout, c.Stderr = w, w
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(rec, "pid")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pid recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Close() // relctl died: nobody reads the session any more
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	if got, _ := os.ReadFile(filepath.Join(rec, "status")); strings.TrimSpace(string(got)) != "0" {
		t.Fatalf("status %q, want 0 (the migration must not die of the closed pipe)", got)
	}
	if out, _ := os.ReadFile(filepath.Join(rec, "stdout")); !strings.Contains(string(out), "line 5") {
		t.Fatalf("output kept: %q", out)
	}
}

// Its output still reaches relctl while it runs.
func TestMigrationWrapperStreamsOutput(t *testing.T) {
	rec := migrationDir(t.TempDir(), "run", "migrate")
	out, err := exec.Command("sh", "-c", migrationWrapper(rec, "echo to-stdout; echo to-stderr >&2; exit 2")).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "to-stdout") || !strings.Contains(string(out), "to-stderr") {
		t.Fatalf("err %v: %q", err, out)
	}
}

// A rollback plan with no steps (a run that switched nothing) runs without
// panicking, touches nothing and succeeds.
func TestEmptyRollbackPlanRunsNothing(t *testing.T) {
	h := newHarness(t, "")
	obs := plan.Observed{}
	for _, name := range []string{"web1", "web2", "web3"} {
		obs.Hosts = append(obs.Hosts, plan.HostState{Name: name, Version: "1.0.0", Reachable: true})
	}
	up, err := plan.Build(h.inv, obs, plan.Options{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := plan.Rollback(h.inv, up, plan.Progress{Started: map[string]bool{}, Finished: map[string]bool{}})
	if err != nil || len(rb.Steps) != 0 {
		t.Fatalf("rollback plan %v, %v", rb, err)
	}
	res := h.runPlan(t, rb, nil, nil)
	if res.Outcome != event.OutcomeSucceeded || res.Err != nil || len(h.fake.log) != 0 {
		t.Fatalf("outcome %s err %v, commands %v", res.Outcome, res.Err, h.fake.log)
	}
}
