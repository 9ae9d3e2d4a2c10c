package rollout

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/remote"
)

// runLoop runs the health loop under the local sh, as the host would, and
// reads its stdout through the engine's reader.
func runLoop(t *testing.T, l healthLoop) (*healthReader, []healthCheck, int) {
	t.Helper()
	rd, checks, code, _ := runLoopAt(t, l)
	return rd, checks, code
}

// runLoopAt is runLoop that also says when the verdict line was read
// (zero: never).
func runLoopAt(t *testing.T, l healthLoop) (*healthReader, []healthCheck, int, time.Time) {
	t.Helper()
	var verdictAt time.Time
	var checks []healthCheck
	rd := &healthReader{nonce: l.nonce, onCheck: func(c healthCheck) { checks = append(checks, c) }}
	ctx, cancel := context.WithTimeout(context.Background(), l.bound()+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", l.Script())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		rd.line(sc.Text())
		if rd.verdict != "" && verdictAt.IsZero() {
			verdictAt = time.Now()
		}
	}
	err = cmd.Wait()
	rd.flush()
	code := 0
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		code = xe.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return rd, checks, code, verdictAt
}

func TestHealthLoopHealthyAfterStableFor(t *testing.T) {
	dir := t.TempDir()
	n := filepath.Join(dir, "n")
	first := filepath.Join(dir, "first-pass")
	// Fails twice, then passes; it must pass for 300ms in a row. The
	// first passing check writes down when it ran (wall clock, ns).
	script := `c=$(cat ` + n + ` 2>/dev/null || echo 0); c=$((c+1)); echo $c > ` + n + `; echo "check $c"; ` +
		`if [ $c -eq 3 ]; then date +%s%N > ` + first + `; fi; [ $c -gt 2 ]`
	l := healthLoop{nonce: "n1", interval: 50 * time.Millisecond, stable: 300 * time.Millisecond, timeout: 20 * time.Second, check: 5 * time.Second, script: script}
	rd, checks, code, verdictAt := runLoopAt(t, l)
	if code != 0 || rd.verdict != "healthy" {
		t.Fatalf("exit %d, verdict %q", code, rd.verdict)
	}
	if len(checks) < 4 || checks[0].status == 0 || checks[2].status != 0 || checks[0].out[0] != "check 1" || rd.checks != len(checks) {
		t.Fatalf("checks: %+v", checks)
	}
	// Healthy only once the passing checks span stable_for: the first
	// pass (check 3) is not enough on its own. The loop measures the
	// span from the end of check 3 to the end of the last check, in
	// /proc/uptime's 10 ms steps, so at least 290 ms really passed
	// between check 3 writing its stamp and the verdict being read here,
	// however long the loop's sleeps took on a busy machine. (Summing
	// the reported check times and intervals does not bound it: a sleep
	// that takes longer than the interval makes fewer checks enough.)
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("first pass stamp %q: %v", b, err)
	}
	if span := verdictAt.Sub(time.Unix(0, ns)); span < l.stable-10*time.Millisecond {
		t.Fatalf("healthy %s after the first passing check, want at least %s (stable_for, less one /proc/uptime step): %+v",
			span, l.stable-10*time.Millisecond, checks)
	}
}

func TestHealthLoopFailsAfterTimeoutWithLastOutput(t *testing.T) {
	script := `echo "db down" >&2; exit 7`
	l := healthLoop{nonce: "n2", interval: 50 * time.Millisecond, timeout: 400 * time.Millisecond, check: 5 * time.Second, script: script}
	start := time.Now()
	rd, checks, code, verdictAt := runLoopAt(t, l)
	if code != 3 || rd.verdict != "unhealthy" || rd.lastBad == nil {
		t.Fatalf("exit %d, verdict %q", code, rd.verdict)
	}
	// The loop checks again until the timeout has passed: its verdict
	// comes no earlier than that after it started. How many checks fit
	// in is the machine's business: on a busy one a single check of this
	// script took 590 ms, past the timeout, and then one check is right.
	// A loop that gave up after a failed check, or before the timeout,
	// fails here.
	if took := verdictAt.Sub(start); took < l.timeout {
		t.Fatalf("gave up after %s and %d check(s), before the timeout", took, len(checks))
	}
	if len(checks) < 1 || rd.lastBad.status != 7 || strings.Join(rd.lastBad.out, "|") != "db down" {
		t.Fatalf("checks %+v, last %+v", checks, rd.lastBad)
	}
	if err := rd.lastBad.err("web1", l.check); !strings.Contains(err.Error(), "web1: exit status 7: db down") {
		t.Fatalf("err = %v", err)
	}
}

