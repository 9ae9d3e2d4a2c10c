package lb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/relctl/relctl/internal/shell"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// nginx drives open-source nginx, which has no runtime API: a server is
// drained by adding `down` to its `server` line in the upstream file, which
// is written atomically, checked with `nginx -t` and activated with
// `nginx -s reload` (old workers finish their in-flight requests), waited
// for until the old workers accept nothing more (nginxReloadWait). A failed
// check or reload, or one the master does not take within 10 s, puts the
// previous file back. Every step runs as one shell
// script through Connector.RunOn on each endpoint's host.
type nginx struct {
	cfg       Config
	c         Connector
	endpoints []Endpoint
	idle      *cmdTemplate // nil: fixed wait of DrainTimeout
	// edit serialises this process's read-edit-write-reload cycles: hosts
	// of one batch drain in parallel but share one upstream file. The
	// checksum in writeScript still guards against other writers.
	edit sync.Mutex
}

var _ Balancer = (*nginx)(nil)

// maxUpstreamFile bounds the file size: the new content travels inside the
// script, and one argument may not exceed 128 KiB on Linux.
const maxUpstreamFile = 96 << 10

func newNginx(cfg Config, c Connector) (Balancer, error) {
	if cfg.Backend == "" {
		return nil, errors.New("balancer.backend is required (the nginx upstream name)")
	}
	if cfg.UpstreamFile == "" {
		return nil, errors.New("balancer.upstream_file is required for kind nginx")
	}
	if !path.IsAbs(cfg.UpstreamFile) {
		return nil, fmt.Errorf("balancer.upstream_file %q must be an absolute path", cfg.UpstreamFile)
	}
	if cfg.Exec != (ExecCommands{}) {
		return nil, errors.New("balancer.exec does not apply to kind nginx")
	}
	if cfg.NginxBinary == "" {
		cfg.NginxBinary = "nginx"
	}
	eps, err := hostEndpoints(cfg)
	if err != nil {
		return nil, err
	}
	n := &nginx{cfg: cfg, c: c, endpoints: eps}
	if cfg.IdleCheck != "" {
		if n.idle, err = parseCmd("balancer.idle_check", cfg.IdleCheck); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *nginx) Kind() string { return KindNginx }

func (n *nginx) Describe() string {
	hosts := make([]string, len(n.endpoints))
	for i, ep := range n.endpoints {
		hosts[i] = ep.String()
	}
	idle := fmt.Sprintf("fixed drain wait of %s (no idle_check: sessions are not counted)", n.cfg.DrainTimeout)
	if n.idle != nil {
		idle = fmt.Sprintf("idle_check polled up to %s", n.cfg.DrainTimeout)
	}
	return fmt.Sprintf("nginx upstream %s in %s on %s (%s); %s",
		n.cfg.Backend, n.cfg.UpstreamFile, plural(len(hosts), "host", "hosts"), strings.Join(hosts, ", "), idle)
}

func (n *nginx) where(ep Endpoint) string { return "nginx " + ep.String() }

func (n *nginx) ref(server string) serverRef {
	return serverRef{Name: server, Addr: n.cfg.Addresses[server]}
}

func (n *nginx) run(ctx context.Context, ep Endpoint, script string) (string, error) {
	return n.runFor(ctx, ep, script, cmdTimeout)
}

// nginxReloadWaitS is how long, in seconds by the host's clock, the write
// script waits for a reload to take effect before it restores the file.
const nginxReloadWaitS = 10

// writeTimeout bounds the write script: its reload wait plus cmdTimeout
// for the rest (nginx -t, nginx -T, the restore). Were it killed first, it
// would leave the edited file in place and report only a timeout.
const writeTimeout = nginxReloadWaitS*time.Second + cmdTimeout

func (n *nginx) runFor(ctx context.Context, ep Endpoint, script string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := n.c.RunOn(ctx, ep.SSH, script)
	if err != nil {
		return out, outputErr(err, out)
	}
	return out, nil
}

func (n *nginx) read(ctx context.Context, ep Endpoint) (string, error) {
	out, err := n.run(ctx, ep, "cat -- "+shell.Quote(n.cfg.UpstreamFile))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", n.cfg.UpstreamFile, err)
	}
	return out, nil
}

