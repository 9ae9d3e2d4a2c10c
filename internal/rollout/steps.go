package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
	"github.com/relctl/relctl/internal/version"
)

// preflight checks, before anything changes: the artifacts are at hand;
// every host is reachable (with a verified key), runs a release under
// releases/, and still has the release a rollback would need; the lock is
// free; and the balancer is reachable with every server of the fleet in
// rotation, the hosts the plan skips included (a host an earlier run left
// drained is named, with the command that repairs it, never skipped
// silently).
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
	// Secrets are read now, at the start of the run, never at plan time.
	if err := e.resolveSecrets(ctx); err != nil {
		return err
	}
	// need[h] is the release host h must still have: the one it goes back
	// to if its step fails (upgrade, downgrade), or the one a rollback
	// takes it to.
	need := map[string]string{}
	hosts := map[string]bool{e.plan.Settings.MigrationsHost: true}
	var servers []string
	for _, st := range e.plan.Steps {
		if st.Kind != plan.StepDeploy {
			continue
		}
		if _, ok := need[st.Host]; !ok {
			need[st.Host] = st.From
			if e.plan.Kind == plan.KindRollback {
				need[st.Host] = st.To
			}
			// Every deployed host's server, the migrations host's too; a
			// host of a role with balancer: none is in no balancer.
			if e.plan.Balanced(st.Host) {
				servers = append(servers, e.host(st.Host).Server)
			}
		}
		hosts[st.Host] = true
	}
	// Another run holding the lock is the first thing a second operator
	// must hear, before anything it may have left drained.
	if e.cfg.LockWait == 0 {
		if info, err := e.lock.Read(ctx); err == nil && info != nil && info.RunID != e.cfg.RunID && !e.takesOver(*info) {
			return &LockError{Holder: *info}
		}
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(e.plan.Settings.Parallel, 1))
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := e.checkHost(ctx, h, need[h])
			if err == nil {
				err = e.checkBecome(ctx, h)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if err := errors.Join(errs...); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, e.drainBound())
	defer cancel()
	if err := e.cfg.Balancer.Preflight(bctx, servers, e.cfg.ForceBalancer); err != nil {
		// Name the hosts whose servers the balancer complained about, with
		// the command that repairs a host an earlier run left out.
		var named []string
		for h := range hosts {
			if sv := e.host(h).Server; sv != "" && strings.Contains(err.Error(), sv) {
				named = append(named, h)
			}
		}
		sort.Strings(named)
		if len(named) > 0 && errors.Is(err, lb.ErrNotUp) {
			return fmt.Errorf("balancer: %w; %s not in service: if an earlier run left it out, `relctl repair %s` brings it back (--force deploys it as it is)",
				err, joinHosts(named), strings.Join(named, " "))
		}
		return fmt.Errorf("balancer: %w", err)
	}
	e.noteOutBefore(bctx, servers)
	// Skipped hosts already run the target and the plan will not touch
	// them: they must be in rotation (never forced), or the run would end
	// "succeeded" with a host out of service.
	for _, sk := range e.plan.Skipped {
		if !e.cfg.Plan.Balanced(sk.Host) {
			continue // not behind the balancer (a role with balancer: none)
		}
		server := e.host(sk.Host).Server
		if err := e.cfg.Balancer.Preflight(bctx, []string{server}, false); err != nil {
			return fmt.Errorf("%w: %s (skipped: %s) is not in service: %v; an earlier run left it out of rotation: repair it with `relctl repair %s`, then run again",
				ErrNotInService, sk.Host, sk.Reason, err, sk.Host)
		}
	}
	return nil
}

// ErrNotInService means preflight found a host the plan would not touch
// out of rotation: a run would end "succeeded" with it down.
var ErrNotInService = errors.New("a host is not in service")

