package rollout

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChainStopSparesAReusedPid: a chain that ended long ago left its pid
// file; the pid now belongs to an unrelated process. The stop script, run
// by the real /bin/sh, must call that chain ended at once, neither wait
// for the process nor kill its group; a live chain (the same pid and start
// time it recorded) is still waited for and killed.
func TestChainStopSparesAReusedPid(t *testing.T) {
	run := t.TempDir()
	// The "unrelated process": its own group, so a kill of -pid would hit it.
	other := exec.Command("sleep", "300")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	// Reaped as soon as it ends, as a chain's parent on a host does: a
	// zombie would still answer kill -0.
	waited := make(chan struct{})
	go func() { _ = other.Wait(); close(waited) }()
	defer func() { _ = other.Process.Kill(); <-waited }()
	pid := strconv.Itoa(other.Process.Pid)
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Skip("no /proc here:", err)
	}
	started := strings.Fields(string(stat))[21]

	write := func(nonce, startTime string) {
		d := filepath.Join(run, nonce)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "pid"), []byte(pid+" "+nonce+" "+startTime+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// In flight: stop, with a 1 s timeout, so a wait would be ~3 s.
		if err := os.WriteFile(filepath.Join(d, "log"), []byte("start stop 1000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The pid's start time differs from the recorded one: reused.
	write("old", "1")
	t0 := time.Now()
	out, err := exec.Command("/bin/sh", "-c", chainStopScript(run, "old", 0)).CombinedOutput()
	if err != nil {
		t.Fatalf("stop script: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "chain old ended") {
		t.Fatalf("a reused pid was not taken as an ended chain:\n%s", out)
	}
	if syscall.Kill(other.Process.Pid, 0) != nil {
		t.Fatal("the stop script killed an unrelated process that reused a chain's pid")
	}
	if _, err := os.Stat(filepath.Join(run, "old", "cancel")); err != nil {
		t.Errorf("no cancel marker: %v", err)
	}
	quick := time.Since(t0)

	// The same pid with its own start time: a live chain, waited for
	// (its bound: 1 s + grace 0 + 2 s), then killed with its group.
	if err := os.RemoveAll(filepath.Join(run, "old")); err != nil {
		t.Fatal(err)
	}
	write("live", started)
	out, err = exec.Command("/bin/sh", "-c", chainStopScript(run, "live", 0)).CombinedOutput()
	if err != nil {
		t.Fatalf("stop script: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "chain live killed") {
		t.Fatalf("a live chain was not killed:\n%s", out)
	}
	<-waited
	if st := other.ProcessState; st == nil || st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the live chain's process ended with %v, want killed", st)
	}
	t.Logf("reused pid answered in %s", quick)
}

// TestChainPruneKeepsThisRun: cleanup removes the chain traces of earlier
// runs, never this run's, and a name with a space is one name.
func TestChainPruneKeepsThisRun(t *testing.T) {
	base := t.TempDir()
	for _, run := range []string{"r-old", "r old 2", "r-now"} {
		if err := os.MkdirAll(filepath.Join(chainRunDir(base, run), "n1"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, ".relctl", "chains", "stray-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := cleanupScript(base, 5, "1.0.0", "1.1.0") + "\n" + chainPruneScript(chainRunDir(base, "r-now"))
	if err := os.MkdirAll(filepath.Join(base, "releases"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	left, _ := filepath.Glob(filepath.Join(base, ".relctl", "chains", "*"))
	want := []string{filepath.Join(base, ".relctl", "chains", "r-now"), filepath.Join(base, ".relctl", "chains", "stray-file")}
	if strings.Join(left, "|") != strings.Join(want, "|") {
		t.Errorf("left %q, want %q", left, want)
	}
	// No chains directory at all (a host that never ran a chain): fine.
	if out, err := exec.Command("/bin/sh", "-c", "set -e\n"+chainPruneScript(chainRunDir(t.TempDir(), "r"))).CombinedOutput(); err != nil {
		t.Fatalf("without chains: %v: %s", err, out)
	}
}
