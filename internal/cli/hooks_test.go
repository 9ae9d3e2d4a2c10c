package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/sandbox"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/hooks"
	"github.com/relctl/relctl/internal/journal"
)

// hookDemo is a local demo fleet (in-process SSH hosts behind the built-in
// balancer, every host on 1.0.0) whose fleet.yaml gets hooksYAML, and a
// journal directory of its own.
func hookDemo(t *testing.T, hosts int, failHealth, hooksYAML string) *sandbox.Demo {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "demoapp")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/relctl/relctl/cmd/demoapp").CombinedOutput(); err != nil {
		t.Fatalf("build demoapp: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := sandbox.Start(ctx, sandbox.Options{Hosts: hosts, Balancer: sandbox.BalancerBuiltin, AppCommand: bin, FailHealth: failHealth, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	src, err := os.ReadFile(d.FleetFile)
	if err != nil {
		t.Fatal(err)
	}
	// A failing health check fails in 2s rather than the demo's 20s.
	s := regexp.MustCompile(`(?m)^(health:\s*\n\s+timeout:) 20s`).ReplaceAllString(string(src), "$1 2s")
	if err := os.WriteFile(d.FleetFile, []byte(s+"\n"+hooksYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	return d
}

// hostState is what a host shows of a run: where current points, the
// releases unpacked, relctl's own files (lock, audit) and the balancer's
// state of its server.
func hostStates(t *testing.T, d *sandbox.Demo) map[string]string {
	t.Helper()
	out := map[string]string{}
	bal, err := d.LB()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	states, err := bal.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lbState := map[string]string{}
	for _, s := range states {
		lbState[s.Server] = string(s.Status)
	}
	for _, h := range d.Hosts {
		cur, _ := os.Readlink(filepath.Join(h.Path, "current"))
		rels, _ := filepath.Glob(filepath.Join(h.Path, "releases", "*"))
		var own []string
		filepath.Walk(filepath.Join(h.Path, ".relctl"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				b, _ := os.ReadFile(p)
				own = append(own, strings.TrimPrefix(p, h.Path)+"="+string(b))
			}
			return nil
		})
		sort.Strings(own)
		for i := range rels {
			rels[i] = filepath.Base(rels[i])
		}
		out[h.Name] = "current=" + cur + " releases=" + strings.Join(rels, ",") + " lb=" + lbState[h.Name] + " own=" + strings.Join(own, ";")
	}
	return out
}

func readInput(t *testing.T, path string) hooks.Input {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the hook wrote no input: %v", err)
	}
	var in hooks.Input
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("the hook's stdin is not the documented document: %v\n%s", err, b)
	}
	if in.Schema != hooks.Schema {
		t.Fatalf("schema %d", in.Schema)
	}
	return in
}

func journalEvents(t *testing.T, dir string) []event.Event {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	var evs []event.Event
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e event.Event
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			evs = append(evs, e)
		}
	}
	return evs
}

