package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestVersionFlagIsTheVersionCommand(t *testing.T) {
	c1, byCmd, _ := run(t, "version")
	c2, byFlag, _ := run(t, "--version")
	if c1 != ExitOK || c2 != ExitOK || byFlag != byCmd || !strings.HasPrefix(byFlag, "relctl ") {
		t.Fatalf("version: exit %d %q; --version: exit %d %q", c1, byCmd, c2, byFlag)
	}
	old := Version
	Version = "9.8.7"
	defer func() { Version = old }()
	if _, out, _ := run(t, "--version"); out != "relctl 9.8.7\n" {
		t.Errorf("--version with the ldflags Version: %q", out)
	}
}

func TestMistypedCommandGetsASuggestion(t *testing.T) {
	cases := []struct{ args, want []string }{
		{[]string{"aply"}, []string{`unknown command "aply" for "relctl"`, "Did you mean this?", "\tapply"}},
		{[]string{"stauts"}, []string{`unknown command "stauts"`, "\tstatus"}},
		{[]string{"valdate"}, []string{"\tvalidate"}},
		{[]string{"lock", "brek"}, []string{`unknown command "brek" for "relctl lock"`, "\tbreak"}},
	}
	for _, c := range cases {
		code, out, errs := run(t, c.args...)
		if code != ExitUsage || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want exit 2, no output", c.args, code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%v: stderr %q lacks %q", c.args, errs, w)
			}
		}
	}
	// Nothing close: no suggestion, still 2.
	code, _, errs := run(t, "frobnicate")
	if code != ExitUsage || strings.Contains(errs, "Did you mean") || !strings.Contains(errs, "unknown command") {
		t.Errorf("frobnicate: exit %d, %q", code, errs)
	}
}

// exampleArgs splits an example line the way sh would for what examples
// use (words, single and double quotes) and stops at a comment, a pipe, a
// redirection or a command separator.
func exampleArgs(t *testing.T, line string) []string {
	var args []string
	var cur strings.Builder
	in, quote, started := false, byte(0), false
	flush := func() {
		if started {
			args = append(args, cur.String())
		}
		cur.Reset()
		started = false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case in:
			if c == quote {
				in = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			in, quote, started = true, c, true
		case c == ' ' || c == '\t':
			flush()
		case !started && strings.IndexByte("#|>;&<", c) >= 0:
			flush()
			return args
		default:
			cur.WriteByte(c)
			started = true
		}
	}
	if in {
		t.Fatalf("unterminated quote in example %q", line)
	}
	flush()
	return args
}

// TestExamplesParse checks every command's help has an example, and runs
// every example line through cobra's own command lookup and flag parsing
// against the real flag set: a misspelt flag, a flag of another command, a
// missing required flag or a wrong number of arguments fails here.
func TestExamplesParse(t *testing.T) {
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		all = append(all, c)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot(&IO{}))
	lines := 0
	for _, c := range all {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no example in its help", c.CommandPath())
			continue
		}
		for _, line := range strings.Split(c.Example, "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "relctl") {
				continue
			}
			lines++
			args := exampleArgs(t, line)
			if args[0] != "relctl" {
				t.Errorf("%s: example %q", c.CommandPath(), line)
				continue
			}
			// A fresh tree each time: parsing sets flags.
			root := newRoot(&IO{})
			cmd, rest, err := root.Find(args[1:])
			if err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), line, err)
				continue
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), line, err)
				continue
			}
			if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), line, err)
			}
			if err := cmd.ValidateRequiredFlags(); err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), line, err)
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), line, err)
			}
			// An example under a command shows that command (or its
			// subcommands); `relctl --version` is the version command's.
			if !strings.HasPrefix(cmd.CommandPath()+" ", c.CommandPath()+" ") && !(c.Name() == "version" && line == "relctl --version") {
				t.Errorf("%s: example %q runs %s", c.CommandPath(), line, cmd.CommandPath())
			}
		}
	}
	if lines < 30 {
		t.Errorf("only %d example lines checked", lines)
	}
}

