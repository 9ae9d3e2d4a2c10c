package fleet

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/relctl/relctl/internal/shell"
	"go.yaml.in/yaml/v3"
)

// Become: running the inventory's commands as another user.
//
//	become: {method: sudo, user: root}     # every command of the inventory
//	commands:
//	  stop:   {command: "systemctl stop shop", become: {method: sudo, user: root}}
//	  health: {command: "curl -fsS localhost:8080/health", become: {method: none}}
//
// A simple command that needs no env: values runs directly (sudo -n -u
// USER -- PROGRAM ARGS, become_direct.go). Any other command with become
// runs on the host as
//
//	printf '%s\n' "$RELCTL_BECOME_ENV" |
//	  sudo -n -u USER -- /bin/sh -c 'eval "$(cat)" || exit 126; trap … TERM; /bin/sh -c "$1" & wait $!' relctl-become COMMAND
//
// sudo -n never asks for a password and needs no terminal: a host whose
// sudoers does not allow it fails the run's preflight, before anything
// changes. sudo's env_reset drops the environment, so the command's
// environment values (RELCTL_*, env:, secrets) travel the way they do
// without sudo: on stdin (RELCTL_BECOME_ENV, exported by the SSH user's
// shell, holds them as export statements; it is never in a command line),
// and the shell sudo starts exports them for the command.
//
// Only the inventory's commands (stop, start, health, version, migrate,
// post_migrate) are run so. relctl's own work on a host (upload, unpack,
// switch, lock, audit, prune) runs as the SSH user, who must own path.
//
// For this /bin/sh form the sudoers rule must let the SSH user run /bin/sh
// as USER without a password (the direct form needs only the command's own
// line), for example:
//
//	deploy ALL=(root) NOPASSWD: /bin/sh
//
// which lets deploy run anything as root: sudo adds no password prompt and
// an audit trail, not a sandbox. Prefer a become user with only the rights
// the commands need (e.g. the app's own user).

// Become methods.
const (
	BecomeSudo = "sudo"
	BecomeNone = "none"
)

// Become is how a command runs as another user.
type Become struct {
	Method string `yaml:"method"` // sudo (default) or none
	User   string `yaml:"user"`   // default root
	// Env false: the command gets none of env:'s values (nor secrets), so
	// a simple command can run without /bin/sh (become_direct.go). Unset
	// or true: they are delivered (through /bin/sh).
	Env *bool `yaml:"env,omitempty"`
}

var becomeType = reflect.TypeOf(Become{})

// Active reports whether b changes the user (nil and method none do not).
func (b *Become) Active() bool { return b != nil && b.Method != BecomeNone }

// ResolveBecome returns the most specific become setting: the first of
// levels that is set (a command's own, then a role's, then the
// inventory's), or nil. A level with method none is set: it turns become
// off for what it covers.
func ResolveBecome(levels ...*Become) *Become {
	for _, b := range levels {
		if b != nil {
			if !b.Active() {
				return nil
			}
			return b
		}
	}
	return nil
}

// BecomeFor is how command name (stop, start, ...) runs on the inventory's
// hosts: nil runs it as the SSH user.
func (inv *Inventory) BecomeFor(name string) *Become {
	return ResolveBecome(inv.commandBecome[name], inv.Become)
}

// BecomeEnvVar carries a become command's environment, as export
// statements, from the SSH user's shell to the shell sudo starts.
const BecomeEnvVar = "RELCTL_BECOME_ENV"

// becomeInner is the program the shell started by sudo runs: it exports the
// environment read on stdin, then runs the command as sh -c would. sudo
// passes a TERM on to its command only, not to what the command started,
// and the SSH user may not signal the become user's processes: so on TERM
// (a timeout, a cancel) this shell sends TERM to its whole process group,
// which is the command's (relctl runs each command as a group), then dies
// of it too.
const becomeInner = `eval "$(cat)" || exit 126; trap 'trap - TERM; kill -s TERM 0' TERM; /bin/sh -c "$1" & wait $!`

// SudoArgs is the command line after `sudo -n` for script: what runs, and
// what the preflight asks `sudo -n -l` about.
func (b *Become) SudoArgs(script string) string {
	return "-u " + shell.Quote(b.user()) + " -- /bin/sh -c " + shell.Quote(becomeInner) + " relctl-become " + shell.Quote(script)
}

func (b *Become) user() string {
	if b.User == "" {
		return "root"
	}
	return b.User
}

// Describe is `sudo -n -u root -- systemctl stop shop`: the command as the
// operator wrote it, for messages.
func (b *Become) Describe(script string) string {
	return "sudo -n -u " + b.user() + " -- " + script
}

// Wrap returns the script that runs script through sudo as b says, and
// the environment to send with it. A simple command that needs no env:
// values runs directly (become_direct.go), with no environment; otherwise
// it runs through /bin/sh with env plus BecomeEnvVar, which carries env
// across sudo. With b nil (or method none) it returns them unchanged.
func (b *Become) Wrap(script string, env map[string]string) (string, map[string]string) {
	return b.wrap(script, env, false)
}

