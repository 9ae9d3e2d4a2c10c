package fleet

import (
	"fmt"
	"strings"

	"github.com/relctl/relctl/internal/shell"
)

// Direct become: a command sudo runs as itself, so that sudoers can name it.
//
// A become command that is a simple command — words of safe characters
// separated by spaces, nothing a shell would interpret — and that needs
// none of env:'s values runs as
//
//	exec sudo -n -u root -- /usr/bin/systemctl stop shop
//
// with its first word resolved on the host (command -v, then $PATH) when it
// is not already absolute, so the sudoers line can be as narrow as
//
//	deploy ALL=(root) NOPASSWD: /usr/bin/systemctl stop shop, /usr/bin/systemctl start shop
//
// sudo's env_reset gives it sudo's clean environment: no RELCTL_* values
// (pass what it needs as template values, e.g. {{.Version}}). Anything
// else (shell text, or env: values to deliver) keeps the /bin/sh path of
// become.go, whose sudoers line must allow /bin/sh.
//
// A timeout or cancel sends TERM to the command's process group, which
// holds sudo; sudo relays a TERM sent from another process group to the
// command (relctl's watchdog and kill session are always another group).

// simpleWordChars are the characters a word of a simple command may hold:
// none of them is special to sh, so sh would pass the word on unchanged.
const simpleWordChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-"

// shellWords are words sh reads as keywords or builtins when they come
// first: such a command is shell text, not a program sudo can run.
var shellWords = map[string]bool{
	"if": true, "then": true, "else": true, "elif": true, "fi": true, "case": true, "esac": true,
	"for": true, "while": true, "until": true, "do": true, "done": true, "in": true, "function": true,
	"select": true, "time": true,
	".": true, ":": true, "break": true, "continue": true, "eval": true, "exec": true, "exit": true,
	"export": true, "readonly": true, "return": true, "set": true, "shift": true, "times": true,
	"trap": true, "unset": true, "cd": true, "alias": true, "unalias": true, "bg": true, "fg": true,
	"jobs": true, "getopts": true, "read": true, "type": true, "ulimit": true, "umask": true,
	"wait": true, "command": true, "local": true, "source": true, "hash": true,
}

// SimpleCommand splits script into the words of a simple command, or says
// why it is shell text. The grammar is deliberately small: words separated
// by single or repeated spaces, each made only of
// [A-Za-z0-9_@%+=:,./-]; the first word is a program name (no '=', which
// sh reads as an assignment; not a shell keyword or builtin; not starting
// with '-') or an absolute path. Anything else — operators (; & | && ||),
// redirections, $ and backquote expansions, globs, quotes, backslashes,
// tabs, newlines, ~ — makes it shell text.
func SimpleCommand(script string) ([]string, error) {
	if strings.TrimSpace(script) == "" {
		return nil, fmt.Errorf("it is empty")
	}
	for i := 0; i < len(script); i++ {
		c := script[i]
		if c != ' ' && strings.IndexByte(simpleWordChars, c) < 0 {
			return nil, fmt.Errorf("it holds %s, which only a shell reads", describeChar(c))
		}
	}
	words := strings.Fields(script)
	w0 := words[0]
	switch {
	case strings.HasPrefix(w0, "-"):
		return nil, fmt.Errorf("its first word %q is not a program", w0)
	case strings.Contains(w0, "="):
		return nil, fmt.Errorf("its first word %q is a shell variable assignment", w0)
	case shellWords[w0]:
		return nil, fmt.Errorf("%q is a shell keyword or builtin", w0)
	case strings.Contains(w0, "/") && !strings.HasPrefix(w0, "/"):
		return nil, fmt.Errorf("its program %q is a relative path (write it absolute)", w0)
	case strings.HasSuffix(w0, "/"):
		return nil, fmt.Errorf("its program %q is a directory", w0)
	}
	return words, nil
}

