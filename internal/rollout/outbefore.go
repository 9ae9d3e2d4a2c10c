package rollout

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/lb"
)

// noteOutBefore runs after a forced balancer preflight passed: it records
// every planned host whose server the balancer already had out of service
// (DOWN by its own check, MAINT, DRAIN) and warns about each, so that the
// run's output, the journal and the summary say the host was out before
// relctl touched it. Such a host goes back into rotation only through
// Enable, which waits for the balancer's check: never while unhealthy.
func (e *Engine) noteOutBefore(ctx context.Context, servers []string) {
	if !e.cfg.ForceBalancer || len(servers) == 0 {
		return
	}
	hostOf := map[string]string{}
	for _, st := range e.plan.Steps {
		if sv := e.host(st.Host).Server; sv != "" && e.plan.Balanced(st.Host) {
			hostOf[sv] = st.Host
		}
	}
	sts, err := e.cfg.Balancer.States(ctx)
	if err != nil {
		e.bus.Emit(event.Event{Type: event.Warning, Message: fmt.Sprintf("--force: could not read which servers were out of service before the run: %v", err)})
		return
	}
	type seen struct{ descs, where []string }
	out := map[string]*seen{}
	for _, st := range sts {
		h, ok := hostOf[st.Server]
		if !ok || (st.Status == lb.StatusUp && !st.OutOfRotation()) {
			continue
		}
		if out[h] == nil {
			out[h] = &seen{}
		}
		out[h].descs = append(out[h].descs, describeOut(st))
		out[h].where = append(out[h].where, st.Endpoint)
	}
	var hosts []string
	for h := range out {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		o := out[h]
		was := o.descs[0]
		for _, d := range o.descs[1:] {
			if d != was {
				// The endpoints disagree: say which saw what.
				parts := make([]string, len(o.descs))
				for i := range o.descs {
					parts[i] = o.descs[i] + " on " + o.where[i]
				}
				was = strings.Join(parts, ", ")
				break
			}
		}
		e.mu.Lock()
		if e.outBefore == nil {
			e.outBefore = map[string]string{}
		}
		e.outBefore[h] = was
		e.mu.Unlock()
		e.bus.Emit(event.Event{Type: event.Warning, Host: h, Message: fmt.Sprintf(
			"%s was %s before this run, out of service: --force upgrades it as it is; it goes back into rotation only once the balancer's check passes, else it stays out and is named",
			h, was)})
	}
}

// describeOut is a server's state for a person: "DOWN (check L4CON)",
// "MAINT", "DRAIN".
func describeOut(st lb.ServerState) string {
	var d string
	switch {
	case st.Admin == lb.StatusMaint || st.Admin == lb.StatusDrain:
		d = string(st.Admin)
	default:
		d = string(st.Status)
	}
	if st.Status == lb.StatusDown && st.CheckStatus != "" {
		d += " (check " + st.CheckStatus + ")"
	}
	return d
}

// outBeforeSummary lists the hosts noteOutBefore recorded and whether the
// run brought each back into rotation: its final state is one the run put
// back in service (as restoreBalancer counts them: Enable passed the
// balancer's check and verified it). A host the run never reached, or left
// drained, is still out. Call with e.mu held.
func (e *Engine) outBeforeSummary() []event.OutBefore {
	var out []event.OutBefore
	for h, was := range e.outBefore {
		st := e.final[h]
		back := st == event.HostInService || st == event.HostRolledBack || (st == event.HostFailed && e.inRollback)
		out = append(out, event.OutBefore{Host: h, Was: was, BackUp: back})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}
