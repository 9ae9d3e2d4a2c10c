package lb

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/shell"
)

// This file holds the checks every driver shares: Verify (the server is in
// rotation on every endpoint) and EnsureOut (right before the app stops, the
// server is still out of rotation everywhere, re-drained if not). Both read
// the balancer's own state through States, so they check, never assume.

// serverRows returns server's rows by endpoint, and the endpoints (by name)
// that did not report it at all.
func serverRows(sts []ServerState, endpoints []Endpoint, server string) (map[string]ServerState, []string) {
	rows := map[string]ServerState{}
	for _, st := range sts {
		if st.Server == server {
			rows[st.Endpoint] = st
		}
	}
	var missing []string
	for _, ep := range endpoints {
		if _, ok := rows[ep.String()]; !ok {
			missing = append(missing, ep.String())
		}
	}
	return rows, missing
}

// verifyUp checks that server is UP on every endpoint, from one States read.
func verifyUp(ctx context.Context, b Balancer, endpoints []Endpoint, server string) error {
	sts, err := b.States(ctx)
	if err != nil {
		return fmt.Errorf("verify %s: %w", server, err)
	}
	rows, missing := serverRows(sts, endpoints, server)
	if len(missing) > 0 {
		return fmt.Errorf("verify %s: not reported by %s", server, strings.Join(missing, ", "))
	}
	var bad []string
	for _, ep := range endpoints {
		if st := rows[ep.String()]; st.Status != StatusUp {
			bad = append(bad, fmt.Sprintf("%s: %s, check %s", ep.String(), st.Status, orNone(st.CheckStatus)))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("verify %s: %w (%s)", server, ErrNotUp, strings.Join(bad, "; "))
	}
	return nil
}

// ensureOut checks that server is out of rotation (DRAIN or MAINT) and idle
// on every endpoint. If any endpoint has it back in rotation (a reload, or
// another operator), or it still has sessions, it drains it again through
// b.Drain (which waits for idle or the drain timeout) and says so in note.
func ensureOut(ctx context.Context, b Balancer, endpoints []Endpoint, server string) (note string, err error) {
	sts, err := b.States(ctx)
	if err != nil {
		return "", fmt.Errorf("re-check %s before stop: %w", server, err)
	}
	rows, missing := serverRows(sts, endpoints, server)
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("re-check %s before stop: not reported by %s", server, strings.Join(missing, ", "))
	}
	var back, notOut, busy []string
	for _, ep := range endpoints {
		st := rows[ep.String()]
		switch {
		case st.Status == StatusUp || st.Status == StatusNoLB:
			back = append(back, fmt.Sprintf("%s (%s)", ep.String(), st.Status))
		case !st.OutOfRotation():
			// DOWN or UNKNOWN without an admin drain: no traffic now, but
			// back in rotation as soon as a check passes.
			notOut = append(notOut, fmt.Sprintf("%s (%s)", ep.String(), st.Status))
		case st.Sessions+st.Queued > 0:
			busy = append(busy, fmt.Sprintf("%s (%d sessions)", ep.String(), st.Sessions+st.Queued))
		}
	}
	if len(back)+len(notOut)+len(busy) == 0 {
		return "", nil
	}
	var why []string
	if len(back) > 0 {
		why = append(why, "back in rotation on "+strings.Join(back, ", "))
	}
	if len(notOut) > 0 {
		why = append(why, "not drained on "+strings.Join(notOut, ", "))
	}
	if len(busy) > 0 {
		why = append(why, "still busy on "+strings.Join(busy, ", "))
	}
	was := server + " was " + strings.Join(why, " and ")
	res, err := b.Drain(ctx, server)
	if err != nil {
		return res.Note, fmt.Errorf("%s; re-drain before stop: %w", was, err)
	}
	var mine string
	switch {
	case !res.Idle && !res.Assumed:
		return res.Note, fmt.Errorf("%s; drained again but %d session(s) remain after %s: %w", was, res.Remaining, res.Waited.Round(time.Millisecond), ErrNotIdle)
	case res.Assumed:
		mine = fmt.Sprintf("%s: drained again, waited %s (sessions not counted)", was, res.Waited.Round(time.Millisecond))
	default:
		mine = fmt.Sprintf("%s: drained again, idle after %s", was, res.Waited.Round(time.Millisecond))
	}
	return joinNotes(res.Note, mine), nil
}

// joinNotes joins the non-empty notes with "; ".
func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}

// onHost runs cmd on ep's SSH host when it has one: the form a repair hint
// takes in a preflight error. cmd is already a shell command line.
func onHost(ep Endpoint, cmd string) string {
	if ep.SSH == "" {
		return cmd
	}
	return "ssh " + shell.Quote(ep.SSH) + " " + shell.Quote(cmd)
}

// ensureIdle is EnsureOut's second half for drivers that cannot count
// sessions but have an idle_check command (nginx, exec): once the server is
// out of rotation everywhere, the command must pass on every endpoint; if
// it does not, wait for it as a drain does (pollIdle), and say so.
func ensureIdle(ctx context.Context, c Connector, eps []Endpoint, cfg Config, idle *cmdTemplate, server string) (string, error) {
	script, err := idle.render(server, cfg.Backend, addressOf(cfg, server))
	if err != nil {
		return "", fmt.Errorf("re-check %s before stop: %w", server, err)
	}
	var busy []string
	for _, ep := range eps {
		cctx, cancel := context.WithTimeout(ctx, cmdTimeout)
		_, err := c.RunOn(cctx, ep.SSH, script)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("re-check %s before stop: %w", server, ctx.Err())
			}
			busy = append(busy, ep.String())
		}
	}
	if len(busy) == 0 {
		return "", nil
	}
	was := fmt.Sprintf("%s was still busy on %s (idle_check failed)", server, strings.Join(busy, ", "))
	res, err := pollIdle(ctx, c, eps, script, time.Now(), cfg)
	if err != nil {
		return "", fmt.Errorf("%s; waiting for idle before stop: %w", was, err)
	}
	if !res.Idle {
		return "", fmt.Errorf("%s; still busy after %s: %w", was, res.Waited.Round(time.Millisecond), ErrNotIdle)
	}
	return fmt.Sprintf("%s: waited, idle after %s", was, res.Waited.Round(time.Millisecond)), nil
}