// wrap is Wrap; hostEnv says the host has env: values even when env does
// not carry them (status reads versions without them), so that the command
// runs the way a run would run it.
func (b *Become) wrap(script string, env map[string]string, hostEnv bool) (string, map[string]string) {
	if !b.Active() {
		return script, env
	}
	if !b.SendsEnv() {
		env = withoutEnvValues(env)
	}
	if words, _ := b.Direct(script, hostEnv || envValues(env)); words != nil {
		return b.DirectScript(words), nil
	}
	out := make(map[string]string, len(env)+1)
	keys := make([]string, 0, len(env))
	for k, v := range env {
		out[k] = v
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var e strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&e, "export %s=%s\n", k, shell.Quote(env[k]))
	}
	out[BecomeEnvVar] = e.String()
	return `printf '%s\n' "${` + BecomeEnvVar + `-}" | sudo -n ` + b.SudoArgs(script), out
}

// WrapCommand is Wrap for command name of the inventory on its hosts.
func (inv *Inventory) WrapCommand(name, script string, env map[string]string) (string, map[string]string) {
	return inv.BecomeFor(name).Wrap(script, env)
}

// WrapHostCommand is WrapCommand for command name on host h when env may
// lack h's env: values (status and plan read versions and health without
// them): the command still runs through /bin/sh where a run would run it
// so, so that sudoers is asked about the same command line.
func (inv *Inventory) WrapHostCommand(h Host, name, script string, env map[string]string) (string, map[string]string) {
	return inv.BecomeFor(name).wrap(script, env, len(inv.hostEnv(h)) > 0)
}

// liftCommandBecome turns each commands.<name> written as a mapping
// ({command: ..., become: {...}}) into its command string, checking the
// mapping's keys, and returns the become nodes by command name. Roles may
// call it on their own commands mapping.
func (l *loader) liftCommandBecome(commands *yaml.Node, path string) map[string]*yaml.Node {
	if commands == nil || commands.Kind != yaml.MappingNode {
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(commands.Content); i += 2 {
		k, v := commands.Content[i], commands.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind != yaml.MappingNode {
			continue
		}
		kp := join(path, k.Value)
		var cmd, become *yaml.Node
		for j := 0; j+1 < len(v.Content); j += 2 {
			switch v.Content[j].Value {
			case "command":
				cmd = v.Content[j+1]
			case "become":
				become = v.Content[j+1]
			default:
				l.add(v.Content[j].Line, kp, "unknown key %q: a command is a string, or {command: ..., become: {method: sudo, user: ...}}", v.Content[j].Value)
			}
		}
		if cmd == nil && !l.overlay {
			l.add(v.Line, kp, "command is required when %s is a mapping ({command: ..., become: ...})", k.Value)
		}
		if cmd == nil {
			cmd = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: v.Line}
		}
		commands.Content[i+1] = cmd
		if become != nil {
			out[k.Value] = become
			l.lines[kp+".become"] = become.Line
		}
	}
	return out
}

// liftBecome runs liftCommandBecome on the document's commands and walks
// and decodes what it lifted into inv.commandBecome.
func (l *loader) liftBecome(doc *yaml.Node, prefix string) map[string]*Become {
	j := mapIndex(doc, "commands")
	if doc.Kind != yaml.MappingNode || j < 0 {
		return nil
	}
	nodes := l.liftCommandBecome(doc.Content[j+1], join(prefix, "commands"))
	out := map[string]*Become{}
	for name, n := range nodes {
		p := join(prefix, "commands."+name+".become")
		if !l.walk(n, becomeType, p) {
			continue
		}
		b := &Become{}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			continue
		}
		if err := n.Decode(b); err != nil {
			l.add(n.Line, p, "%v", err)
			continue
		}
		out[name] = b
	}
	return out
}

var becomeUserRe = nameRe

// validateBecome checks become: and commands.<name>.become.
func (l *loader) validateBecome(inv *Inventory) {
	check := func(p string, b *Become) {
		if b == nil {
			return
		}
		switch b.Method {
		case "":
			b.Method = BecomeSudo
		case BecomeSudo, BecomeNone:
		default:
			l.at(p+".method", "become method must be %q or %q, not %q", BecomeSudo, BecomeNone, b.Method)
		}
		if b.Method == BecomeNone && b.User != "" {
			l.at(p+".user", "become method none runs as the SSH user: user %q would be ignored", b.User)
		}
		if b.User != "" && !becomeUserRe.MatchString(b.User) {
			l.at(p+".user", "become user %q may hold only letters, digits and . _ -", b.User)
		}
	}
	check("become", inv.Become)
	names := make([]string, 0, len(inv.commandBecome))
	for n := range inv.commandBecome {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !slices.Contains(commandNames, n) {
			continue // an unknown command: the walk reported it
		}
		check("commands."+n+".become", inv.commandBecome[n])
	}
}

// commandNames are the commands that may have become.
var commandNames = []string{CmdStop, CmdStart, CmdHealth, CmdVersion, CmdMigrate, CmdPostMigrate}
