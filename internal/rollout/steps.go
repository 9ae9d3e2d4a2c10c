package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
)

// preflight checks that every host is reachable (with a verified key), the
// artifacts are at hand, and the balancer is reachable with every server UP.
func (e *Engine) preflight(ctx context.Context, s plan.Step) error {
	var versions []string
	for _, st := range e.plan.Steps {
		if st.Kind == plan.StepStage {
			versions = st.Versions
			break
		}
	}
	for _, v := range versions {
		if _, ok := e.cfg.Artifacts[v]; !ok {
			return fmt.Errorf("artifact for %s is missing", v)
		}
	}
	hosts := map[string]bool{e.plan.Settings.MigrationsHost: true}
	var servers []string
	for _, st := range e.plan.Steps {
		if st.Kind == plan.StepDeploy && !hosts[st.Host] {
			hosts[st.Host] = true
			servers = append(servers, e.host(st.Host).Server)
		}
	}
	// Another run holding the lock is the first thing a second operator
	// must hear, before anything it may have left drained.
	if e.cfg.LockWait == 0 {
		if info, err := e.lock.Read(ctx); err == nil && info != nil && info.RunID != e.cfg.RunID {
			return &LockError{Holder: *info}
		}
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(e.plan.Settings.Parallel, 1))
	for h := range hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := e.cfg.Hosts.Run(ctx, h, remote.Command{Script: "true", Timeout: 30 * time.Second}); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", h, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := e.cfg.Balancer.Preflight(ctx, servers, e.cfg.ForceBalancer); err != nil {
		return fmt.Errorf("balancer: %w", err)
	}
	return nil
}

func (e *Engine) acquireLock(ctx context.Context, s plan.Step) error {
	deadline := time.Now().Add(e.cfg.LockWait)
	var sent time.Time
	for {
		sent = time.Now()
		err := e.lock.Acquire(ctx, e.lockInfo)
		var le *LockError
		if err == nil {
			break
		}
		if !errors.As(err, &le) || time.Now().After(deadline) {
			return err
		}
		e.bus.Emit(event.Event{Type: event.Control, Message: fmt.Sprintf("waiting for the lock (%s), up to %s more", le.Holder, time.Until(deadline).Round(time.Second))})
		select {
		case <-time.After(min(5*time.Second, time.Until(deadline)+time.Millisecond)):
		case <-ctx.Done():
			return fmt.Errorf("%w: interrupted while waiting for the lock", errAbort)
		}
	}
	e.lockHeld = true
	e.keepLock(sent)
	return nil
}

func (e *Engine) releaseLock(ctx context.Context) error {
	if !e.lockHeld {
		return nil
	}
	if err := e.releaseHeld(ctx); err != nil {
		return err
	}
	e.lockHeld = false
	return nil
}

// stage uploads every version the step names and unpacks it into
// releases/<version>/, skipping what is already there with the same sha256.
func (e *Engine) stage(ctx context.Context, s plan.Step) error {
	h := e.host(s.Host)
	base := e.inv.HostPath(h)
	r := &hostRun{e: e, step: s, h: h}
	r.state(event.HostStaging, "", strings.Join(s.Versions, ", "))
	for _, v := range s.Versions {
		a := e.cfg.Artifacts[v]
		tar := fmt.Sprintf("%s/releases/.incoming/%s-%s.tar.gz", strings.TrimRight(base, "/"), e.inv.App, v)
		skipped, err := e.cfg.Hosts.Upload(ctx, h.Name, a.Path, tar, a.SHA256)
		if err != nil {
			return fmt.Errorf("%s: upload %s: %w", h.Name, v, err)
		}
		if skipped {
			r.emit(event.Event{Type: event.StepOutput, Stream: "stdout", Line: fmt.Sprintf("%s already uploaded (sha256 matches)", v)})
		}
		vals := e.inv.HostValues(h, "", v)
		if err := r.script(ctx, unpackScript(base, v, tar, a.SHA256), vals, e.cfg.CommandTimeout); err != nil {
			return fmt.Errorf("%s: unpack %s: %w", h.Name, v, err)
		}
	}
	r.state(event.HostStaged, "", "")
	return nil
}

func unpackScript(base, v, tar, sha string) string {
	return fmt.Sprintf(`set -e
rel=%[1]s; tar=%[2]s; sha=%[3]s; base=%[4]s
if [ -f "$rel/.relctl-sha256" ] && [ "$(cat "$rel/.relctl-sha256")" = "$sha" ]; then echo "release %[5]s already unpacked"; exit 0; fi
if [ -d "$rel" ] && [ -e "$base/current" ] && [ "$(cd "$base/current" && pwd -P)" = "$(cd "$rel" && pwd -P)" ]; then
  echo "releases/%[5]s is running and differs from the artifact (sha256 $sha): refusing to replace it" >&2; exit 4
fi
tmp="$rel.relctl-tmp.$$"; rm -rf "$tmp"; mkdir -p "$tmp"
tar -xzf "$tar" -C "$tmp"
printf '%%s\n' "$sha" > "$tmp/.relctl-sha256"
rm -rf "$rel"; mv "$tmp" "$rel"
echo "unpacked %[5]s"`, shell.Quote(fleet.ReleaseDir(base, v)), shell.Quote(tar), shell.Quote(sha), shell.Quote(strings.TrimRight(base, "/")), v)
}

