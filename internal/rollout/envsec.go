package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/relctl/relctl/internal/fleet"
)

// Secrets and become in a run.
//
// A run resolves the inventory's secrets once, at its preflight (never at
// plan time), and keeps them in memory: they reach the host commands only
// through remote.Command.Env, which travels on stdin. No event, journal
// record or error carries a value.
//
// Commands with become go through sudo -n (fleet/become.go); the preflight
// asks `sudo -n -l` on every host, for every such command, whether sudoers
// allows it without a password, and refuses the run before anything
// changes when it does not.

// ErrBecomeRefused means sudo on a host does not allow a become command
// without a password (or sudo is missing).
var ErrBecomeRefused = errors.New("sudo refused")

// secretState is the run's resolved secrets.
type secretState struct {
	once sync.Once
	s    *fleet.Secrets
	err  error
}

// resolveSecrets resolves the inventory's secrets, once per run.
func (e *Engine) resolveSecrets(ctx context.Context) error {
	e.sec.once.Do(func() {
		if !e.inv.HasSecrets() {
			return
		}
		e.sec.s, e.sec.err = e.inv.ResolveSecrets(ctx, e.cfg.Secrets)
	})
	return e.sec.err
}

// hostValues are h's template values and environment for a step from
// version from to version to, the run's secrets included.
func (e *Engine) hostValues(h fleet.Host, from, to string) fleet.Values {
	v := e.inv.HostValues(h, from, to)
	// Preflight resolved them; a step that runs without a preflight of
	// its own (a resumed run's rollback) resolves them here, and a missing
	// one then fails that step's commands rather than running without it.
	if err := e.resolveSecrets(e.hard); err == nil {
		e.sec.s.Fill(e.inv, h, &v)
	}
	return v
}

// secretsReady is the error a command needing secrets fails with when they
// could not be resolved (nil when they are, or there are none).
func (e *Engine) secretsReady() error {
	if err := e.resolveSecrets(e.hard); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	return nil
}

// commandEnv wraps script (command name of the inventory, rendered) with
// its become setting and returns it with the environment to send: the
// RELCTL_* values, env: and the run's secrets. It fails when the
// secrets could not be resolved: a command never runs without them.
func (e *Engine) commandEnv(name, script string, vals fleet.Values) (string, map[string]string, error) {
	if err := e.secretsReady(); err != nil {
		return "", nil, err
	}
	s, env := e.inv.WrapCommand(name, script, vals.Env())
	return s, env, nil
}

// becomeCommands are the inventory's commands that run with become on host
// (migrate and post_migrate only on the migrations host), rendered with
// vals, in a fixed order.
func (e *Engine) becomeCommands(host string, vals fleet.Values) (names, scripts []string, err error) {
	cmds := []string{fleet.CmdStop, fleet.CmdStart, fleet.CmdHealth, fleet.CmdVersion}
	if host == e.plan.Settings.MigrationsHost {
		cmds = append(cmds, fleet.CmdMigrate, fleet.CmdPostMigrate)
	}
	for _, n := range cmds {
		t := e.inv.HostTemplate(e.host(host), n) // the host role's own command, if it has one
		if t == nil || !e.inv.BecomeFor(n).Active() {
			continue
		}
		s, err := t.Render(vals)
		if err != nil {
			return nil, nil, fmt.Errorf("commands.%s: %w", n, err)
		}
		names, scripts = append(names, n), append(scripts, s)
	}
	return names, scripts, nil
}

