package cli

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/view"
)

// historyOptions are history's flags.
type historyOptions struct {
	Conn  connFlags
	Out   outputFlags
	Limit int
	Host  string // only this host's records
	Run   string // only runs whose id starts with this
	Since string // only records at or after this (a duration back from now, or an RFC 3339 time)
}

// historyFilter is history's --host, --run and --since, checked.
type historyFilter struct {
	host, run string
	since     time.Time // zero: no bound
}

// runPrefixRE is what a run id (or a prefix of one) may hold.
var runPrefixRE = regexp.MustCompile(`^[A-Za-z0-9-]+$`)

// daysRE is a --since of whole days ("7d"), which Go durations lack.
var daysRE = regexp.MustCompile(`^([0-9]+)d$`)

// parseHistoryFilter checks history's flags against inv; a bad value is a
// usage error naming its flag.
func parseHistoryFilter(inv *fleet.Inventory, o *historyOptions, now time.Time) (historyFilter, error) {
	f := historyFilter{host: o.Host, run: o.Run}
	if o.Limit < 0 {
		return f, withCode(ExitUsage, fmt.Errorf("--limit %d: give 0 (all) or more", o.Limit))
	}
	if o.Host != "" {
		var names []string
		for _, h := range inv.Hosts {
			names = append(names, h.Name)
		}
		if !slices.Contains(names, o.Host) {
			return f, withCode(ExitUsage, fmt.Errorf("--host %q: not a host of %s (hosts: %s)", o.Host, inv.File, strings.Join(names, ", ")))
		}
	}
	if o.Run != "" && !runPrefixRE.MatchString(o.Run) {
		return f, withCode(ExitUsage, fmt.Errorf("--run %q: a run id (or its beginning) holds only letters, digits and -, e.g. 20261129T154847Z", o.Run))
	}
	if s := strings.TrimSpace(o.Since); s != "" {
		if m := daysRE.FindStringSubmatch(s); m != nil {
			n, err := strconv.Atoi(m[1])
			if err != nil || n > 100000 {
				return f, withCode(ExitUsage, fmt.Errorf("--since %q: too many days", o.Since))
			}
			f.since = now.Add(-time.Duration(n) * 24 * time.Hour)
		} else if d, err := time.ParseDuration(s); err == nil {
			if d < 0 {
				return f, withCode(ExitUsage, fmt.Errorf("--since %q: a duration back from now is positive (e.g. 24h)", o.Since))
			}
			f.since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			f.since = t
		} else {
			return f, withCode(ExitUsage, fmt.Errorf("--since %q: give a duration back from now (90m, 24h, 7d) or an RFC 3339 time (2026-11-29T15:00:00Z)", o.Since))
		}
	}
	return f, nil
}

func (f historyFilter) keep(r rollout.HistoryRecord) bool {
	switch {
	case f.host != "" && r.Host != f.host:
		return false
	case f.run != "" && !strings.HasPrefix(r.RunID, f.run) && !strings.HasPrefix(r.PrevRun, f.run):
		return false
	case !f.since.IsZero() && r.Time.Before(f.since):
		return false
	}
	return true
}

// runHistory is relctl history: every host's audit records (only --host's
// with it), filtered, newest first, at most --limit.
func runHistory(ios *IO, recs []rollout.HistoryRecord, errs []error, f historyFilter, o *historyOptions) error {
	kept := recs[:0:0]
	for _, r := range recs {
		if f.keep(r) {
			kept = append(kept, r)
		}
	}
	if o.Limit > 0 && len(kept) > o.Limit {
		kept = kept[:o.Limit]
	}
	if o.Out.json {
		for _, r := range kept {
			if err := writeJSON(ios.Out, historyDTO(r)); err != nil {
				return err
			}
		}
	} else if err := printTable(ios, historyTable(kept), o.Out.plain); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return withCode(ExitError, err)
	}
	return nil
}

// historyTable is the records as a table, the free text (REASON) last.
func historyTable(recs []rollout.HistoryRecord) view.Table {
	t := view.Table{Header: []string{"TIME", "HOST", "RUN", "OWNER", "WHAT", "RESULT", "REASON"}}
	for _, r := range recs {
		what := fmt.Sprintf("%s %s → %s", r.Kind, r.From, r.To)
		switch r.Kind {
		case "lock-break":
			what = "lock break of run " + r.PrevRun
		case "lock-takeover":
			what = "lock takeover from run " + r.PrevRun
		}
		t.Rows = append(t.Rows, []string{r.Time.UTC().Format(time.RFC3339), r.Host, r.RunID, r.Owner, what, r.Result, historyReason(r)})
	}
	return t
}

// historyReason is why it happened: a downgrade's audited reason, the
// lock a break or takeover replaced (and whose it was).
func historyReason(r rollout.HistoryRecord) string {
	switch {
	case r.Reason != "":
		return r.Reason
	case r.PrevOwner != "":
		return "the lock of " + r.PrevOwner
	}
	return ""
}
