package hooks

import (
	"context"
	"encoding/json"
	"github.com/relctl/relctl/internal/demo/proc"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
)

func runner(t *testing.T, point string, hs ...fleet.Hook) *Runner {
	t.Helper()
	var h fleet.Hooks
	switch point {
	case fleet.HookBeforeRun:
		h.BeforeRun = hs
	case fleet.HookAfterCanary:
		h.AfterCanary = hs
	case fleet.HookAfterRun:
		h.AfterRun = hs
	case fleet.HookOnFailure:
		h.OnFailure = hs
	case fleet.HookOnRollback:
		h.OnRollback = hs
	}
	h.Timeout = 10 * time.Second
	return &Runner{Hooks: h, Dir: t.TempDir(), Environ: []string{"PATH=" + os.Getenv("PATH"), "RELCTL_TICKET=from-the-shell", "RELCTL_REASON=stale", "KEEP=me"}}
}

// The hook decodes the document on stdin (the test hook writes it to a
// file) and sees the run's values as RELCTL_* variables, inherited ones
// replaced; values with shell syntax reach it as data, never run.
func TestHookGetsJSONAndEnv(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	envf := filepath.Join(dir, "env")
	pwned := filepath.Join(dir, "pwned")
	r := runner(t, fleet.HookAfterRun, fleet.Hook{Command: "cat > " + in + "; env > " + envf})
	code := 3
	reason := "checkout 500s $(touch " + pwned + ") `touch " + pwned + "` ' \" ; |"
	sum := &event.Summary{Kind: "upgrade", From: "1.0.0", To: "1.1.0", RolledBack: []string{"web1"}}
	res := r.Run(context.Background(), Input{Hook: fleet.HookAfterRun, RunID: "run-1", App: "shop", Fleet: "/x/fleet.yaml", Operator: "alice@box",
		Kind: "upgrade", From: "1.0.0", To: "1.1.0", Reason: reason, Hosts: []string{"web1", "web2"}, Outcome: event.OutcomeRolledBack, ExitCode: &code, Summary: sum})
	if len(res) != 1 || !res[0].OK() || res[0].ExitCode != 0 || res[0].Place != "hooks.after_run[0]" || res[0].Hook != "after_run" {
		t.Fatalf("results = %+v", res)
	}
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var got Input
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdin is not the documented JSON: %v\n%s", err, b)
	}
	if got.Schema != Schema || got.Hook != "after_run" || got.RunID != "run-1" || got.Reason != reason || got.Ticket != "" ||
		got.Outcome != event.OutcomeRolledBack || got.ExitCode == nil || *got.ExitCode != 3 || got.Summary == nil ||
		len(got.Summary.RolledBack) != 1 || strings.Join(got.Hosts, ",") != "web1,web2" {
		t.Fatalf("decoded input = %+v", got)
	}
	envb, _ := os.ReadFile(envf)
	env := map[string]string{}
	for _, l := range strings.Split(string(envb), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	for k, want := range map[string]string{"RELCTL_RUN_ID": "run-1", "RELCTL_APP": "shop", "RELCTL_FROM": "1.0.0", "RELCTL_TO": "1.1.0",
		"RELCTL_OUTCOME": "rolled back", "RELCTL_EXIT_CODE": "3", "RELCTL_REASON": reason, "RELCTL_TICKET": "", "RELCTL_OPERATOR": "alice@box",
		"RELCTL_HOOK": "after_run", "RELCTL_KIND": "upgrade", "RELCTL_HOSTS": "web1 web2", "RELCTL_FLEET": "/x/fleet.yaml", "KEEP": "me"} {
		if v, ok := env[k]; !ok || v != want {
			t.Errorf("%s = %q (set %v), want %q", k, v, ok, want)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a value in the input ran as a command")
	}
}

// A hook past its timeout is killed with every process it forked, and Run
// returns within a bound. The timeout must outlast the hook's start (a
// shell that forks its child and prints): with 300ms, 7 of 150 runs under
// CPU burners were killed before the shell had printed anything. What the
// test checks happens at the timeout, whatever its length.
func TestHookTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "child")
	const timeout = 3 * time.Second
	r := runner(t, fleet.HookAfterRun, fleet.Hook{Command: "sleep 60 & echo $! > " + pidf + "; echo waiting; wait", Timeout: timeout})
	t0 := time.Now()
	res := r.Run(context.Background(), Input{Hook: fleet.HookAfterRun})
	if el := time.Since(t0); el > timeout+waitDelay+3*time.Second {
		t.Fatalf("Run took %s with a %s timeout", el, timeout)
	}
	if len(res) != 1 || res[0].OK() || !res[0].TimedOut || res[0].ExitCode != -1 || !strings.Contains(res[0].Error, "timed out after 3s") || res[0].Output != "waiting" {
		t.Fatalf("result = %+v", res)
	}
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for proc.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %d outlived its timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := Describe(res[0]); !strings.Contains(d, "hooks.after_run[0] failed: timed out") {
		t.Errorf("Describe = %q", d)
	}
}