func describeChar(c byte) string {
	switch c {
	case '\n':
		return "a newline"
	case '\t':
		return "a tab"
	case '\'', '"':
		return "a quote (" + string(c) + ")"
	case '\\':
		return `a backslash`
	}
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("the byte 0x%02x", c)
	}
	return fmt.Sprintf("%q", string(c))
}

// builtinEnv are the RELCTL_* values Values.Env always sets: a direct
// command goes without them (sudo would drop them anyway).
var builtinEnv = map[string]bool{
	"RELCTL_APP": true, "RELCTL_VERSION": true, "RELCTL_FROM": true, "RELCTL_RELEASE": true,
	"RELCTL_PATH": true, "RELCTL_HOST": true, "RELCTL_ADDRESS": true,
}

// envValues reports whether env holds values other than the RELCTL_* ones:
// env: values or secrets, which only the /bin/sh path can carry across
// sudo.
func envValues(env map[string]string) bool {
	for k := range env {
		if !builtinEnv[k] {
			return true
		}
	}
	return false
}

// SendsEnv reports whether the command gets env:'s values (and secrets)
// across sudo: true unless become says env: false.
func (b *Become) SendsEnv() bool { return b == nil || b.Env == nil || *b.Env }

// Direct returns the words sudo runs for script when it runs without
// /bin/sh (nil, and why not, when it needs the shell). hasEnv says whether
// env: values (or secrets) are to be delivered to it.
func (b *Become) Direct(script string, hasEnv bool) ([]string, string) {
	words, err := SimpleCommand(script)
	if err != nil {
		return nil, "it is shell text: " + err.Error()
	}
	if hasEnv && b.SendsEnv() {
		return nil, "env: values must reach it, and only /bin/sh carries them across sudo (become: {env: false} sends none)"
	}
	return words, ""
}

// ShellNote is the one line that says command name (script) runs through
// /bin/sh under sudo, why, and what that asks of sudoers.
func (b *Become) ShellNote(name, script, why string) string {
	return fmt.Sprintf("commands.%s (%s) runs as %s through /bin/sh under sudo because %s; sudoers must allow /bin/sh as %s for it, which lets the SSH user run anything as %s",
		name, script, b.user(), why, b.user(), b.user())
}

// findProgram is sh that prints the absolute path of the program named $1
// as the SSH user's shell finds it: command -v, else the first executable
// file of that name in $PATH (command -v names builtins such as kill or
// printf, which sudo cannot run).
const findProgram = `relctl_find() { relctl_f=$(command -v -- "$1" 2>/dev/null); case $relctl_f in /*) printf '%s\n' "$relctl_f"; return 0;; esac; ` +
	`relctl_ifs=$IFS; IFS=:; for relctl_d in $PATH; do if [ -f "$relctl_d/$1" ] && [ -x "$relctl_d/$1" ]; then IFS=$relctl_ifs; printf '%s\n' "$relctl_d/$1"; return 0; fi; done; IFS=$relctl_ifs; return 1; }; `

// DirectScript is the host script that runs words through sudo directly:
// the first word resolved to an absolute path on the host when it is not
// one (exit 127 with a message when it cannot be found), then
// exec sudo -n -u USER -- PATH ARGS.
func (b *Become) DirectScript(words []string) string {
	args := quoteWords(words[1:])
	if strings.HasPrefix(words[0], "/") {
		return "exec sudo -n -u " + shell.Quote(b.user()) + " -- " + shell.Quote(words[0]) + args
	}
	w := shell.Quote(words[0])
	return findProgram + `relctl_c=$(relctl_find ` + w + `) || { printf 'relctl: %s: not found in PATH=%s\n' ` + w + ` "$PATH" >&2; exit 127; }; ` +
		"exec sudo -n -u " + shell.Quote(b.user()) + ` -- "$relctl_c"` + args
}