// writeScript replaces the upstream file with content if it still holds
// what was read (sha256 oldSum), atomically, then runs `nginx -t` and
// `nginx -s reload`, restoring the previous file if either fails.
func (n *nginx) writeScript(oldSum, content string) string {
	bin := n.cfg.NginxBinary
	return `set -u
f=` + shell.Quote(n.cfg.UpstreamFile) + `
tmp="$f.relctl-tmp.$$"
bak="$f.relctl-bak.$$"
sum=$(sha256sum < "$f") || exit 1
if [ "${sum%% *}" != ` + shell.Quote(oldSum) + ` ]; then
	echo "$f changed while relctl was editing it; nothing written" >&2
	exit 3
fi
cp -p -- "$f" "$bak" || exit 1
cp -p -- "$f" "$tmp" || { rm -f -- "$bak"; exit 1; }
if ! printf '%s' ` + shell.Quote(content) + ` > "$tmp" || ! mv -f -- "$tmp" "$f"; then
	rm -f -- "$tmp" "$bak"
	exit 1
fi
if ! out=$(` + bin + ` -t 2>&1); then
	mv -f -- "$bak" "$f"
	printf 'nginx -t rejected the change, previous file restored: %s\n' "$out" >&2
	exit 4
fi
` + nginxReloadWait(bin) + `
master=$(relctl_master) || master=
old=
case "$master" in ''|*[!0-9]*) master= ;; *) old=$(relctl_accepting "$master") ;; esac
if ! out=$(` + bin + ` -s reload 2>&1); then
	mv -f -- "$bak" "$f"
	printf 'nginx -s reload failed, previous file restored: %s\n' "$out" >&2
	exit 5
fi
if [ -n "$old" ] && ! relctl_retired "$old"; then
	mv -f -- "$bak" "$f"
	` + bin + ` -s reload >/dev/null 2>&1 || :
	printf 'nginx did not apply the change within %s s: its workers%s still take requests under the old configuration (see its error log); previous file restored\n' "$wait_s" "$still" >&2
	exit 6
fi
rm -f -- "$bak"
`
}

// nginxReloadWait defines the shell functions that make a reload
// synchronous. `nginx -s reload` only signals the master and returns: the
// old workers keep accepting, under the old configuration, until the
// master has read the new one, started new workers and told the old ones
// to quit (their title then reads "worker process is shutting down"; they
// accept nothing new and finish what they hold). A server marked down is
// out of rotation only from then on, and a reload the master refused
// (it logs why and keeps the old workers) is a change that never
// happened. So the script notes the master's accepting workers before the
// reload (the master from the pid file of `nginx -T`'s pid directive, or
// the compiled --pid-path) and waits until none of them accepts. Without
// a readable absolute pid file it cannot tell, and relies on the drain's
// idle polls as before.
//
// The wait is measured by the host's clock, not by counting polls: each
// poll forks a process per worker, and on a busy host a hundred polls took
// over 15 s, past the command's own timeout, which then killed the script
// before it could restore the file.
func nginxReloadWait(bin string) string {
	return `wait_s=` + strconv.Itoa(nginxReloadWaitS) + `
relctl_master() {
	p=$(` + bin + ` -T 2>/dev/null | sed -n 's/^[[:space:]]*pid[[:space:]][[:space:]]*\([^;[:space:]]*\)[[:space:]]*;.*/\1/p' | head -n 1)
	[ -n "$p" ] || p=$(` + bin + ` -V 2>&1 | tr ' ' '\n' | sed -n 's/^--pid-path=//p' | head -n 1)
	case "$p" in /*) [ -r "$p" ] && cat -- "$p" ;; *) return 1 ;; esac
}
relctl_title() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }
relctl_accepting() {
	for d in /proc/[0-9]*; do
		{ read -r st <"$d/stat"; } 2>/dev/null || continue
		st=${st#*) }
		set -- $st
		[ "${2-}" = "$master" ] || continue
		w=${d#/proc/}
		case "$(relctl_title "$w")" in *"worker process is shutting down"*) ;; *"worker process"*) printf '%s ' "$w" ;; esac
	done
}
relctl_retired() {
	i=0
	t0=$(date +%s 2>/dev/null) || t0=
	case "$t0" in *[!0-9]*) t0= ;; esac
	while :; do
		still=
		for w in $1; do
			case "$(relctl_title "$w")" in ''|*"shutting down"*) ;; *) still="$still $w" ;; esac
		done
		[ -z "$still" ] && return 0
		t=
		[ -n "$t0" ] && t=$(date +%s 2>/dev/null)
		case "$t" in
		''|*[!0-9]*) [ "$i" -lt $((wait_s * 10)) ] || return 1 ;; # no clock: count polls
		*) [ $((t - t0)) -lt "$wait_s" ] || return 1 ;;
		esac
		sleep 0.1 2>/dev/null || sleep 1
		i=$((i + 1))
	done
}`
}

