package lb

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file holds the per-server traffic counters that canary analysis
// compares: an optional capability of a Balancer. HAProxy (and the demo's
// minilb, which speaks its runtime API) report them in `show stat`; nginx
// open source and the exec and none kinds have no per-server counters, so
// they do not implement Counters and analysis judges from its checks alone.

// Stats are one server's counters as one balancer process reports them.
// Every field but RespTimeMs is cumulative since that process started: a
// reload starts them from zero again.
type Stats struct {
	Requests   int64 // stot: requests (HTTP mode: one stream per request) sent to the server
	Resp5xx    int64 // hrsp_5xx: responses with a 5xx status
	ConnErrors int64 // econ: requests that failed to connect to the server
	RespErrors int64 // eresp: responses cut or aborted by the server
	// RespTimeMs is HAProxy's rtime: the average response time in ms over
	// the last 1024 requests. It is a gauge, not a counter; -1 when the
	// balancer does not report it.
	RespTimeMs int64
}

// CounterSample is what one endpoint reported at one moment.
type CounterSample struct {
	Endpoint string // Endpoint.String()
	// Process names the balancer process that answered ("pid 812 started
	// 1764412345"); a different Process in a later sample means a reload or
	// a restart, which reset every counter. "" when the endpoint does not
	// say (the demo's minilb has no Pid): a reset is then only seen as
	// counters going down.
	Process string
	At      time.Time        // when the counters were read
	Servers map[string]Stats // by server name, the backend's servers only
}

// Counters is implemented by balancers that count requests and errors per
// server. ServerStats returns one sample per endpoint (an HA pair counts
// separately), read now.
type Counters interface {
	ServerStats(ctx context.Context) ([]CounterSample, error)
}

var _ Counters = (*haproxy)(nil)

// ServerStats implements Counters: `show info` (which process answers)
// then `show stat` on every endpoint.
func (h *haproxy) ServerStats(ctx context.Context) ([]CounterSample, error) {
	out := make([]CounterSample, 0, len(h.cfg.Endpoints))
	for _, ep := range h.cfg.Endpoints {
		info, err := h.command(ctx, ep, "show info")
		if err != nil {
			return nil, fmt.Errorf("%s: show info: %w", h.where(ep), err)
		}
		proc, err := parseShowInfo(info, time.Now())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.where(ep), err)
		}
		reply, err := h.command(ctx, ep, "show stat "+h.cfg.Backend+" 4 -1")
		if err != nil {
			return nil, fmt.Errorf("%s: show stat: %w", h.where(ep), err)
		}
		servers, err := parseServerCounters(reply, h.cfg.Backend)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.where(ep), err)
		}
		s := CounterSample{Endpoint: ep.String(), At: time.Now(), Servers: servers}
		if proc.Pid != 0 {
			s.Process = fmt.Sprintf("pid %d started %d", proc.Pid, proc.Start)
		}
		out = append(out, s)
	}
	return out, nil
}

// parseServerCounters reads the counters of backend's servers from the CSV
// of `show stat`, by column name. pxname, svname, stot and hrsp_5xx are
// required; econ, eresp and rtime count as 0 (rtime -1) when absent or
// empty (HAProxy leaves a column empty where it does not apply).
func parseServerCounters(reply, backend string) (map[string]Stats, error) {
	r, col, err := showStatTable(reply)
	if err != nil {
		return nil, err
	}
	for _, need := range []string{"pxname", "svname", "stot", "hrsp_5xx"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("show stat: header has no %q column: this balancer does not count per-server responses", need)
		}
	}
	get := func(rec []string, name string) string {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	out := map[string]Stats{}
	line := 1
	for {
		rec, err := r.Read()
		if err != nil {
			break // io.EOF, or the blank line that ends the reply
		}
		line++
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		px, sv := get(rec, "pxname"), get(rec, "svname")
		if px != backend || sv == "FRONTEND" || sv == "BACKEND" {
			continue
		}
		num := func(name string, empty int64) (int64, error) {
			s := get(rec, name)
			if s == "" {
				return empty, nil
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("show stat: %s of %s/%s (row %d): %q is not a count", name, px, sv, line, s)
			}
			return n, nil
		}
		var st Stats
		for _, f := range []struct {
			name  string
			dst   *int64
			empty int64
		}{{"stot", &st.Requests, 0}, {"hrsp_5xx", &st.Resp5xx, 0}, {"econ", &st.ConnErrors, 0}, {"eresp", &st.RespErrors, 0}, {"rtime", &st.RespTimeMs, -1}} {
			if *f.dst, err = num(f.name, f.empty); err != nil {
				return nil, err
			}
		}
		out[sv] = st
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("show stat: backend %q has no servers: %w", backend, ErrUnknownBackend)
	}
	return out, nil
}