// The checker itself must catch a wrong flag, else the test above proves
// nothing.
func TestExampleCheckerCatchesWrongFlags(t *testing.T) {
	for _, line := range []string{
		"relctl plan --too 1.4.0",
		"relctl status --reason x",
		"relctl downgrade --reason x", // --to is required
		"relctl repair",               // a host is required
		"relctl history -n ten",       // not a number
		`relctl downgrade --to 1.3.2 --reason "x" --yes --plian`,
	} {
		args := exampleArgs(t, line)
		root := newRoot(&IO{})
		cmd, rest, err := root.Find(args[1:])
		if err == nil {
			err = cmd.ParseFlags(rest)
		}
		if err == nil {
			err = cmd.ValidateArgs(cmd.Flags().Args())
		}
		if err == nil {
			err = cmd.ValidateRequiredFlags()
		}
		if err == nil {
			t.Errorf("%q passes the example check", line)
		}
	}
	if got := exampleArgs(t, `relctl downgrade --to 1.3.2 --reason "INC-1: carts" > x # y`); strings.Join(got, "|") != "relctl|downgrade|--to|1.3.2|--reason|INC-1: carts" {
		t.Errorf("split: %q", got)
	}
}

// complete runs cobra's hidden __complete command and returns the values
// offered (descriptions cut) and the directive line.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	code, out, _ := run(t, append([]string{"__complete"}, args...)...)
	if code != ExitOK {
		t.Fatalf("__complete %v: exit %d", args, code)
	}
	var vals []string
	directive := ""
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(l, ":") {
			directive = l
			continue
		}
		if l != "" {
			v, _, _ := strings.Cut(l, "\t")
			vals = append(vals, v)
		}
	}
	return vals, directive
}

// completionFleet is fleet.example.yaml in a temp dir with artifacts for
// 1.4.0 and 2.1.0 (not in the releases table) beside it, and files that
// are not release artifacts.
func completionFleet(t *testing.T) string {
	dir := t.TempDir()
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(inv, src, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "dist"), 0o755)
	for _, f := range []string{"shop-1.4.0.tar.gz", "shop-2.1.0.tar.gz", "shop-latest.tar.gz", "shop-v3.0.0.tar.gz", "other-9.0.0.tar.gz"} {
		if err := os.WriteFile(filepath.Join(dir, "dist", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return inv
}

func TestCompletionOffersValues(t *testing.T) {
	inv := completionFleet(t)
	const noFilesKeepOrder = ":36" // ShellCompDirectiveNoFileComp | ShellCompDirectiveKeepOrder
	cases := []struct {
		name string
		args []string
		want []string
		dir  string
	}{
		{"plan --to", []string{"plan", "-f", inv, "--to", ""}, []string{"2.1.0", "2.0.0", "1.4.0", "1.3.2"}, noFilesKeepOrder},
		{"plan --to, typed 1.", []string{"plan", "-f", inv, "--to", "1."}, []string{"1.4.0", "1.3.2"}, noFilesKeepOrder},
		{"plan --upfrom", []string{"plan", "-f", inv, "--upfrom", ""}, []string{"2.1.0", "2.0.0", "1.4.0", "1.3.2"}, noFilesKeepOrder},
		{"apply --to", []string{"apply", "--fleet", inv, "--to", "2"}, []string{"2.1.0", "2.0.0"}, noFilesKeepOrder},
		{"downgrade --to: declared paths only", []string{"downgrade", "-f", inv, "--to", ""}, []string{"1.3.2"}, noFilesKeepOrder},
		{"plan --format", []string{"plan", "--format", ""}, []string{"text", "markdown", "json"}, noFilesKeepOrder},
		{"repair hosts", []string{"repair", "-f", inv, "web1", "web"}, []string{"web2", "web3", "web4", "web5"}, noFilesKeepOrder},
		{"history --host", []string{"history", "-f", inv, "--host", "web"}, []string{"web1", "web2", "web3", "web4", "web5"}, noFilesKeepOrder},
		{"demo --balancer", []string{"demo", "--balancer", ""}, []string{"auto", "haproxy", "builtin"}, noFilesKeepOrder},
		{"no inventory: nothing", []string{"plan", "-f", filepath.Join(t.TempDir(), "none.yaml"), "--to", ""}, nil, noFilesKeepOrder},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vals, dir := complete(t, c.args...)
			if strings.Join(vals, " ") != strings.Join(c.want, " ") || dir != c.dir {
				t.Errorf("offered %q %s; want %q %s", vals, dir, c.want, c.dir)
			}
		})
	}
	// RELCTL_FLEET is the inventory a completion reads without -f, as the
	// command would.
	t.Setenv("RELCTL_FLEET", inv)
	if vals, _ := complete(t, "downgrade", "--to", ""); strings.Join(vals, " ") != "1.3.2" {
		t.Errorf("with RELCTL_FLEET: %q", vals)
	}
	// Descriptions say where a version comes from.
	_, out, _ := run(t, "__complete", "plan", "-f", inv, "--to", "1.4")
	if !strings.Contains(out, "1.4.0\tartifact present; in the releases table, upgrade_from >=1.0.0") {
		t.Errorf("description: %q", out)
	}
}