// checkHost reads, in one bounded round trip, where current points and
// whether releases/<need> is there.
func (e *Engine) checkHost(ctx context.Context, name, need string) error {
	h := e.host(name)
	base := strings.TrimRight(e.inv.HostPath(h), "/")
	script := fmt.Sprintf(`p=%s; n=%s
echo "current=$(readlink "$p/current" 2>/dev/null)"
if [ -n "$n" ] && [ -d "$p/releases/$n" ]; then echo need=present; else echo need=missing; fi`, shell.Quote(base), shell.Quote(need))
	out, err := e.output(ctx, name, script, e.to.Observe)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var current, have string
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch k {
		case "current":
			current = v
		case "need":
			have = v
		}
	}
	if need == "" {
		return nil // the lock host, not deployed
	}
	rel := base + "/releases/"
	switch {
	case current == "":
		return fmt.Errorf("%s: %s/current is missing: relctl cannot tell what it runs, nor roll it back; point it at a release (ln -sfn %s<version> %s/current) and run again", name, base, rel, base)
	case !strings.HasPrefix(current, rel) && !strings.HasPrefix(current, "releases/"):
		return fmt.Errorf("%s: current points to %s, outside %s: relctl could not roll it back; point it at a release under releases/ (ln -sfn %s<version> %s/current) and run again", name, current, strings.TrimSuffix(rel, "/"), rel, base)
	}
	if v := path.Base(current); version.Valid(v) != nil {
		return fmt.Errorf("%s: current points to %s, which is not a valid version: %v", name, current, version.Valid(v))
	}
	if have != "present" {
		what := "roll back"
		if e.plan.Kind == plan.KindRollback {
			what = "roll back (to)"
		}
		return fmt.Errorf("cannot %s %s: releases/%s missing (restage it, or plan from what the host has)", what, name, need)
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
		if errors.As(err, &le) && e.takesOver(le.Holder) {
			// The rollback of a dead run continues under its lock.
			if err = e.lock.TakeOver(ctx, le.Holder, e.lockInfo); err == nil {
				e.bus.Emit(event.Event{Type: event.Control, Message: fmt.Sprintf("took over the lock of run %s (audited in %s/.relctl/history.jsonl on %s)", le.Holder.RunID, strings.TrimRight(e.lock.Path, "/"), e.lock.Host)})
			}
		}
		if err == nil {
			break
		}
		if !errors.As(err, &le) || time.Now().After(deadline) {
			return err
		}
		e.bus.Emit(event.Event{Type: event.Control, Control: event.CtlWaiting, Message: fmt.Sprintf("waiting for the lock (%s), up to %s more", le.Holder, time.Until(deadline).Round(time.Second))})
		select {
		case <-time.After(min(5*time.Second, time.Until(deadline)+time.Millisecond)):
		case <-ctx.Done():
			return fmt.Errorf("%w: interrupted while waiting for the lock", errAbort)
		}
	}
	e.lockHeld = true
	e.keepLock(sent)
	if f := e.cfg.OnLocked; f != nil {
		e.cfg.OnLocked = nil
		f()
	}
	return nil
}

// takesOver reports whether holder is the lock of the dead run this run
// was told to take over (Config.TakeOver).
func (e *Engine) takesOver(holder LockInfo) bool {
	t := e.cfg.TakeOver
	return t != nil && holder.RunID == t.RunID && holder.Started == t.Started
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
		if err := r.script(ctx, unpackScript(base, v, tar, a.SHA256), vals, e.to.Upload); err != nil {
			return fmt.Errorf("%s: unpack %s: %w", h.Name, v, err)
		}
	}
	r.state(event.HostStaged, "", "")
	return nil
}

func unpackScript(base, v, tar, sha string) string {
	return fmt.Sprintf(`set -e
rel=%[1]s; tar=%[2]s; sha=%[3]s; base=%[4]s; v=%[5]s
if [ -f "$rel/.relctl-sha256" ] && [ "$(cat "$rel/.relctl-sha256")" = "$sha" ]; then echo "release $v already unpacked"; exit 0; fi
if [ -d "$rel" ] && [ -e "$base/current" ] && [ "$(cd "$base/current" && pwd -P)" = "$(cd "$rel" && pwd -P)" ]; then
  echo "releases/$v is running and differs from the artifact (sha256 $sha): refusing to replace it" >&2; exit 4
fi
tmp="$rel.relctl-tmp.$$"; rm -rf "$tmp"; mkdir -p "$tmp"
tar -xzf "$tar" -C "$tmp"
printf '%%s\n' "$sha" > "$tmp/.relctl-sha256"
rm -rf "$rel"; mv "$tmp" "$rel"
echo "unpacked $v"`, shell.Quote(fleet.ReleaseDir(base, v)), shell.Quote(tar), shell.Quote(sha), shell.Quote(strings.TrimRight(base, "/")), shell.Quote(v))
}

