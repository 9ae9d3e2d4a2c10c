// Package observe looks at what the fleet really runs: every host's current
// release, the releases present, optionally its health, in parallel, one
// SSH round trip per host (two with health). It turns that into the
// plan.Observed the planner takes.
//
// It only reads; it never changes a host.
package observe

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/shell"
	"github.com/relctl/relctl/internal/version"
)

// Runner runs a read-only script on a host and returns its stdout.
type Runner interface {
	Output(ctx context.Context, host, script string) (string, error)
}

// VersionLine is what a version command's output says: its first non-empty
// line, trimmed. observe and the deploy's version check both read it so,
// and so compare the same thing.
func VersionLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// Host is one host as seen, with more detail than the planner needs.
type Host struct {
	plan.HostState
	Health     string // "ok", "failing: <why>", or "" when not checked
	HealthOK   bool
	Current    string // current's symlink target
	LockHolder string
}

// Options say what to look at.
type Options struct {
	Health   bool // also run the health command (status)
	Parallel int  // default: inventory ssh.max_parallel
	// Timeout bounds each host's reading (default: inventory timeouts.observe).
	Timeout time.Duration
}

// Fleet observes every host of inv.
func Fleet(ctx context.Context, inv *fleet.Inventory, r Runner, o Options) ([]Host, plan.Observed) {
	par := o.Parallel
	if par <= 0 {
		par = inv.SSH.MaxParallel
	}
	if o.Timeout <= 0 {
		o.Timeout = inv.Timeouts.Observe
	}
	if o.Timeout <= 0 {
		o.Timeout = fleet.DefaultObserveTimeout
	}
	hosts := make([]Host, len(inv.Hosts))
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, h := range inv.Hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hosts[i] = one(ctx, inv, r, h, o)
		}()
	}
	wg.Wait()
	obs := plan.Observed{Hosts: make([]plan.HostState, len(hosts))}
	for i, h := range hosts {
		obs.Hosts[i] = h.HostState
	}
	return hosts, obs
}

func one(ctx context.Context, inv *fleet.Inventory, r Runner, h fleet.Host, o Options) Host {
	base := strings.TrimRight(inv.HostPath(h), "/")
	out := Host{HostState: plan.HostState{Name: h.Name}}
	script := fmt.Sprintf(`p=%s
echo "current=$(readlink "$p/current" 2>/dev/null)"
for d in "$p"/releases/*; do
  [ -d "$d" ] || continue
  case "${d##*/}" in *relctl-tmp*) continue ;; esac
  echo "release=${d##*/}"
done`, shell.Quote(base))
	if t := inv.HostTemplate(h, fleet.CmdVersion); t != nil {
		cmd, err := t.Render(inv.HostValues(h, "", ""))
		if err == nil {
			cmd, _ = inv.WrapHostCommand(h, fleet.CmdVersion, cmd, nil) // become, if any (no environment here)
			// The first non-empty line, as VersionLine reads it.
			script += fmt.Sprintf("\necho \"version=$( (%s) 2>/dev/null | sed -n '/[^[:space:]]/{p;q;}')\"", cmd)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	res, err := r.Output(rctx, h.Name, script)
	if err != nil {
		if rctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s (timeouts.observe): %w", o.Timeout, err)
		}
		out.Error = err.Error()
		return out
	}
	out.Reachable = true
	var ver string
	for _, line := range strings.Split(res, "\n") {
		k, v, _ := strings.Cut(line, "=")
		v = strings.TrimSpace(v)
		switch k {
		case "current":
			out.Current = v
		case "release":
			// One line per release, so a directory name with a space
			// stays one name.
			if v != "" {
				out.Releases = append(out.Releases, v)
			}
		case "version":
			ver = v
		}
	}
	sort.Strings(out.Releases)
	switch {
	case ver != "":
		out.Version = VersionLine(ver)
	case out.Current != "":
		out.Version = path.Base(out.Current)
	}
	if out.Version != "" {
		// What a host reports ends up in plans and in host-side commands:
		// it is validated exactly like --to.
		if err := version.Valid(out.Version); err != nil {
			out.Error = fmt.Sprintf("reports an invalid version: %v", err)
			out.Version = ""
			return out
		}
	}
	if o.Health && out.Version != "" {
		t := inv.HostTemplate(h, fleet.CmdHealth)
		cmd, err := t.Render(inv.HostValues(h, out.Version, out.Version))
		if err == nil {
			cmd, _ = inv.WrapHostCommand(h, fleet.CmdHealth, cmd, nil)
			hctx, cancel := context.WithTimeout(ctx, inv.Timeouts.HealthCheck+time.Second)
			defer cancel()
			res, err := r.Output(hctx, h.Name, fmt.Sprintf("if o=$( (%s) 2>&1 ); then echo ok; else echo \"failing: $(printf '%%s\\n' \"$o\" | tail -n1)\"; fi", cmd))
			if err != nil {
				out.Health = "unknown: " + err.Error()
			} else {
				out.Health = strings.TrimSpace(res)
				out.HealthOK = out.Health == "ok"
			}
		}
	}
	return out
}