// migrate runs the migrate (or post_migrate) command once, on the
// migrations host, from the new release's directory. An operator's
// interrupt does not kill a migration half-way.
func (e *Engine) migrate(ctx context.Context, s plan.Step, name string) error {
	ctx = context.WithoutCancel(ctx)
	h := e.host(s.Host)
	r := &hostRun{e: e, step: s, h: h}
	vals := e.inv.HostValues(h, s.From, s.To)
	if err := r.cmd(ctx, name, vals, 0); err != nil {
		return fmt.Errorf("%s: %s %s: %w", h.Name, strings.ReplaceAll(name, "_", "-"), s.To, err)
	}
	return nil
}

// postMigrate runs only when every host of the hop was verified on the
// target in this run (or before its resume).
func (e *Engine) postMigrate(ctx context.Context, s plan.Step) error {
	var missing []string
	e.mu.Lock()
	for _, st := range e.plan.Steps {
		if st.Kind == plan.StepDeploy && st.Hop == s.Hop && !e.progress.Finished[st.ID] {
			missing = append(missing, st.Host)
		}
	}
	e.mu.Unlock()
	if len(missing) > 0 {
		return fmt.Errorf("refusing post-migrate: %s not verified on %s", joinHosts(missing), s.To)
	}
	if err := e.migrate(ctx, s, fleet.CmdPostMigrate); err != nil {
		return err
	}
	e.postDone = true
	return nil
}

// cleanup prunes releases beyond keep_releases, never the running one, the
// one a rollback needs, or the target.
func (e *Engine) cleanup(ctx context.Context, s plan.Step) error {
	h := e.host(s.Host)
	base := strings.TrimRight(e.inv.HostPath(h), "/")
	script := fmt.Sprintf(`set -e
cd %[1]s/releases
cur=$(basename "$(readlink ../current)")
n=0
for d in $(ls -1t); do
  case "$d" in .*|*.relctl-tmp.*) continue ;; esac
  n=$((n+1))
  if [ "$n" -le %[2]d ] || [ "$d" = "$cur" ] || [ "$d" = %[3]s ] || [ "$d" = %[4]s ]; then continue; fi
  rm -rf -- "$d" ".incoming/"*"-$d.tar.gz"
  echo "pruned $d"
done`, shell.Quote(base), e.inv.KeepReleases, shell.Quote(s.From), shell.Quote(s.To))
	r := &hostRun{e: e, step: s, h: h}
	return r.script(ctx, script, e.inv.HostValues(h, s.From, s.To), e.cfg.CommandTimeout)
}

// HistoryRecord is one line of path/.relctl/history.jsonl on a host.
type HistoryRecord struct {
	Time    time.Time `json:"time"`
	RunID   string    `json:"run"`
	Owner   string    `json:"owner"`
	Kind    string    `json:"kind"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Host    string    `json:"host"`
	Result  string    `json:"result"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason,omitempty"`
}

// audit appends a history record on every host the run touched.
func (e *Engine) audit(ctx context.Context, outcome event.Outcome) {
	e.mu.Lock()
	var hosts []string
	for h := range e.touched {
		hosts = append(hosts, h)
	}
	e.mu.Unlock()
	orig := e.cfg.Plan
	var wg sync.WaitGroup
	for _, name := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.mu.Lock()
			res := string(e.final[name])
			if r := e.reasons[name]; r != "" {
				res += ": " + r
			}
			e.mu.Unlock()
			if res == "" {
				res = "unknown"
			}
			rec := HistoryRecord{Time: time.Now().UTC(), RunID: e.cfg.RunID, Owner: e.cfg.Owner, Kind: string(orig.Kind),
				From: orig.From, To: orig.To, Host: name, Result: res, Outcome: string(outcome), Reason: orig.Reason}
			b, _ := json.Marshal(rec)
			dir := strings.TrimRight(e.inv.HostPath(e.host(name)), "/") + "/.relctl"
			script := fmt.Sprintf("mkdir -p %s && printf '%%s\\n' %s >> %s", shell.Quote(dir), shell.Quote(string(b)), shell.Quote(dir+"/history.jsonl"))
			if _, err := e.cfg.Hosts.Run(ctx, name, remote.Command{Script: script, Timeout: 30 * time.Second}); err != nil {
				e.bus.Emit(event.Event{Type: event.Warning, Host: name, Message: "audit record not written: " + err.Error()})
			}
		}()
	}
	wg.Wait()
}

// Owner is who runs relctl: user@machine.
func Owner(hostname string) string {
	u := "unknown"
	if cu, err := user.Current(); err == nil {
		u = cu.Username
	}
	return u + "@" + hostname
}