// DirectCheck is the host script the preflight runs for words: it prints
// "path <absolute path>" or "notfound", then whether sudo allows exactly
// that command line without a password, as
// "ok" or "fail <status> <sudo's output on one line>", each line prefixed
// by prefix. An absolute program that does not exist yet (under
// {{.Release}}, unpacked later; under current/ before a first deploy)
// gets "absent": sudo answers "command not found" for it whatever sudoers
// says, so it cannot be asked now.
func (b *Become) DirectCheck(words []string, prefix string) string {
	args := quoteWords(words[1:])
	p := shell.Quote(prefix)
	var find string
	if strings.HasPrefix(words[0], "/") {
		w := shell.Quote(words[0])
		find = "if [ -e " + w + " ]; then relctl_c=" + w + "; else printf '%sabsent\\n' " + p + "; relctl_c=; fi; "
	} else {
		find = findProgram + "relctl_c=$(relctl_find " + shell.Quote(words[0]) + ") || { printf '%snotfound\\n' " + p + "; relctl_c=; }; "
	}
	return find + `if [ -n "$relctl_c" ]; then printf '%spath %s\n' ` + p + ` "$relctl_c"; ` +
		`if o=$(sudo -n -l -u ` + shell.Quote(b.user()) + ` -- "$relctl_c"` + args + ` 2>&1 </dev/null); then printf '%sok\n' ` + p + `; ` +
		`else r=$?; printf '%sfail %s %s\n' ` + p + ` "$r" "$(printf '%s' "$o" | tr '\n' ' ')"; fi; fi`
}

func quoteWords(ws []string) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteByte(' ')
		b.WriteString(shell.Quote(w))
	}
	return b.String()
}

// SudoersLine is the sudoers rule that lets user run words (its program an
// absolute path) as b's user without a password: the characters sudoers
// treats specially in arguments (, : = \) escaped.
func (b *Become) SudoersLine(user string, words []string) string {
	esc := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`, `=`, `\=`)
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = esc.Replace(w)
	}
	return fmt.Sprintf("%s ALL=(%s) NOPASSWD: %s", user, b.user(), strings.Join(parts, " "))
}

// DescribeDirect is `sudo -n -u root -- /usr/bin/systemctl stop shop`.
func (b *Become) DescribeDirect(words []string) string {
	return "sudo -n -u " + b.user() + " -- " + strings.Join(words, " ")
}

// withoutEnvValues is env with only its RELCTL_* values (become env: false).
func withoutEnvValues(env map[string]string) map[string]string {
	out := make(map[string]string, len(builtinEnv))
	for k, v := range env {
		if builtinEnv[k] {
			out[k] = v
		}
	}
	return out
}

// BecomeShellNotes are the lines that say, for each command with become
// that runs through /bin/sh under sudo on some of the inventory's hosts,
// why and on which hosts (ShellNote): for plan and validate. Template
// values are rendered for a step from version from to version to.
func (inv *Inventory) BecomeShellNotes(from, to string) []string {
	type key struct{ name, why string }
	var order []key
	hosts := map[key][]string{}
	script := map[key]string{}
	bec := map[key]*Become{}
	for _, n := range commandNames {
		b := inv.BecomeFor(n)
		if !b.Active() {
			continue
		}
		for _, h := range inv.Hosts {
			if (n == CmdMigrate || n == CmdPostMigrate) && h.Name != inv.Migrations.Host {
				continue // they run only there
			}
			t := inv.HostTemplate(h, n)
			if t == nil {
				continue
			}
			vals := inv.HostValues(h, from, to)
			s, err := t.Render(vals)
			if err != nil {
				continue // the loader or the run reports it
			}
			hasEnv := len(inv.hostEnv(h)) > 0
			if _, why := b.Direct(s, hasEnv); why != "" {
				k := key{n, why}
				if hosts[k] == nil {
					order = append(order, k)
					script[k] = s
				}
				hosts[k] = append(hosts[k], h.Name)
				bec[k] = b
			}
		}
	}
	var out []string
	for _, k := range order {
		line := bec[k].ShellNote(k.name, script[k], k.why)
		if len(hosts[k]) < len(inv.Hosts) && k.name != CmdMigrate && k.name != CmdPostMigrate {
			line += " (on " + strings.Join(hosts[k], ", ") + ")"
		}
		out = append(out, line)
	}
	return out
}