// setDown edits, writes, reloads and verifies servers' `down` flag on ep.
func (n *nginx) setDown(ctx context.Context, ep Endpoint, servers []string, down bool) error {
	n.edit.Lock()
	defer n.edit.Unlock()
	refs := make([]serverRef, len(servers))
	for i, s := range servers {
		refs[i] = n.ref(s)
	}
	old, err := n.read(ctx, ep)
	if err != nil {
		return err
	}
	edited, changed, err := editUpstream(old, n.cfg.Backend, refs, down)
	if err != nil {
		return fmt.Errorf("%s: %w", n.cfg.UpstreamFile, err)
	}
	if changed {
		if len(edited) > maxUpstreamFile {
			return fmt.Errorf("%s is %d bytes; relctl edits upstream files up to %d bytes: keep the upstream in its own file", n.cfg.UpstreamFile, len(edited), maxUpstreamFile)
		}
		sum := sha256.Sum256([]byte(old))
		if _, err := n.runFor(ctx, ep, n.writeScript(hex.EncodeToString(sum[:]), edited), writeTimeout); err != nil {
			return fmt.Errorf("write %s: %w", n.cfg.UpstreamFile, err)
		}
	}
	// Verify by reading the file back.
	back, err := n.read(ctx, ep)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	got, _, err := findUpstream(back, n.cfg.Backend)
	if err != nil {
		return fmt.Errorf("verify %s: %w", n.cfg.UpstreamFile, err)
	}
	for _, ref := range refs {
		for _, s := range got {
			if ref.matches(s.Addr) && s.Down != down {
				return fmt.Errorf("verify %s: server %s down=%v after the edit, want %v", n.cfg.UpstreamFile, s.Addr, s.Down, down)
			}
		}
	}
	return nil
}

func (n *nginx) statesOn(ctx context.Context, ep Endpoint) ([]ServerState, error) {
	content, err := n.read(ctx, ep)
	if err != nil {
		return nil, err
	}
	servers, found, err := findUpstream(content, n.cfg.Backend)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.cfg.UpstreamFile, err)
	}
	if !found {
		return nil, fmt.Errorf("%s has no `upstream %s {}` block: %w", n.cfg.UpstreamFile, n.cfg.Backend, ErrUnknownBackend)
	}
	byAddr := map[string]string{}
	for name, addr := range n.cfg.Addresses {
		byAddr[addr] = name
	}
	out := make([]ServerState, 0, len(servers))
	for _, s := range servers {
		st := ServerState{Server: s.Addr, Status: StatusUp, Weight: s.Weight, Endpoint: ep.String(), Addr: s.Addr}
		if name, ok := byAddr[s.Addr]; ok {
			st.Server = name
		}
		if s.Down {
			st.Status = StatusDrain
		}
		out = append(out, st)
	}
	return out, nil
}

func (n *nginx) States(ctx context.Context) ([]ServerState, error) {
	var out []ServerState
	for _, ep := range n.endpoints {
		sts, err := n.statesOn(ctx, ep)
		if err != nil {
			return out, fmt.Errorf("states on %s: %w", n.where(ep), err)
		}
		out = append(out, sts...)
	}
	return out, nil
}

func (n *nginx) Preflight(ctx context.Context, servers []string, force bool) error {
	var errs []error
	for _, ep := range n.endpoints {
		sts, err := n.statesOn(ctx, ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("preflight on %s: %w", n.where(ep), err))
			continue
		}
		if _, err := n.run(ctx, ep, n.cfg.NginxBinary+" -t 2>&1"); err != nil {
			errs = append(errs, fmt.Errorf("preflight on %s: %s -t: %w", n.where(ep), n.cfg.NginxBinary, err))
		}
		for _, s := range servers {
			ref := n.ref(s)
			var st *ServerState
			for i := range sts {
				if ref.matches(sts[i].Addr) {
					st = &sts[i]
				}
			}
			switch {
			case st == nil:
				errs = append(errs, fmt.Errorf("preflight %s on %s: upstream %s in %s has no `server %s`: %w", s, n.where(ep), n.cfg.Backend, n.cfg.UpstreamFile, refLabel(ref), ErrUnknownServer))
			case st.Status != StatusUp && !force:
				errs = append(errs, fmt.Errorf("preflight %s on %s: %s is %s (marked down in %s), not in rotation; put it back: remove `down` from its `server %s` line in %s, then run `%s`; or force to proceed: %w",
					s, n.where(ep), s, st.Status, n.cfg.UpstreamFile, st.Addr, n.cfg.UpstreamFile,
					onHost(ep, n.cfg.NginxBinary+" -t && "+n.cfg.NginxBinary+" -s reload"), ErrNotUp))
			}
		}
	}
	return errors.Join(errs...)
}