// A hook that exits but leaves a child holding its output fails, and the
// child is killed.
func TestHookBackgroundChildHoldingOutput(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "child")
	r := runner(t, fleet.HookAfterRun, fleet.Hook{Command: "sleep 60 & echo $! > " + pidf})
	res := r.Run(context.Background(), Input{Hook: fleet.HookAfterRun})
	if len(res) != 1 || res[0].OK() || !strings.Contains(res[0].Error, "kept its output open") {
		t.Fatalf("result = %+v", res)
	}
	b, _ := os.ReadFile(pidf)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for proc.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d outlived its hook", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is kept up to the cap: its end, with the count of what was cut.
func TestHookOutputCapped(t *testing.T) {
	r := runner(t, fleet.HookAfterRun, fleet.Hook{Command: `i=0; while [ $i -lt 5000 ]; do echo "line $i of the hook's output"; i=$((i+1)); done; echo last >&2; exit 4`})
	r.MaxOutput = 1000
	res := r.Run(context.Background(), Input{Hook: fleet.HookAfterRun})
	if len(res) != 1 || res[0].ExitCode != 4 || res[0].Error != "exit status 4" {
		t.Fatalf("result = %+v", res)
	}
	out := res[0].Output
	if len(out) > 1000 || !strings.HasSuffix(out, "line 4999 of the hook's output\nlast") || res[0].OutputCut < 100000 {
		t.Fatalf("output %d bytes (cut %d), ends %q", len(out), res[0].OutputCut, out[max(0, len(out)-60):])
	}
	if d := Describe(res[0]); d != "hooks.after_run[0] failed: exit status 4: last" {
		t.Errorf("Describe = %q", d)
	}
}

// before_run stops at the first hook that fails; notification hooks all
// run whatever the others did.
func TestHookListSemantics(t *testing.T) {
	dir := t.TempDir()
	mark := func(n string) string { return "touch " + filepath.Join(dir, n) }
	for _, point := range []string{fleet.HookBeforeRun, fleet.HookOnFailure} {
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o755)
		r := runner(t, point, fleet.Hook{Command: mark("a")}, fleet.Hook{Command: mark("b") + "; echo no ticket >&2; exit 1"}, fleet.Hook{Command: mark("c")})
		res := r.Run(context.Background(), Input{Hook: point})
		_, errC := os.Stat(filepath.Join(dir, "c"))
		if point == fleet.HookBeforeRun {
			if len(res) != 2 || !res[0].OK() || res[1].OK() || errC == nil {
				t.Errorf("before_run: results %+v, third ran: %v", res, errC == nil)
			}
			if len(Failed(res)) != 1 || Describe(res[1]) != "hooks.before_run[1] failed: exit status 1: no ticket" {
				t.Errorf("before_run: %q", Describe(res[1]))
			}
		} else if len(res) != 3 || !res[0].OK() || res[1].OK() || !res[2].OK() || errC != nil {
			t.Errorf("%s: results %+v, third ran: %v", point, res, errC == nil)
		}
	}
}

// A cancelled context kills the running hook and starts no other.
func TestHookCancelled(t *testing.T) {
	r := runner(t, fleet.HookAfterRun, fleet.Hook{Command: "sleep 60"}, fleet.Hook{Command: "true"})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	t0 := time.Now()
	res := r.Run(ctx, Input{Hook: fleet.HookAfterRun})
	if time.Since(t0) > 10*time.Second || len(res) != 2 || res[0].OK() || res[0].TimedOut || res[1].OK() || !strings.HasPrefix(res[1].Error, "not run") {
		t.Fatalf("results %+v after %s", res, time.Since(t0))
	}
}

func TestTailBufferUTF8(t *testing.T) {
	tb := &tailBuffer{max: 5}
	tb.Write([]byte("ééééé")) // 10 bytes
	out, cut := tb.result()
	if out != "éé" || cut != 6 {
		t.Errorf("result = %q, %d", out, cut)
	}
}