// A before_run hook that fails refuses the run: exit 8, its words in the
// error, the hooks after it not run, and nothing touched: every host on
// the release it ran, nothing staged, no lock (or any relctl file) written
// on any host, every server in rotation as before, no run journal. A hook
// that times out refuses the same way, within its bound.
func TestBeforeRunHookRefusesWithNothingTouched(t *testing.T) {
	tmp := t.TempDir()
	in, second := filepath.Join(tmp, "in.json"), filepath.Join(tmp, "second-ran")
	d := hookDemo(t, 2, "", `hooks:
  before_run:
    - 'cat > `+in+`; [ -n "$RELCTL_TICKET" ] || { echo "no change ticket: give --ticket" >&2; exit 3; }'
    - 'touch `+second+`'
`)
	before := hostStates(t, d)
	dir, _ := journal.Dir("shop")
	code, out, errs := run(t, "apply", "-f", d.FleetFile, "--to", "1.1.0", "--yes", "--plain", "--reason", "checkout fix $(touch "+second+")")
	if code != ExitRefused {
		t.Fatalf("exit %d, want %d (refused by before_run)\nstdout:\n%s\nstderr:\n%s", code, ExitRefused, out, errs)
	}
	for _, want := range []string{"refused by a before_run hook", "hooks.before_run[0] failed: exit status 3: no change ticket: give --ticket", "nothing was touched"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if !strings.Contains(errs, "HOOK\thooks.before_run[0] failed") {
		t.Errorf("the plain output does not report the hook:\n%s", errs)
	}
	got := readInput(t, in)
	if got.Hook != "before_run" || got.Plan == nil || got.To != "1.1.0" || got.From != "1.0.0" || got.Reason != "checkout fix $(touch "+second+")" ||
		got.Ticket != "" || len(got.Hosts) != 2 || got.RunID == "" || got.Outcome != "" || got.ExitCode != nil {
		t.Errorf("before_run input = %+v", got)
	}
	if _, err := os.Stat(second); err == nil {
		t.Error("a before_run hook ran after one that failed (or the reason ran as a command)")
	}
	after := hostStates(t, d)
	for _, h := range d.Hosts {
		if before[h.Name] != after[h.Name] {
			t.Errorf("%s changed:\n before %s\n after  %s", h.Name, before[h.Name], after[h.Name])
		}
		if !regexp.MustCompile(`^current=\S*/1\.0\.0 releases=1\.0\.0 lb=UP `).MatchString(after[h.Name]) {
			t.Errorf("%s is not on 1.0.0 alone, in rotation: %s", h.Name, after[h.Name])
		}
		if strings.Contains(after[h.Name], "/.relctl/lock") {
			t.Errorf("%s: the lock was taken: %s", h.Name, after[h.Name])
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("a refused run wrote %v", files)
	}

	// A before_run hook past its timeout: refused the same way, in time.
	src, _ := os.ReadFile(d.FleetFile)
	i := strings.Index(string(src), "hooks:")
	os.WriteFile(d.FleetFile, []byte(string(src[:i])+"hooks:\n  before_run:\n    - {command: 'sleep 60 & wait', timeout: 500ms}\n"), 0o600)
	t0 := time.Now()
	code, _, errs = run(t, "apply", "-f", d.FleetFile, "--to", "1.1.0", "--yes", "--plain", "--ticket", "CHG-1")
	if code != ExitRefused || !strings.Contains(errs, "hooks.before_run[0] failed: timed out after 500ms") {
		t.Fatalf("exit %d:\n%s", code, errs)
	}
	if el := time.Since(t0); el > 20*time.Second {
		t.Errorf("a 500ms hook held the refusal for %s", el)
	}
	if after2 := hostStates(t, d); after2["web1"] != before["web1"] || after2["web2"] != before["web2"] {
		t.Errorf("the timed-out hook's run touched a host:\n%v\n%v", before, after2)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("a refused run wrote %v", files)
	}
}

// Notification hooks that fail change nothing: the run succeeds, exit 0,
// and each failure is reported in the output, the events and the journal.
// after_run gets the summary (and RELCTL_*), after_canary the gate event
// while the run holds the lock (which carries the ticket and reason), and
// the audit records carry them too.
func TestNotificationHooksFailWithoutChangingTheRun(t *testing.T) {
	tmp := t.TempDir()
	p := func(n string) string { return filepath.Join(tmp, n) }
	d := hookDemo(t, 2, "", "")
	lockFile := filepath.Join(d.Hosts[0].Path, ".relctl", "lock")
	src, _ := os.ReadFile(d.FleetFile)
	os.WriteFile(d.FleetFile, append(src, []byte(`hooks:
  after_canary:
    - 'cat > `+p("canary.json")+`; cp `+lockFile+` `+p("lock-at-gate")+`; echo canary hook broke >&2; exit 1'
  after_run:
    - 'cat > `+p("after.json")+`; env | grep ^RELCTL_ > `+p("after.env")+`; exit 2'
    - 'echo second after_run ran > `+p("after2")+`'
  on_failure: ['touch `+p("on-failure")+`']
  on_rollback:
    - 'cat > `+p("rollback.json")+`; exit 5'
`)...), 0o600)
	code, out, errs := run(t, "apply", "-f", d.FleetFile, "--to", "1.1.0", "--yes", "--plain", "--ticket", "CHG-7", "--reason", "release train 12")
	if code != ExitOK {
		t.Fatalf("exit %d, want 0 whatever the hooks did\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if !strings.Contains(out, "outcome:\tsucceeded") || !strings.Contains(out, "hook failed:\thooks.after_canary[0]: exit status 1") ||
		!strings.Contains(out, "hook failed:\thooks.after_run[0]: exit status 2") {
		t.Errorf("the summary does not report the failed hooks:\n%s", out)
	}
	if !strings.Contains(errs, "HOOK\thooks.after_canary[0] failed: exit status 1: canary hook broke (a notification") {
		t.Errorf("the plain output does not report the hook:\n%s", errs)
	}
	if _, err := os.Stat(p("on-failure")); err == nil {
		t.Error("on_failure ran for a run that succeeded")
	}
	if _, err := os.Stat(p("rollback.json")); err == nil {
		t.Error("on_rollback ran for a run that rolled nothing back")
	}
	if b, _ := os.ReadFile(p("after2")); !strings.Contains(string(b), "second after_run ran") {
		t.Error("the second after_run hook did not run after the first failed")
	}
	canary := readInput(t, p("canary.json"))
	if canary.Hook != "after_canary" || canary.Event == nil || canary.Event.Type != event.GateRequested || canary.Event.Control != event.CtlCanaryGate || canary.Ticket != "CHG-7" {
		t.Errorf("after_canary input = %+v (event %+v)", canary, canary.Event)
	}
	lock, _ := os.ReadFile(p("lock-at-gate"))
	if !strings.Contains(string(lock), `"ticket":"CHG-7"`) || !strings.Contains(string(lock), `"reason":"release train 12"`) {
		t.Errorf("the lock held at the gate does not carry the ticket and reason: %s", lock)
	}
	after := readInput(t, p("after.json"))
	if after.Hook != "after_run" || after.Outcome != event.OutcomeSucceeded || after.ExitCode == nil || *after.ExitCode != 0 || after.Summary == nil ||
		strings.Join(after.Summary.Upgraded, ",") != "web1,web2" || after.Summary.Versions["web2"] != "1.1.0" || after.Journal == "" ||
		after.Ticket != "CHG-7" || after.Reason != "release train 12" || after.Operator == "" {
		t.Errorf("after_run input = %+v (summary %+v)", after, after.Summary)
	}
	if len(after.Summary.Hooks) != 1 || after.Summary.Hooks[0].Place != "hooks.after_canary[0]" || after.Summary.Hooks[0].OK() {
		t.Errorf("after_run's summary.hooks = %+v, want the failed after_canary", after.Summary.Hooks)
	}
	env, _ := os.ReadFile(p("after.env"))
	for _, want := range []string{"RELCTL_OUTCOME=succeeded", "RELCTL_EXIT_CODE=0", "RELCTL_TICKET=CHG-7", "RELCTL_REASON=release train 12", "RELCTL_HOOK=after_run", "RELCTL_RUN_ID=" + after.RunID, "RELCTL_FROM=1.0.0", "RELCTL_TO=1.1.0", "RELCTL_APP=shop"} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("after_run env lacks %q:\n%s", want, env)
		}
	}
	// The journal has every hook's event, the run_started plan the note.
	dir, _ := journal.Dir("shop")
	var hookEvents []string
	var started *event.Event
	for _, e := range journalEvents(t, dir) {
		if e.Type == event.HookFinished {
			hookEvents = append(hookEvents, e.Hook.Place+"="+string(e.Status))
		}
		if e.Type == event.RunStarted {
			started = &e
		}
	}
	if strings.Join(hookEvents, " ") != "hooks.after_canary[0]=failed hooks.after_run[0]=failed hooks.after_run[1]=ok" {
		t.Errorf("journal hook events: %v", hookEvents)
	}
	if started == nil || started.Plan.Ticket != "CHG-7" || started.Plan.Reason != "release train 12" {
		t.Errorf("run_started = %+v", started)
	}
	// The audit record on every host carries them.
	for _, h := range d.Hosts {
		b, _ := os.ReadFile(filepath.Join(h.Path, ".relctl", "history.jsonl"))
		if !strings.Contains(string(b), `"reason":"release train 12","ticket":"CHG-7"`) {
			t.Errorf("%s: audit lacks the reason and ticket: %s", h.Name, b)
		}
	}

	// An emergency downgrade takes --ticket beside its --reason; it is not
	// a rollback, so on_rollback stays quiet, and after_run reports it.
	os.Remove(p("after.json"))
	code, out, errs = run(t, "downgrade", "-f", d.FleetFile, "--to", "1.0.0", "--reason", "checkout 500s", "--ticket", "INC-9", "--yes", "--plain")
	if code != ExitOK {
		t.Fatalf("downgrade: exit %d\n%s\n%s", code, out, errs)
	}
	dg := readInput(t, p("after.json"))
	if dg.Kind != "downgrade" || dg.Ticket != "INC-9" || dg.Reason != "checkout 500s" || dg.Outcome != event.OutcomeSucceeded {
		t.Errorf("after_run input of the downgrade = %+v", dg)
	}
	if _, err := os.Stat(p("rollback.json")); err == nil {
		t.Error("on_rollback ran for a downgrade")
	}
	if !strings.Contains(out, "hook failed:\thooks.after_run[0]: exit status 2") {
		t.Errorf("downgrade summary:\n%s", out)
	}
}

// A canary that fails its health check: the failure policy rolls back
// (exit 3); on_failure, on_rollback and after_run all run, get that exit
// code and outcome, and their own failures leave it 3.
func TestEndHooksOfARolledBackRun(t *testing.T) {
	tmp := t.TempDir()
	p := func(n string) string { return filepath.Join(tmp, n) }
	d := hookDemo(t, 2, "1.1.0", `hooks:
  on_failure: ['echo "$RELCTL_HOOK $RELCTL_OUTCOME $RELCTL_EXIT_CODE" >> `+p("log")+`; exit 1']
  on_rollback: ['echo "$RELCTL_HOOK $RELCTL_OUTCOME $RELCTL_EXIT_CODE" >> `+p("log")+`; exit 1']
  after_run: ['echo "$RELCTL_HOOK $RELCTL_OUTCOME $RELCTL_EXIT_CODE" >> `+p("log")+`; cat > `+p("after.json")+`; exit 1']
`)
	code, out, errs := run(t, "apply", "-f", d.FleetFile, "--to", "1.1.0", "--yes", "--plain")
	if code != ExitRolledBack {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errs)
	}
	b, _ := os.ReadFile(p("log"))
	if want := "on_failure rolled back 3\non_rollback rolled back 3\nafter_run rolled back 3\n"; string(b) != want {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", b, want)
	}
	in := readInput(t, p("after.json"))
	if in.Summary == nil || in.Summary.Error == "" || len(in.Summary.Hooks) != 2 {
		t.Errorf("after_run summary = %+v", in.Summary)
	}
	for _, h := range d.Hosts {
		if cur, _ := os.Readlink(filepath.Join(h.Path, "current")); !strings.HasSuffix(cur, "1.0.0") {
			t.Errorf("%s: current -> %s after the rollback", h.Name, cur)
		}
	}
}