// checkBecome asks sudo on host, in one remote command, whether each of
// its become commands may run without a password: a simple command with
// the exact program path and arguments the run will use (become_direct.go),
// shell text as the /bin/sh command line it will run as.
func (e *Engine) checkBecome(ctx context.Context, host string) error {
	h := e.host(host)
	vals := e.hostValues(h, e.plan.From, e.plan.To)
	names, scripts, err := e.becomeCommands(host, vals)
	if err != nil || len(names) == 0 {
		return err
	}
	hasEnv := len(vals.EnvVars) > 0
	nonce := newNonce()
	words := make([][]string, len(names))
	why := make([]string, len(names))
	var b strings.Builder
	b.WriteString("if ! command -v sudo >/dev/null 2>&1; then echo \"relctl-sudo:" + nonce + " missing\"; exit 0; fi\n")
	b.WriteString("echo \"relctl-sudo:" + nonce + " user $(id -un)\"\n")
	for i, n := range names {
		bec := e.inv.BecomeFor(n)
		words[i], why[i] = bec.Direct(scripts[i], hasEnv)
		if words[i] != nil {
			fmt.Fprintf(&b, "( %s )\n", bec.DirectCheck(words[i], fmt.Sprintf("relctl-sudo:%s %d ", nonce, i)))
			continue
		}
		fmt.Fprintf(&b, "if o=$(sudo -n -l %s 2>&1 </dev/null); then echo \"relctl-sudo:%s %d ok\"; else r=$?; printf 'relctl-sudo:%s %d fail %%s %%s\\n' \"$r\" \"$(printf '%%s' \"$o\" | tr '\\n' ' ')\"; fi\n",
			bec.SudoArgs(scripts[i]), nonce, i, nonce, i)
	}
	out, err := e.output(ctx, host, b.String(), e.to.Observe)
	if err != nil {
		return fmt.Errorf("%s: checking sudo: %w", host, err)
	}
	results := map[int]string{}
	paths := map[int]string{}
	user := ""
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "relctl-sudo:"+nonce+" ")
		if !ok {
			continue
		}
		if rest == "missing" {
			return fmt.Errorf("%s: %w: sudo is not installed, and %s run through sudo -n (become) — install sudo, or drop become",
				host, ErrBecomeRefused, strings.Join(prefixed("commands.", names), ", "))
		}
		if u, ok := strings.CutPrefix(rest, "user "); ok {
			user = strings.TrimSpace(u)
			continue
		}
		f := strings.SplitN(rest, " ", 2)
		i, err := strconv.Atoi(f[0])
		if err != nil || len(f) < 2 {
			continue
		}
		switch {
		case strings.HasPrefix(f[1], "path "):
			paths[i] = strings.TrimPrefix(f[1], "path ")
		case f[1] == "notfound", f[1] == "absent":
			results[i] = f[1]
		default:
			results[i] = f[1]
		}
	}
	if user == "" {
		user = e.inv.SSH.User
		if h.SSH.User != "" {
			user = h.SSH.User
		}
	}
	var errs []error
	for i, n := range names {
		bec := e.inv.BecomeFor(n)
		r, ok := results[i]
		desc := bec.Describe(scripts[i])
		if words[i] != nil && paths[i] != "" {
			words[i] = append([]string{paths[i]}, words[i][1:]...)
			desc = bec.DescribeDirect(words[i])
		}
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: %s (commands.%s): no answer from the sudo check", host, desc, n))
		case r == "ok":
		case r == "absent":
			// Not there yet (a path in the release this run unpacks): sudo
			// cannot be asked before it is; sudo -n fails the command's
			// step at once if sudoers does not allow it.
		case r == "notfound":
			errs = append(errs, fmt.Errorf("%s: %s (commands.%s): %w: %s is not found in the PATH of %s on %s",
				host, desc, n, ErrBecomeRefused, words[i][0], user, host))
		case words[i] != nil:
			errs = append(errs, fmt.Errorf("%s: %s (commands.%s): %w: %s — add to sudoers on %s: %s",
				host, desc, n, ErrBecomeRefused, sudoReason(r), host, bec.SudoersLine(user, words[i])))
		default:
			errs = append(errs, fmt.Errorf("%s: %s (commands.%s): %w: %s; it runs through /bin/sh because %s",
				host, desc, n, ErrBecomeRefused, sudoWhy(r), why[i]))
		}
	}
	return errors.Join(errs...)
}

// sudoReason turns `fail <status> <sudo's output>` into why sudo refused,
// without a hint.
func sudoReason(r string) string {
	r = strings.TrimSpace(strings.TrimPrefix(r, "fail "))
	status, msg, _ := strings.Cut(r, " ")
	msg = strings.TrimSpace(msg)
	switch {
	case strings.Contains(msg, "password is required"):
		return "a password is required"
	case msg == "" && status == "1":
		return "sudoers does not allow it"
	case msg == "":
		return "sudo -n -l exited " + status
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// sudoWhy turns `fail <status> <sudo's output>` into a reason.
func sudoWhy(r string) string {
	r = strings.TrimSpace(strings.TrimPrefix(r, "fail "))
	status, msg, _ := strings.Cut(r, " ")
	msg = strings.TrimSpace(msg)
	const hint = " — allow it in sudoers (see docs/design.md, \"Running commands as another user\")"
	switch {
	case strings.Contains(msg, "password is required"):
		return "a password is required" + hint
	case msg == "" && status == "1":
		return "sudoers does not allow it" + hint
	case msg == "":
		return "sudo -n -l exited " + status + hint
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg + hint
}

func prefixed(p string, l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = p + s
	}
	sort.Strings(out)
	return out
}
