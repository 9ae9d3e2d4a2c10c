package ops

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/shell"
)

// MigrationRecord is what the exactly-once migration wrapper recorded on
// the migrations host about one run's migration step.
type MigrationRecord struct {
	Step, Host string
	To         string // the version it migrates to
	// State is "running" (its shell is alive), "ended" (Status holds its
	// exit status), "died" (its shell ended without recording a status:
	// it may have run in part), "claimed" (claimed, no pid yet) or
	// "none" (never started there).
	State  string
	PID    int
	Status int
}

// migrationRecordScript prints what the wrapper recorded in dir, with the
// wrapper's own test of a live shell (the pid runs, with the start time
// recorded): "status=N", "pid=N alive=yes|no", "claimed" or "none".
func migrationRecordScript(dir string) string {
	return fmt.Sprintf(`d=%s
if [ -f "$d/status" ]; then read -r s < "$d/status"; echo "status=$s"; exit 0; fi
if [ -f "$d/pid" ]; then
  read -r pid st < "$d/pid"
  if kill -0 "$pid" 2>/dev/null && { [ -z "$st" ] || [ "$(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null)" = "$st" ]; }; then
    echo "pid=$pid alive=yes"
  else
    echo "pid=$pid alive=no"
  fi
  exit 0
fi
if [ -d "$d/claim" ]; then echo claimed; else echo none; fi`, shell.Quote(dir))
}

// parseMigrationRecord reads migrationRecordScript's answer.
func parseMigrationRecord(out string) (MigrationRecord, error) {
	var r MigrationRecord
	out = strings.TrimSpace(out)
	switch {
	case out == "none", out == "claimed":
		r.State = out
		return r, nil
	case strings.HasPrefix(out, "status="):
		n, err := strconv.Atoi(strings.TrimPrefix(out, "status="))
		if err != nil {
			return r, fmt.Errorf("unreadable exit status %q", out)
		}
		r.State, r.Status = "ended", n
		return r, nil
	case strings.HasPrefix(out, "pid="):
		pid, alive, _ := strings.Cut(strings.TrimPrefix(out, "pid="), " alive=")
		n, err := strconv.Atoi(pid)
		if err != nil {
			return r, fmt.Errorf("unreadable pid %q", out)
		}
		r.PID, r.State = n, "died"
		if alive == "yes" {
			r.State = "running"
		}
		return r, nil
	}
	return r, fmt.Errorf("unexpected answer %q", out)
}

// MigrationsInFlight reads, for every pre-deploy migration that run
// started and did not finish in its journal, what its wrapper recorded on
// the host: a relctl killed during one leaves it running there.
func (e *Env) MigrationsInFlight(ctx context.Context, run *journal.Run) ([]MigrationRecord, []error) {
	var out []MigrationRecord
	var errs []error
	timeout := e.Inv.Timeouts.Observe
	if timeout <= 0 {
		timeout = fleet.DefaultObserveTimeout
	}
	for _, s := range run.Plan.Steps {
		if s.Kind != plan.StepMigrate || !run.Progress.Started[s.ID] || run.Progress.Finished[s.ID] {
			continue
		}
		h, ok := e.host(s.Host)
		if !ok {
			errs = append(errs, fmt.Errorf("pre-deploy migration to %s (step %s): host %s is not in %s", s.To, s.ID, s.Host, e.Inv.File))
			continue
		}
		dir := rollout.MigrationDir(e.Inv.HostPath(h), run.ID, s.ID)
		rctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := e.output(rctx, s.Host, migrationRecordScript(dir))
		cancel()
		if err == nil {
			var rec MigrationRecord
			rec, err = parseMigrationRecord(res)
			if err == nil {
				rec.Step, rec.Host, rec.To = s.ID, s.Host, s.To
				out = append(out, rec)
				continue
			}
		}
		errs = append(errs, fmt.Errorf("pre-deploy migration to %s (step %s) on %s: its record in %s cannot be read: %w: it may still be running there", s.To, s.ID, s.Host, dir, err))
	}
	return out, errs
}

// migrationNotes say what the pre-deploy migrations of run that started
// and did not finish are doing on their host, for an operator who asks to
// roll back a run that switched no host.
func (e *Env) migrationNotes(ctx context.Context, run *journal.Run) []string {
	recs, errs := e.MigrationsInFlight(ctx, run)
	var notes []string
	for _, r := range recs {
		name := fmt.Sprintf("pre-deploy migration to %s (step %s)", r.To, r.Step)
		var n string
		switch r.State {
		case "running":
			n = fmt.Sprintf("%s still running on %s (pid %d) — it will finish once; relctl did not switch any host. Wait for it to end before starting another run", name, r.Host, r.PID)
		case "ended":
			n = fmt.Sprintf("%s on %s ended with exit status %d (recorded on the host after relctl died) — relctl did not switch any host", name, r.Host, r.Status)
		case "died":
			n = fmt.Sprintf("%s on %s (pid %d) ended without recording its exit status: it may have run in part; check it — relctl did not switch any host", name, r.Host, r.PID)
		case "claimed":
			n = fmt.Sprintf("%s on %s was claimed but its shell never recorded a pid: it did not start — relctl did not switch any host", name, r.Host)
		default:
			n = fmt.Sprintf("%s never started on %s — relctl did not switch any host", name, r.Host)
		}
		notes = append(notes, n)
	}
	for _, err := range errs {
		notes = append(notes, err.Error())
	}
	return notes
}
