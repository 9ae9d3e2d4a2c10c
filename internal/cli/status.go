package cli

import (
	"fmt"
	"strings"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/view"
)

// showStatus is status's view: a table of the hosts (or the JSON document
// of docs/json.md), then the lock, the balancer's and the journal's state.
// It exits 1 when a host could not be read.
func showStatus(ios *IO, inv *fleet.Inventory, st ops.Status, of outputFlags) error {
	unreachable := 0
	for _, h := range st.Hosts {
		if !h.Reachable {
			unreachable++
		}
	}
	var err error
	if unreachable > 0 {
		err = withCode(ExitError, fmt.Errorf("%s unreachable", plural(unreachable, "host")))
	}
	if of.json {
		if werr := writeDoc(ios.Out, statusDoc(inv, st)); werr != nil {
			return werr
		}
		return err
	}
	byServer := map[string][]string{}
	for _, s := range st.Balancer {
		x := string(s.Status)
		if s.Sessions > 0 {
			x += fmt.Sprintf(" (%d sess)", s.Sessions)
		}
		byServer[s.Server] = append(byServer[s.Server], x)
	}
	t := view.Table{Header: []string{"HOST", "VERSION", "HEALTH", "BALANCER", "RELEASES"}}
	for i, h := range st.Hosts {
		v, health := h.Version, h.Health
		if !h.Reachable {
			v, health = "?", "unreachable: "+h.Error
		}
		lbs := ""
		if i < len(inv.Hosts) {
			lbs = strings.Join(byServer[inv.Hosts[i].Server], ",")
		}
		if lbs == "" && (inv.Balancer.Kind == fleet.BalancerNone || i < len(inv.Hosts) && !inv.HostBalanced(inv.Hosts[i])) {
			lbs = "(none)" // no balancer, or a host of a role with balancer: none
		}
		t.Rows = append(t.Rows, []string{h.Name, v, health, lbs, strings.Join(h.Releases, " ")})
	}
	if werr := printTable(ios, t, of.plain); werr != nil {
		return werr
	}
	switch {
	case st.LockErr != nil:
		fmt.Fprintf(ios.Out, "lock: unknown (%v)\n", st.LockErr)
	case st.Lock == nil:
		fmt.Fprintln(ios.Out, "lock: free")
	default:
		fmt.Fprintf(ios.Out, "lock: %s\n", st.Lock)
	}
	if st.LBErr != nil {
		fmt.Fprintf(ios.Out, "balancer: %v\n", st.LBErr)
	}
	switch r := st.Unfinished; {
	case st.JournalErr != nil:
		fmt.Fprintf(ios.Out, "journal: %v\n", st.JournalErr)
	case r != nil && st.Alive != nil && st.Alive.Alive:
		fmt.Fprintf(ios.Out, "running: %s by %s (%s %s → %s): %s\n", r.ID, r.Owner, r.Plan.Kind, r.Plan.From, r.Plan.To, st.Alive.Why)
	case r != nil:
		fmt.Fprintf(ios.Out, "unfinished run: %s by %s (%s %s → %s): relctl resume, or relctl resume --rollback\n", r.ID, r.Owner, r.Plan.Kind, r.Plan.From, r.Plan.To)
	}
	return err
}
