package ops

import (
	"context"
	"slices"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/view"
)

// StatusOf is Status for the selected hosts (--hosts, --labels, --roles):
// the hosts and balancer servers of the selection, and the inventory of
// those hosts for the view. An unknown host, label or role is a usage
// error (exit 2) naming it. The lock and the journal are the fleet's.
func (e *Env) StatusOf(ctx context.Context, sel fleet.Selection) (Status, *fleet.Inventory, error) {
	hosts, err := e.Inv.Select(sel)
	if err != nil {
		return Status{}, nil, fail(view.ExitUsage, err)
	}
	st := e.Status(ctx)
	if sel.Empty() {
		return st, e.Inv, nil
	}
	names := map[string]bool{}
	servers := map[string]bool{}
	for _, h := range hosts {
		names[h.Name] = true
		servers[h.Server] = true
	}
	st.Hosts = slices.DeleteFunc(st.Hosts, func(h observe.Host) bool { return !names[h.Name] })
	st.Balancer = slices.DeleteFunc(st.Balancer, func(s lb.ServerState) bool { return !servers[s.Server] })
	return st, e.Inv.WithHosts(hosts), nil
}