// migrate runs the migrate (or post_migrate) command once, on the
// migrations host, from the new release's directory. An operator's first
// interrupt does not kill a migration half-way; its timeout
// (timeouts.migrate, timeouts.post_migrate) and a forced end do.
func (e *Engine) migrate(_ context.Context, s plan.Step, name string) error {
	ctx := e.hard
	h := e.host(s.Host)
	r := &hostRun{e: e, step: s, h: h}
	vals := e.hostValues(h, s.From, s.To)
	timeout := e.to.Migrate
	if name == fleet.CmdPostMigrate {
		timeout = e.to.PostMigrate
	}
	t := e.inv.Template(name)
	if t == nil {
		return nil
	}
	script, err := t.Render(vals)
	if err != nil {
		return fmt.Errorf("commands.%s: %w", name, err)
	}
	script, env, err := e.commandEnv(name, script, vals)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", h.Name, strings.ReplaceAll(name, "_", "-"), s.To, err)
	}
	dir := migrationDir(e.inv.HostPath(h), e.cfg.RunID, s.ID)
	if err := r.run(ctx, migrationWrapper(dir, script), env, timeout); err != nil {
		return fmt.Errorf("%s: %s %s: %w", h.Name, strings.ReplaceAll(name, "_", "-"), s.To, err)
	}
	return nil
}

// migrationDir is where the wrapper of one run's migration step records
// it on the host: path/.relctl/migrations/<run>.<step>.
func migrationDir(base, runID, stepID string) string {
	key := strings.NewReplacer("/", "_", "@", "_").Replace(stepID)
	return strings.TrimRight(base, "/") + "/.relctl/migrations/" + runID + "." + key
}

// migrationWrapper runs a migration exactly once per run across crashes of
// relctl. The first wrapper to create dir/claim (mkdir is atomic) owns the
// migration: it records the pid (and start time) of the shell that runs
// it before starting it, and its exit status when it ends, each written to
// a temporary file and renamed. Any later wrapper of the same run (resume)
// finds:
//   - a status: the migration ran; its status is the result, it does not
//     run again;
//   - a pid still alive: the migration is still running (relctl was killed,
//     the host kept going); it waits for it (bounded by the step's timeout)
//     and takes its status;
//   - a pid that ended without a status: the migration may have run in
//     part; it refuses (exit 3), naming dir, rather than run it twice.
//
// The migration's output goes to dir/stdout and dir/stderr, which the
// wrapper follows: a migration whose relctl died (and its session with it)
// is not killed by a broken pipe. A TERM (the step's timeout, a forced
// end) is recorded as status 143.
func migrationWrapper(dir, script string) string {
	return fmt.Sprintf(`d=%[1]s
mkdir -p "$d" || exit 1
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
alive() { kill -0 "$1" 2>/dev/null && { [ -z "$2" ] || [ "$(starttime "$1")" = "$2" ]; }; }
if mkdir "$d/claim" 2>/dev/null; then
  record() { printf '%%s\n' "$1" > "$d/status.tmp" && mv "$d/status.tmp" "$d/status"; }
  trap 'record 143; exit 143' TERM
  printf '%%s %%s\n' "$$" "$(starttime $$)" > "$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid" || exit 1
  : > "$d/stdout"; : > "$d/stderr"
  sh -c %[2]s > "$d/stdout" 2> "$d/stderr" < /dev/null &
  child=$!
  tail --pid="$child" -n +1 -f "$d/stdout" 2>/dev/null &
  tail --pid="$child" -n +1 -f "$d/stderr" >&2 2>/dev/null &
  wait "$child"
  s=$?
  wait
  trap - TERM
  record "$s"
  exit "$s"
fi
i=0
while [ ! -f "$d/pid" ] && [ ! -f "$d/status" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -f "$d/status" ] && [ -f "$d/pid" ]; then
  read -r pid st < "$d/pid"
  if alive "$pid" "$st"; then
    echo "relctl: the migration an earlier relctl process started (pid $pid) is still running: waiting for it to end"
    while alive "$pid" "$st" && [ ! -f "$d/status" ]; do sleep 0.2; done
  fi
fi
if [ -f "$d/status" ]; then
  read -r s < "$d/status"
  echo "relctl: the migration already ran in this run (an earlier relctl process started it): exit status $s"
  exit "$s"
fi
echo "relctl: the migration started by an earlier relctl process ended without recording its exit status: it may have run in part; check it, then remove $d to let relctl run it again" >&2
exit 3`, shell.Quote(dir), shell.Quote(script))
}

