package lb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file holds the HAProxy driver's reload detection: a reload starts a
// new process from the config file, which forgets every runtime `set server
// ... state drain` unless the config loads a server-state file that was
// dumped just before. `show info` names the answering process (Pid,
// Start_time_sec); when it changes, every server the driver holds out of
// rotation on that endpoint is drained again.

// parseShowInfo reads Pid and Start_time_sec (or, on versions without it,
// now - Uptime_sec) from `show info`. Something that speaks the runtime API
// without naming its process (the demo's minilb has no Pid) gives a zero
// Pid, or a zero haproxyProc when it reports no uptime either: reloads
// cannot be told there.
func parseShowInfo(reply string, now time.Time) (haproxyProc, error) {
	var p haproxyProc
	uptime := int64(-1)
	for _, line := range strings.Split(reply, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Pid":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return haproxyProc{}, fmt.Errorf("show info: Pid %q is not a process id", v)
			}
			p.Pid = n
		case "Start_time_sec":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return haproxyProc{}, fmt.Errorf("show info: Start_time_sec %q is not a number", v)
			}
			p.Start = n
		case "Uptime_sec":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return haproxyProc{}, fmt.Errorf("show info: Uptime_sec %q is not a number", v)
			}
			uptime = n
		}
	}
	if p.Start == 0 && uptime >= 0 {
		p.Start = now.Unix() - uptime
	}
	return p, nil
}

// sameOrOlder reports whether cur is the process last was, or an older one
// still answering while a newer one takes over. Without pids, processes are
// told apart by start time alone, with 2 s of slack (now - uptime jitters).
func sameOrOlder(cur, last haproxyProc, retired map[int]bool) bool {
	if cur.Pid != 0 && last.Pid != 0 {
		return cur.Pid == last.Pid || retired[cur.Pid] || (cur.Start != 0 && last.Start != 0 && cur.Start < last.Start)
	}
	return cur.Start <= last.Start+2
}

// checkReload asks endpoint i which process answers and, when it is a new
// one, drains again every server held out of rotation there. The first read
// only records the process. An error leaves the recorded process unchanged,
// so the next call retries the re-drain.
func (h *haproxy) checkReload(ctx context.Context, i int) error {
	ep := h.cfg.Endpoints[i]
	reply, err := h.command(ctx, ep, "show info")
	if err != nil {
		return fmt.Errorf("show info: %w", err)
	}
	cur, err := parseShowInfo(reply, time.Now())
	if err != nil {
		return err
	}
	if cur == (haproxyProc{}) {
		return nil // the endpoint does not say which process answers
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	last := h.procs[i]
	switch {
	case last == (haproxyProc{}):
		h.procs[i] = cur
		return nil
	case sameOrOlder(cur, last, h.retired[i]):
		return h.retryLost(ctx, i)
	}
	return h.redrain(ctx, i, last, cur)
}

// retryLost retries the re-drains that failed after an earlier reload of
// endpoint i. Callers hold h.mu.
func (h *haproxy) retryLost(ctx context.Context, i int) error {
	lost := make([]string, 0, len(h.lost[i]))
	for s := range h.lost[i] {
		lost = append(lost, s)
	}
	sort.Strings(lost)
	for _, s := range lost {
		if err := h.setState(ctx, h.cfg.Endpoints[i], s, "drain"); err != nil {
			return fmt.Errorf("%s is still in rotation on %s since a reload; drain it again: %w", s, h.where(h.cfg.Endpoints[i]), err)
		}
		delete(h.lost[i], s)
		h.notes[s] = append(h.notes[s], fmt.Sprintf("%s forgot at a reload that %s was drained: drained it again", h.where(h.cfg.Endpoints[i]), s))
	}
	return nil
}

// redrain drains again, on endpoint i now answered by cur instead of last,
// every server held there that cur does not have drained. Callers hold h.mu.
func (h *haproxy) redrain(ctx context.Context, i int, last, cur haproxyProc) error {
	ep := h.cfg.Endpoints[i]
	held := make([]string, 0, len(h.held[i]))
	for s := range h.held[i] {
		held = append(held, s)
	}
	sort.Strings(held)
	what := fmt.Sprintf("%s reloaded (pid %d → %d)", h.where(ep), last.Pid, cur.Pid)
	if cur.Pid == 0 || last.Pid == 0 {
		what = fmt.Sprintf("%s restarted (up since %s, was %s)", h.where(ep),
			time.Unix(cur.Start, 0).UTC().Format(time.TimeOnly), time.Unix(last.Start, 0).UTC().Format(time.TimeOnly))
	}
	if len(held) == 0 {
		h.notes[""] = append(h.notes[""], what+"; relctl held no server out of rotation there")
		h.retire(i, cur)
		return nil
	}
	admins, err := h.admin(ctx, ep)
	if err != nil {
		return fmt.Errorf("%s; read server states to re-drain %s: %w", what, strings.Join(held, ", "), err)
	}
	var errs []error
	for _, s := range held {
		if adm, ok := findAdmin(admins, h.cfg.Backend, s); ok && adm.AdminStatus() != StatusUp {
			h.notes[s] = append(h.notes[s], fmt.Sprintf("%s; %s is still drained there (server state kept across the reload)", what, s))
			continue
		}
		if err := h.setState(ctx, ep, s, "drain"); err != nil {
			// Retried by every later call until it works or s is enabled.
			h.lost[i][s] = true
			errs = append(errs, fmt.Errorf("%s and forgot that %s was drained; drain it again: %w", what, s, err))
			continue
		}
		h.notes[s] = append(h.notes[s], fmt.Sprintf("%s and forgot that %s was drained: drained it again", what, s))
	}
	h.retire(i, cur)
	return errors.Join(errs...)
}

// retire records cur as endpoint i's process. Callers hold h.mu.
func (h *haproxy) retire(i int, cur haproxyProc) {
	if h.procs[i].Pid != 0 {
		h.retired[i][h.procs[i].Pid] = true
	}
	h.procs[i] = cur
	h.reloads[i]++
}

// reloadCount is how many reloads of endpoint i were handled so far (by
// any call): a change tells a caller that a state it read may predate a
// re-drain.
func (h *haproxy) reloadCount(i int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reloads[i]
}

// setHeld sends `set server ... state <state>` to endpoint i and records
// the result in held: drain adds server, ready removes it. Holding h.mu
// across the command keeps a concurrent reload check from acting on a
// held set that is about to change.
func (h *haproxy) setHeld(ctx context.Context, i int, server, state string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.setState(ctx, h.cfg.Endpoints[i], server, state); err != nil {
		return err
	}
	switch state {
	case "drain":
		h.held[i][server] = true
	case "ready":
		delete(h.held[i], server)
	}
	delete(h.lost[i], server)
	return nil
}

// takeNotes returns and forgets the reload notes about server and the
// general ones.
func (h *haproxy) takeNotes(server string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	notes := append(h.notes[""], h.notes[server]...)
	delete(h.notes, "")
	delete(h.notes, server)
	return strings.Join(notes, "; ")
}

// TakeNotes implements NoteTaker.
func (h *haproxy) TakeNotes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := make([]string, 0, len(h.notes))
	for k := range h.notes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, h.notes[k]...)
	}
	h.notes = map[string][]string{}
	return out
}
