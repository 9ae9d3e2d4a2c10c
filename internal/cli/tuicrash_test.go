package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/ops/opstest"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/testkit/syncbuf"
	"github.com/relctl/relctl/internal/tui"
)

// These tests run the TUI (teatest) on the real engine, through the same
// backend and operations `relctl` uses, on a local fleet whose hosts run
// relctl's real host-side scripts (opstest), with faults injected.

// tuiOn is the TUI's backend on the fleet over tr, its output in out.
func tuiOn(f *opstest.Fleet, tr *opstest.Transport, out *syncbuf.Buffer) *tuiBackend {
	return &tuiBackend{ctx: context.Background(), ios: &IO{Out: out, Err: out}, env: f.Env(tr)}
}

func teaOn(t *testing.T, tb *tuiBackend, o tui.Options) *teatest.TestModel {
	t.Helper()
	o.App = "shop"
	return teatest.NewTestModel(t, tui.NewModel(context.Background(), tb, o), teatest.WithInitialTermSize(120, 40),
		teatest.WithProgramOptions(
			tea.WithEnvironment([]string{"TERM=xterm-256color", "NO_COLOR=1"}),
			tea.WithColorProfile(colorprofile.Ascii),
		))
}

var ctrlC = tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}

// planned opens the TUI on the upgrade to 1.1.0, as `relctl apply` does.
func planned(t *testing.T, tb *tuiBackend) tui.Options {
	t.Helper()
	pr, err := tb.env.PlanUpgrade(context.Background(), ops.UpgradeOptions{To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tb.keep(pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tui.Options{Plan: p}
}

// journalSays polls the fleet's journal until it holds want.
func journalSays(t *testing.T, f *opstest.Fleet, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		files, _ := filepath.Glob(filepath.Join(f.JournalDir, "*.jsonl"))
		for _, file := range files {
			if b, _ := os.ReadFile(file); strings.Contains(string(b), want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal never said %q within %s", want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finished waits (generously) for the program to end and returns its
// final screen, how its run ended and the exit code relctl gives.
func finished(t *testing.T, tm *teatest.TestModel, tb *tuiBackend, within time.Duration) (string, event.Outcome, *event.Summary, int) {
	t.Helper()
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(within))
	outcome, sum, ok := tui.Ended(fm)
	if !ok {
		t.Fatalf("final model %T", fm)
	}
	return ansi.Strip(fm.View().Content), outcome, sum, codeOf(tb.exit(outcome, sum))
}

// Ctrl-C twice inside the TUI during a command that hangs: the first asks
// the run to stop after the host in flight (which hangs on), the second
// forces — web1 gets one bounded attempt to go back, which hangs too —
// and the TUI ends within the force's bound on the summary naming web1,
// with the exit code the CLI gives a host left out of service (6).
func TestTUICtrlCTwiceDuringAHungCommand(t *testing.T) {
	f := opstest.New(t, opstest.Options{})
	tr := f.Transport()
	tr.Hang("web1", ": start;") // the new release's start, and the attempt to put it back
	// The host-side stop of a lost chain (rollout's chainStopScript), the
	// force's first command on web1: it hangs too, as on a host that
	// stopped answering. (Without it the fake's hung chain, which never
	// ran on the host, is found not started and web1 goes back at once.)
	tr.Hang("web1", "log-begin")
	var out syncbuf.Buffer
	tb := tuiOn(f, tr, &out)
	tm := teaOn(t, tb, planned(t, tb))
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	tm.Type("y")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if what, err := tr.Entered(ctx); err != nil || what != "web1: : start;" {
		t.Fatalf("the hang: %q %v", what, err)
	}

	tm.Send(ctrlC)
	journalSays(t, f, "abort requested: interrupted (Ctrl-C)", time.Minute)
	// The host in flight is not cut by the first Ctrl-C: its start still
	// hangs (no other call to it begins; its timeout is a minute).
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if what, err := tr.Entered(short); err == nil {
		t.Fatalf("the first Ctrl-C cut the host in flight: %q", what)
	}

	forced := time.Now()
	tm.Send(ctrlC)
	scr, outcome, sum, code := finished(t, tm, tb, 90*time.Second)
	took := time.Since(forced)
	t.Logf("the TUI ended %s after the second Ctrl-C: %s, exit %d", took.Round(time.Millisecond), outcome, code)
	if took > 60*time.Second {
		t.Errorf("the forced end took %s", took)
	}
	if sum == nil || !sum.Forced {
		t.Fatalf("summary %+v: not forced", sum)
	}
	if code != ExitPaused {
		t.Errorf("exit %d, want %d (a host out of service)", code, ExitPaused)
	}
	if _, ok := sum.LeftDrained["web1"]; !ok {
		t.Errorf("web1 is not named left out of service: %+v", sum)
	}
	flat := strings.Join(strings.Fields(scr), " ")
	for _, want := range []string{"LEFT DRAINED", "web1:", "forced: a second interrupt"} {
		if !strings.Contains(flat, want) {
			t.Errorf("the final screen does not say %q:\n%s", want, scr)
		}
	}
	if !strings.Contains(out.String(), "NOT IN SERVICE: web1") || !strings.Contains(out.String(), "exit:\t6") {
		t.Errorf("relctl's report after the TUI:\n%s", out.String())
	}
	// Nothing else started: web2 and web3 still serve 1.0.0.
	for _, h := range []string{"web2", "web3"} {
		if f.Version(h) != "1.0.0" || !f.Running(h) {
			t.Errorf("%s: %s, running %v", h, f.Version(h), f.Running(h))
		}
	}
}

// endRun waits for the run to finish (its journal's run_finished), then
// quits the TUI with q, as the operator does after reading the summary.
func endRun(t *testing.T, f *opstest.Fleet, tm *teatest.TestModel, tb *tuiBackend) (string, event.Outcome, *event.Summary, int) {
	t.Helper()
	journalSays(t, f, `"type":"run_finished"`, 2*time.Minute)
	// q while the TUI still shows the run would ask whether to abort it:
	// wait for the summary first.
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return strings.Contains(string(b), "relctl history shows this run as")
	}, teatest.WithDuration(time.Minute), teatest.WithCheckInterval(20*time.Millisecond))
	tm.Type("q")
	return finished(t, tm, tb, time.Minute)
}

// The sshd of web2 dies while web2 stops (its stop fails with a lost
// connection, and web2 answers nothing after): the run rolls web1 back,
// and the done screen names web2 with its state; relctl exits as the CLI
// would for a host left out of service (6).
func TestTUISSHDDiesMidStep(t *testing.T) {
	f := opstest.New(t, opstest.Options{})
	tr := f.Transport()
	tr.DieOn("web2", ": stop;")
	var out syncbuf.Buffer
	tb := tuiOn(f, tr, &out)
	tm := teaOn(t, tb, planned(t, tb))
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	tm.Type("y")
	scr, outcome, sum, code := endRun(t, f, tm, tb)
	t.Logf("outcome %s, exit %d, left drained %v, failed %v, rolled back %v", outcome, code, sum.LeftDrained, sum.Failed, sum.RolledBack)
	if code != ExitPaused {
		t.Errorf("exit %d, want %d (web2 is out of service)", code, ExitPaused)
	}
	why, drained := sum.LeftDrained["web2"]
	if !drained || !strings.Contains(why, "connection lost") {
		t.Errorf("web2 is not named left out of service with its cause: %+v", sum)
	}
	flat := strings.Join(strings.Fields(scr), " ")
	for _, want := range []string{"LEFT DRAINED", "web2: ", "connection lost"} {
		if !strings.Contains(flat, want) {
			t.Errorf("the done screen does not say %q:\n%s", want, scr)
		}
	}
	// web1 went back to 1.0.0 and serves; web3 was never touched.
	for _, h := range []string{"web1", "web3"} {
		if f.Version(h) != "1.0.0" || !f.Running(h) {
			t.Errorf("%s: %s, running %v", h, f.Version(h), f.Running(h))
		}
	}
	if !strings.Contains(out.String(), "NOT IN SERVICE: web2") {
		t.Errorf("relctl's report after the TUI:\n%s", out.String())
	}
}

// openOnUnfinished opens the TUI, as the next relctl does, on the
// journal's unfinished run, and waits until it offers to continue that run
// or roll it back.
func openOnUnfinished(t *testing.T, f *opstest.Fleet, out *syncbuf.Buffer) (*tuiBackend, *teatest.TestModel) {
	t.Helper()
	u, err := journal.Unfinished(f.JournalDir)
	if err != nil || u == nil {
		t.Fatalf("unfinished run: %v %v", u, err)
	}
	tb := tuiOn(f, f.Transport(), out)
	tm := teaOn(t, tb, tui.Options{Unfinished: u})
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		s := string(b)
		return strings.Contains(s, "continue the run") && strings.Contains(s, "roll it back")
	}, teatest.WithDuration(time.Minute), teatest.WithCheckInterval(20*time.Millisecond))
	return tb, tm
}

// relctl is killed while web2 starts on 1.1.0 (its process: frozen, the
// lock's holder gone). The next relctl opens the TUI on the unfinished
// run, offers to continue it or roll it back, and continuing finishes it:
// every host serves 1.1.0, the pre- and post-deploy migrations ran once
// each, the lock is free and relctl exits 0.
func TestTUIResumesAnUnfinishedRun(t *testing.T) {
	f := opstest.New(t, opstest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f.KillDuring(t, "web2", ": start;")
	var out syncbuf.Buffer
	tb, tm := openOnUnfinished(t, f, &out)
	tm.Type("c")
	scr, outcome, sum, code := endRun(t, f, tm, tb)
	if outcome != event.OutcomeSucceeded || code != ExitOK {
		t.Fatalf("outcome %s, exit %d: %+v\n%s\n%s", outcome, code, sum, scr, out.String())
	}
	for _, h := range f.Hosts {
		if f.Version(h) != "1.1.0" || !f.Running(h) {
			t.Errorf("%s: %s, running %v", h, f.Version(h), f.Running(h))
		}
	}
	if got := f.MigrationLines("web1"); strings.Join(got, ",") != "pre 1.1.0,post 1.1.0" {
		t.Errorf("migrations on web1: %q, want each once", got)
	}
	if li, err := tb.env.ReadLockInfo(ctx); err != nil || li != nil {
		t.Errorf("lock after the resumed run: %v %v", li, err)
	}
	if u, err := journal.Unfinished(f.JournalDir); err != nil || u != nil {
		t.Errorf("still unfinished: %v %v", u, err)
	}
	if !strings.Contains(scr, "SUCCEEDED") {
		t.Errorf("the final screen:\n%s", scr)
	}
}

// relctl is killed during the pre-deploy migration; the next relctl opens
// the TUI on the unfinished run and the operator asks to roll it back:
// nothing was switched, but the migration still runs on web1, so the run
// stays unfinished and keeps its lock (closing it would let the next run
// start a second migration beside it); the screen says so with the pid,
// as `relctl resume --rollback` does (exit 4). Once the migration has
// ended, settling the run closes it; the migration ran once.
func TestTUIRollbackAfterKillDuringMigration(t *testing.T) {
	f := opstest.New(t, opstest.Options{Commands: map[string]string{"migrate": opstest.SlowMigrate}})
	id := f.KillDuring(t, "web1", "/.relctl/migrations/")
	pid := f.MigrationPID(t, "web1", id, "migrate")
	var out syncbuf.Buffer
	tb, tm := openOnUnfinished(t, f, &out)
	tm.Type("r")
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return strings.Contains(strings.Join(strings.Fields(string(b)), " "), "stays unfinished")
	}, teatest.WithDuration(time.Minute), teatest.WithCheckInterval(20*time.Millisecond))
	tm.Type("q")
	scr, _, sum, code := finished(t, tm, tb, time.Minute)
	flat := strings.Join(strings.Fields(scr), " ")
	want := "pre-deploy migration to 1.1.0 (step migrate) still running on web1 (pid " + pid + ")"
	if !strings.Contains(flat, want) || !strings.Contains(flat, "stays unfinished and keeps the fleet's lock") {
		t.Errorf("the screen does not say %q and that the run stays unfinished:\n%s", want, scr)
	}
	if sum != nil {
		t.Errorf("summary %+v (exit %d); want no run", sum, code)
	}
	env := f.Env(f.Transport())
	pr, err := env.PlanResume(context.Background(), true)
	if err != nil || pr.Settle == nil {
		t.Fatalf("the run must still be unfinished after the refusal: %+v, %v", pr, err)
	}
	// The migration finishes once, on its own.
	f.Release(t, "web1")
	for deadline := time.Now().Add(time.Minute); len(f.MigrationLines("web1")) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the migration never finished")
		}
	}
	if got := f.MigrationLines("web1"); strings.Join(got, ",") != "pre 1.1.0" {
		t.Errorf("migrations on web1: %q", got)
	}
	waitStatus := filepath.Join(rollout.MigrationDir(f.Path("web1"), id, "migrate"), "status")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(waitStatus); err == nil && len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the migration never recorded its status")
		}
	}
	if pr, err = env.PlanResume(context.Background(), true); err != nil || pr.Settle == nil {
		t.Fatalf("resume --rollback once the migration ended: %+v, %v", pr, err)
	}
	if err := env.Settle(context.Background(), pr); err != nil {
		t.Fatalf("settle once the migration ended: %v", err)
	}
}
