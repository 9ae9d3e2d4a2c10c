package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/hooks"
)

// Hooks on real parts (OpenSSH sshd hosts, HAProxy, the relctl binary): a
// before_run hook that wants a change ticket refuses a run without one
// (exit 8) with every host on its release, every server UP in HAProxy, no
// lock and no journal; with the ticket the run goes, and after_run gets the
// run's summary as the documented JSON on stdin, which the test decodes
// strictly and checks against the fleet and the journal.
func TestHooksOnRealFleet(t *testing.T) {
	s := newStage(t, 3, "haproxy", "", nil)
	hookDir := t.TempDir()
	in := filepath.Join(hookDir, "after_run.json")
	env := filepath.Join(hookDir, "after_run.env")
	src, err := os.ReadFile(s.fleetFile)
	if err != nil {
		t.Fatal(err)
	}
	hooksYAML := `hooks:
  timeout: 20s
  before_run:
    - 'cat >/dev/null; [ -n "$RELCTL_TICKET" ] || { echo "no change ticket: give --ticket" >&2; exit 1; }'
  after_run:
    - 'cat > ` + in + `; env | grep ^RELCTL_ | sort > ` + env + `'
`
	if err := os.WriteFile(s.fleetFile, append(src, []byte(hooksYAML)...), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 8 || !strings.Contains(errs, "refused by a before_run hook: hooks.before_run[0] failed: exit status 1: no change ticket: give --ticket") {
		t.Fatalf("apply without a ticket: exit %d, want 8\n%s\n%s", code, out, errs)
	}
	t.Logf("refused apply's stderr:\n%s", errs)
	s.wantAll("1.0.0")
	inService(t, s)
	if _, err := os.Stat(filepath.Join(s.f.Hosts[0].Path, ".relctl", "lock")); !os.IsNotExist(err) {
		t.Errorf("the refused run left a lock (%v)", err)
	}
	if files, _ := filepath.Glob(filepath.Join(s.journalDir(), "*")); len(files) != 0 {
		t.Errorf("the refused run wrote %v", files)
	}
	if _, err := os.Stat(in); err == nil {
		t.Error("after_run ran for a run that never started")
	}

	reason := `canary "checkout" fix; $(id)`
	code, out, errs = s.relctl("apply", "--to", "1.1.0", "--yes", "--plain", "--ticket", "CHG-42", "--reason", reason)
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.1.0")
	inService(t, s)

	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatalf("after_run got nothing: %v", err)
	}
	t.Logf("after_run stdin: %s", b)
	var doc hooks.Input
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("after_run's stdin is not the documented document: %v\n%s", err, b)
	}
	run := s.latestRun()
	sum := doc.Summary
	if doc.Schema != 1 || doc.Hook != "after_run" || doc.RunID != run.ID || doc.App != "shop" || doc.Kind != "upgrade" ||
		doc.From != "1.0.0" || doc.To != "1.1.0" || doc.Ticket != "CHG-42" || doc.Reason != reason ||
		doc.Outcome != event.OutcomeSucceeded || doc.ExitCode == nil || *doc.ExitCode != 0 || doc.Journal != run.Path ||
		strings.Join(doc.Hosts, ",") != "web1,web2,web3" || doc.Fleet != s.fleetFile {
		t.Errorf("after_run document = %+v", doc)
	}
	if sum == nil || strings.Join(sum.Upgraded, ",") != "web1,web2,web3" || len(sum.Failed) != 0 || len(sum.LeftDrained) != 0 ||
		!sum.PostMigrated || sum.Versions["web3"] != "1.1.0" || sum.Kind != "upgrade" || sum.Journal != run.Path {
		t.Fatalf("after_run summary = %+v", sum)
	}
	// The summary is the run_finished one, plus the before_run hook that passed.
	if run.Summary == nil || strings.Join(run.Summary.Upgraded, ",") != strings.Join(sum.Upgraded, ",") || run.Summary.Elapsed != sum.Elapsed {
		t.Errorf("after_run's summary differs from the journal's run_finished: %+v vs %+v", sum, run.Summary)
	}
	if len(sum.Hooks) != 1 || sum.Hooks[0].Place != "hooks.before_run[0]" || !sum.Hooks[0].OK() {
		t.Errorf("summary.hooks = %+v", sum.Hooks)
	}
	envText, _ := os.ReadFile(env)
	for _, want := range []string{"RELCTL_EXIT_CODE=0", "RELCTL_OUTCOME=succeeded", "RELCTL_TICKET=CHG-42", "RELCTL_REASON=" + reason, "RELCTL_RUN_ID=" + run.ID, "RELCTL_HOOK=after_run"} {
		if !strings.Contains(string(envText), want+"\n") {
			t.Errorf("after_run env lacks %q:\n%s", want, envText)
		}
	}
	if run.Original.Ticket != "CHG-42" || run.Original.Reason != reason {
		t.Errorf("journal run_started: ticket %q reason %q", run.Original.Ticket, run.Original.Reason)
	}
	// The audit history has both, for relctl history.
	code, out, errs = s.relctl("history", "--json")
	if code != 0 {
		t.Fatalf("history: exit %d\n%s", code, errs)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct{ Run, Ticket, Reason string }
		if json.Unmarshal([]byte(l), &r) == nil && r.Run == run.ID {
			n++
			if r.Ticket != "CHG-42" || r.Reason != reason {
				t.Errorf("history record %s", l)
			}
		}
	}
	if n != 3 {
		t.Errorf("%d history records of run %s, want 3:\n%s", n, run.ID, out)
	}
}