// postMigrate runs only when every host of the hop was verified on the
// target in this run (or before its resume).
func (e *Engine) postMigrate(ctx context.Context, s plan.Step) error {
	if missing := e.unverified(s); len(missing) > 0 {
		return fmt.Errorf("%w: %s not verified on %s", errMixedFleet, joinHosts(missing), s.To)
	}
	if err := e.migrate(ctx, s, fleet.CmdPostMigrate); err != nil {
		return err
	}
	e.postDone = true
	return nil
}

// unverified lists the hosts of post-migrate step s's hop whose deploy did
// not finish (in this run or before its resume).
func (e *Engine) unverified(s plan.Step) []string {
	var missing []string
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range e.plan.Steps {
		if st.Kind == plan.StepDeploy && st.Hop == s.Hop && !e.progress.Finished[st.ID] {
			missing = append(missing, st.Host)
		}
	}
	return missing
}

// errMixedFleet refuses post-migrate while some host of the hop is not on
// its target.
var errMixedFleet = errors.New("refusing post-migrate on a mixed fleet")

// cleanup prunes releases beyond keep_releases, never the running one, the
// one a rollback needs, or the target. Release names are read one per line
// and always quoted: a name is never split or globbed.
func (e *Engine) cleanup(ctx context.Context, s plan.Step) error {
	h := e.host(s.Host)
	base := strings.TrimRight(e.inv.HostPath(h), "/")
	r := &hostRun{e: e, step: s, h: h}
	script := cleanupScript(base, e.inv.KeepReleases, s.From, s.To) + "\n" + chainPruneScript(chainRunDir(base, e.cfg.RunID))
	return r.script(ctx, script, e.inv.HostValues(h, s.From, s.To), e.to.Upload)
}

// chainPruneScript removes the chain traces (chaincancel.go) of every run
// but keep, this run's: no other run can still be live under the lock, and
// an unfinished one is resumed before a new run reaches cleanup.
func chainPruneScript(keep string) string {
	return fmt.Sprintf(`keep=%s
for c in "${keep%%/*}"/*; do
  [ -d "$c" ] && [ "$c" != "$keep" ] && rm -rf -- "$c"
done
:`, shell.Quote(keep))
}

func cleanupScript(base string, keep int, from, to string) string {
	return fmt.Sprintf(`set -e
cd %[1]s/releases
cur=$(basename "$(readlink ../current)")
keep=%[2]d; from=%[3]s; to=%[4]s
ls -1t | { n=0; while IFS= read -r d; do
  case "$d" in .*|*.relctl-tmp.*) continue ;; esac
  n=$((n+1))
  if [ "$n" -le "$keep" ] || [ "$d" = "$cur" ] || [ "$d" = "$from" ] || [ "$d" = "$to" ]; then continue; fi
  rm -rf -- "./$d"
  for t in .incoming/*; do case "$t" in *-"$d".tar.gz) rm -f -- "$t" ;; esac; done
  echo "pruned $d"
done; }`, shell.Quote(base), keep, shell.Quote(from), shell.Quote(to))
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
	Ticket  string    `json:"ticket,omitempty"` // the run's change ticket (--ticket)
	// PrevRun and PrevOwner name the run whose lock a takeover or a break
	// replaced (kinds lock-takeover and lock-break).
	PrevRun   string `json:"prev_run,omitempty"`
	PrevOwner string `json:"prev_owner,omitempty"`
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
				From: orig.From, To: orig.To, Host: name, Result: res, Outcome: string(outcome), Reason: orig.Reason, Ticket: orig.Ticket}
			b, _ := json.Marshal(rec)
			dir := strings.TrimRight(e.inv.HostPath(e.host(name)), "/") + "/.relctl"
			script := fmt.Sprintf("mkdir -p %s && printf '%%s\\n' %s >> %s", shell.Quote(dir), shell.Quote(string(b)), shell.Quote(dir+"/history.jsonl"))
			if _, err := e.cfg.Hosts.Run(ctx, name, remote.Command{Script: script, Timeout: e.to.Lock}); err != nil {
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