// A hung check is killed, with what it started, at its bound, and the
// loop goes on.
func TestHealthLoopKillsAHungCheck(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "pid")
	script := `sleep 600 & echo $! > ` + pidf + `; wait`
	l := healthLoop{nonce: "n3", interval: 10 * time.Millisecond, timeout: 200 * time.Millisecond, check: 300 * time.Millisecond, script: script}
	rd, checks, code := runLoop(t, l)
	if code != 3 || rd.lastBad == nil || !rd.lastBad.timedOut {
		t.Fatalf("exit %d, checks %+v", code, checks)
	}
	if err := rd.lastBad.err("web1", l.check); !errors.Is(err, remote.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pid int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil {
			t.Fatal(err)
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(st), ") Z ") {
			break // gone, or a zombie waiting for init
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hung check's child %d is still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The check's output cannot end the loop: a line that looks like a marker
// without the nonce is output.
func TestHealthReaderIgnoresForgedMarkers(t *testing.T) {
	rd := &healthReader{nonce: "abc"}
	for _, l := range []string{
		"relctl-check:abc 1 1 5 0",
		"relctl-healthy:xyz 1 5",
		"relctl-check:abc 2 0 5 0",
		"relctl-healthy:abc 2 12",
	} {
		rd.line(l)
	}
	if rd.verdict != "healthy" || rd.checks != 2 || rd.lastBad == nil || rd.lastBad.out[0] != "relctl-healthy:xyz 1 5" {
		t.Fatalf("%+v", rd)
	}
}

// Once healthy, the loop runs the version command in the same command and
// reports its stdout, its stderr and its end apart; a failing one is a
// failure of the version, not of the health wait.
func TestHealthLoopRunsTheVersionCommandOnceHealthy(t *testing.T) {
	l := healthLoop{nonce: "n4", interval: 10 * time.Millisecond, timeout: 5 * time.Second, check: 2 * time.Second, script: "true",
		then: `echo warming >&2; echo; echo 1.1.0; echo extra`, thenTO: 2 * time.Second}
	rd, _, code := runLoop(t, l)
	if code != 0 || rd.verdict != "healthy" || rd.then == nil || rd.then.status != 0 {
		t.Fatalf("exit %d, verdict %q, then %+v", code, rd.verdict, rd.then)
	}
	if got := observeVersion(rd.thenOut); got != "1.1.0" || !strings.Contains(strings.Join(rd.thenErr, "|"), "warming") {
		t.Fatalf("version %q from out %q, err %q", got, rd.thenOut, rd.thenErr)
	}
	l.nonce, l.then = "n5", `echo "no version file" >&2; exit 2`
	rd, _, code = runLoop(t, l)
	if code != 0 || rd.verdict != "healthy" || rd.then == nil || rd.then.status != 2 {
		t.Fatalf("exit %d, verdict %q, then %+v", code, rd.verdict, rd.then)
	}
	c := *rd.then
	c.out = rd.thenErr
	if err := c.err("web1", l.thenTO); !strings.Contains(err.Error(), "web1: exit status 2: no version file") {
		t.Fatalf("err = %v", err)
	}
	l.nonce, l.then, l.thenTO = "n6", "sleep 600", 200*time.Millisecond
	rd, _, _ = runLoop(t, l)
	if rd.then == nil || !rd.then.timedOut {
		t.Fatalf("a hung version command: then %+v", rd.then)
	}
}

func observeVersion(lines []string) string { return observe.VersionLine(strings.Join(lines, "\n")) }
