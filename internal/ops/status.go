package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/rollout"
	"github.com/relctl/relctl/internal/shell"
)

// Status is the fleet as relctl status shows it.
type Status struct {
	Hosts    []observe.Host
	Balancer []lb.ServerState
	LBErr    error
	Lock     *rollout.LockInfo
	LockErr  error
	// Unfinished is this machine's unfinished run (JournalErr when the
	// journal cannot be read); Alive says whether its process still runs.
	Unfinished *journal.Run
	JournalErr error
	Alive      *rollout.Liveness
}

// Status observes every host (health included), the balancer, the lock
// and this machine's journal. It changes nothing.
func (e *Env) Status(ctx context.Context) Status {
	var st Status
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); st.Hosts = e.ObserveHosts(ctx, true) }()
	go func() {
		defer wg.Done()
		bal, err := Balancer(e.Inv, e.Conn)
		if err != nil {
			st.LBErr = err
			return
		}
		sctx, cancel := context.WithTimeout(ctx, e.Inv.Timeouts.Observe)
		defer cancel()
		st.Balancer, st.LBErr = bal.States(sctx)
	}()
	wg.Wait()
	st.Lock, st.LockErr = e.ReadLockInfo(ctx)
	st.Unfinished, st.JournalErr = journal.Unfinished(e.JournalDir)
	if r := st.Unfinished; r != nil && st.Lock != nil && st.Lock.RunID == r.ID {
		lv := st.Lock.Liveness()
		st.Alive = &lv
	}
	return st
}

// History reads every host's audit log, newest first; a host that cannot
// be read, or a line that is not a record, is an error naming it.
func (e *Env) History(ctx context.Context) ([]rollout.HistoryRecord, []error) {
	return e.HistoryOf(ctx, nil)
}

// HistoryOf is History of the named hosts only (nil: every host).
func (e *Env) HistoryOf(ctx context.Context, only []string) ([]rollout.HistoryRecord, []error) {
	inv := e.Inv
	var mu sync.Mutex
	var recs []rollout.HistoryRecord
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(inv.SSH.MaxParallel, 1))
	for _, h := range inv.Hosts {
		if only != nil && !slices.Contains(only, h.Name) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f := strings.TrimRight(inv.HostPath(h), "/") + "/.relctl/history.jsonl"
			hctx, cancel := context.WithTimeout(ctx, inv.Timeouts.Observe)
			defer cancel()
			out, err := e.output(hctx, h.Name, fmt.Sprintf("[ -f %[1]s ] && cat %[1]s || true", shell.Quote(f)))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
				return
			}
			for i, line := range strings.Split(out, "\n") {
				if strings.TrimSpace(line) == "" {
					continue
				}
				var r rollout.HistoryRecord
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s:%d: %v", h.Name, f, i+1, err))
					continue
				}
				recs = append(recs, r)
			}
		}()
	}
	wg.Wait()
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.After(recs[j].Time) })
	return recs, errs
}