func (n *nginx) Drain(ctx context.Context, server string) (DrainResult, error) {
	start := time.Now()
	for _, ep := range n.endpoints {
		if err := n.setDown(ctx, ep, []string{server}, true); err != nil {
			return DrainResult{Waited: time.Since(start)}, fmt.Errorf("drain %s on %s: %w", server, n.where(ep), err)
		}
	}
	if n.idle == nil {
		// nginx cannot count sessions: wait the configured time.
		if err := sleepCtx(ctx, n.cfg.DrainTimeout); err != nil {
			return DrainResult{Waited: time.Since(start), Remaining: -1}, fmt.Errorf("drain %s on nginx: %w", server, err)
		}
		return DrainResult{Idle: true, Assumed: true, Waited: time.Since(start)}, nil
	}
	script, err := n.idle.render(server, n.cfg.Backend, addressOf(n.cfg, server))
	if err != nil {
		return DrainResult{}, fmt.Errorf("drain %s on nginx: %w", server, err)
	}
	res, err := pollIdle(ctx, n.c, n.endpoints, script, start, n.cfg)
	if err != nil {
		return res, fmt.Errorf("drain %s on nginx: %w", server, err)
	}
	return res, nil
}

// pollIdle runs the idle check on every endpoint until all exit 0 on two
// polls in a row, or DrainTimeout passes. Twice, because where the script
// cannot find nginx's master (no readable absolute pid file) the reload is
// not waited for (nginxReloadWait), and the old workers may take a request
// just after a first idle answer: the second sees it. Remaining is -1 at
// timeout: a command cannot count.
func pollIdle(ctx context.Context, c Connector, eps []Endpoint, script string, start time.Time, cfg Config) (DrainResult, error) {
	deadline := start.Add(cfg.DrainTimeout)
	idleSeen := 0
	for {
		idle := true
		for _, ep := range eps {
			cctx, cancel := context.WithTimeout(ctx, cmdTimeout)
			_, err := c.RunOn(cctx, ep.SSH, script)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return DrainResult{Waited: time.Since(start), Remaining: -1}, ctx.Err()
				}
				idle = false
				break
			}
		}
		if idle {
			idleSeen++
		} else {
			idleSeen = 0
		}
		if idleSeen >= 2 {
			return DrainResult{Idle: true, Waited: time.Since(start)}, nil
		}
		if !time.Now().Before(deadline) {
			if idle {
				return DrainResult{Idle: true, Waited: time.Since(start)}, nil
			}
			return DrainResult{Waited: time.Since(start), Remaining: -1}, nil
		}
		if err := sleepCtx(ctx, min(cfg.PollInterval, time.Until(deadline))); err != nil {
			return DrainResult{Waited: time.Since(start), Remaining: -1}, err
		}
	}
}

// Enable removes `down` and verifies the file. Open-source nginx has no
// active health check of its own, so there is nothing to wait for: the
// caller's health gate is the check.
func (n *nginx) Enable(ctx context.Context, server string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for _, ep := range n.endpoints {
		if err := n.setDown(ctx, ep, []string{server}, false); err != nil {
			return fmt.Errorf("enable %s on %s: %w", server, n.where(ep), err)
		}
	}
	return nil
}

func (n *nginx) Restore(ctx context.Context, servers []string) error {
	if len(servers) == 0 {
		return nil
	}
	var errs []error
	for _, ep := range n.endpoints {
		err := n.setDown(ctx, ep, servers, false)
		if errors.Is(err, ErrUnknownServer) && len(servers) > 1 {
			// One unknown name must not keep the others drained.
			for _, s := range servers {
				if err := n.setDown(ctx, ep, []string{s}, false); err != nil {
					errs = append(errs, fmt.Errorf("restore %s on %s: %w", s, n.where(ep), err))
				}
			}
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s on %s: %w", strings.Join(servers, ", "), n.where(ep), err))
		}
	}
	return errors.Join(errs...)
}

// CanVerify implements Balancer: the upstream file is read back.
func (n *nginx) CanVerify() bool { return true }

// Verify implements Balancer: the server's line is present and not `down`
// in every endpoint's upstream file.
func (n *nginx) Verify(ctx context.Context, server string) error {
	return verifyUp(ctx, n, n.endpoints, server)
}

// EnsureOut implements Balancer. nginx cannot count sessions: with an
// idle_check, a server already marked down must also pass it (a re-drain
// waits for it anyway); without one, being marked down is all relctl knows.
func (n *nginx) EnsureOut(ctx context.Context, server string) (string, error) {
	note, err := ensureOut(ctx, n, n.endpoints, server)
	if err != nil || note != "" || n.idle == nil {
		return note, err
	}
	return ensureIdle(ctx, n.c, n.endpoints, n.cfg, n.idle, server)
}