// The TUI's runs run the same hooks (the start is shared): on real parts,
// the operator promotes the canary, then rolls back mid-run. after_canary
// gets the gate event, on_rollback and after_run the summary of the rolled
// back run with exit code 3; after_run fails, and relctl still exits 3.
func TestTUIRunHooksOnRealFleet(t *testing.T) {
	hookDir := t.TempDir()
	p := func(n string) string { return filepath.Join(hookDir, n) }
	s := newStage(t, 4, "haproxy", "rollout:\n  batches: [1, 1]\n  pause_after_canary: true\n  on_failure: rollback\n"+`hooks:
  after_canary: ['cat > `+p("canary.json")+`']
  on_rollback: ['cat > `+p("rollback.json")+`']
  on_failure: ['touch `+p("on-failure")+`']
  after_run: ['cat > `+p("after.json")+`; exit 1']
`, nil)
	tm := newTerm(t, []string{"RELCTL_FLEET=" + s.fleetFile, "XDG_STATE_HOME=" + s.state}, s.dir)
	upgradeThenRollBack(t, tm, false)
	tm.keys("q")
	if code := tm.exitCode(60 * time.Second); code != "3" {
		t.Errorf("exit %s, want 3 (rolled back) whatever after_run did", code)
	}
	s.wantAll("1.0.0")
	read := func(name string) hooks.Input {
		t.Helper()
		b, err := os.ReadFile(p(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var in hooks.Input
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("%s is not the documented document: %v\n%s", name, err, b)
		}
		return in
	}
	canary := read("canary.json")
	if canary.Event == nil || canary.Event.Type != event.GateRequested || canary.Event.Version != "2.0.0" && canary.Event.Version != "1.1.0" {
		t.Errorf("after_canary input: %+v (event %+v)", canary, canary.Event)
	}
	for _, name := range []string{"rollback.json", "after.json"} {
		in := read(name)
		if in.Outcome != event.OutcomeRolledBack || in.ExitCode == nil || *in.ExitCode != 3 || in.Summary == nil || len(in.Summary.RolledBack) == 0 {
			t.Errorf("%s: %+v (summary %+v)", name, in, in.Summary)
		}
	}
	if _, err := os.Stat(p("on-failure")); err == nil {
		t.Error("on_failure ran for an operator's rollback of healthy hosts")
	}
	run := s.latestRun()
	var hookEvents []string
	b, _ := os.ReadFile(run.Path)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e event.Event
		if json.Unmarshal([]byte(l), &e) == nil && e.Type == event.HookFinished {
			hookEvents = append(hookEvents, e.Hook.Place+"="+string(e.Status))
		}
	}
	if got := strings.Join(hookEvents, " "); got != "hooks.after_canary[0]=ok hooks.on_rollback[0]=ok hooks.after_run[0]=failed" {
		t.Errorf("the journal's hook events: %s", got)
	}
}
