package cli

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/version"
)

// addCompletions makes shell completion offer values, not just flag names.
// Versions come from the inventory the command would read (-f, else
// $RELCTL_FLEET, else ./fleet.yaml), loaded quietly and offline: the
// releases table, its downgrade paths, and the artifacts present on this
// machine. A completion never connects to a host and never prints an error:
// with no inventory it offers nothing.
func addCompletions(root *cobra.Command, g *globals) {
	yaml := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
	}
	_ = root.RegisterFlagCompletionFunc("fleet", yaml)
	upgradeTo := func(_ *cobra.Command, _ []string, typed string) ([]string, cobra.ShellCompDirective) {
		return versionChoices(g, typed, false)
	}
	for _, name := range []string{"plan", "apply"} {
		cmd := sub(root, name)
		if cmd == nil {
			continue
		}
		_ = cmd.RegisterFlagCompletionFunc("to", upgradeTo)
		_ = cmd.RegisterFlagCompletionFunc("upfrom", upgradeTo)
	}
	if cmd := sub(root, "plan"); cmd != nil {
		_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(
			[]string{"text\tfor a terminal", "markdown\tfor a change ticket", "json\tfor apply --plan and programs"},
			cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveKeepOrder))
	}
	if cmd := sub(root, "apply"); cmd != nil {
		_ = cmd.RegisterFlagCompletionFunc("plan", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"json"}, cobra.ShellCompDirectiveFilterFileExt
		})
	}
	if cmd := sub(root, "downgrade"); cmd != nil {
		_ = cmd.RegisterFlagCompletionFunc("to", func(_ *cobra.Command, _ []string, typed string) ([]string, cobra.ShellCompDirective) {
			return versionChoices(g, typed, true)
		})
		_ = cmd.RegisterFlagCompletionFunc("reason", cobra.NoFileCompletions)
	}
	if cmd := sub(root, "repair"); cmd != nil {
		cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, typed string) ([]string, cobra.ShellCompDirective) {
			return hostChoices(g, args, typed)
		}
	}
	if cmd := sub(root, "history"); cmd != nil {
		_ = cmd.RegisterFlagCompletionFunc("host", func(_ *cobra.Command, _ []string, typed string) ([]string, cobra.ShellCompDirective) {
			return hostChoices(g, nil, typed)
		})
	}
	if cmd := sub(root, "demo"); cmd != nil {
		_ = cmd.RegisterFlagCompletionFunc("balancer", cobra.FixedCompletions(
			[]string{"auto\tHAProxy when installed, else built-in", "haproxy", "builtin"},
			cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveKeepOrder))
	}
	for _, name := range []string{"init", "validate"} {
		cmd := sub(root, name)
		if cmd == nil {
			continue
		}
		cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		}
	}
}

func sub(root *cobra.Command, name string) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// versionChoices are the versions to offer for a version flag, newest
// first, each with where it comes from. downgrade: only the targets of the
// releases table's downgrade_to paths; otherwise every version the table
// names and every version whose artifact is present.
func versionChoices(g *globals, typed string, downgrade bool) ([]string, cobra.ShellCompDirective) {
	const directive = cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	inv, err := fleet.LoadFiles(g.files(), g.env)
	if err != nil {
		return nil, directive
	}
	why := map[string][]string{}
	note := func(v, s string) {
		if version.Valid(v) == nil && strings.HasPrefix(v, typed) {
			why[v] = append(why[v], s)
		}
	}
	for v, r := range inv.Releases {
		for _, t := range r.DowngradeTo {
			note(t, "downgrade path from "+v)
		}
		if !downgrade {
			s := "in the releases table"
			if r.UpgradeFrom != "" {
				s += ", upgrade_from " + r.UpgradeFrom
			}
			note(v, s)
		}
	}
	if !downgrade {
		for _, v := range artifactVersions(inv) {
			note(v, "artifact present")
		}
	}
	vs := make([]string, 0, len(why))
	for v := range why {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return version.Less(vs[j], vs[i]) })
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v + "\t" + strings.Join(dedup(why[v]), "; ")
	}
	return out, directive
}

func dedup(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// artifactVersions are the release versions whose artifact is present where
// the inventory's artifact.source says, found by globbing the template with
// the version left open.
func artifactVersions(inv *fleet.Inventory) []string {
	const mark = "RELCTLVERSIONMARK"
	p, err := ops.ArtifactPath(inv, mark)
	if err != nil || strings.Count(p, mark) != 1 {
		return nil
	}
	prefix, suffix, _ := strings.Cut(p, mark)
	matches, _ := filepath.Glob(globQuote(prefix) + "*" + globQuote(suffix))
	var out []string
	for _, m := range matches {
		v := strings.TrimSuffix(strings.TrimPrefix(m, prefix), suffix)
		if version.Valid(v) != nil {
			continue
		}
		if q, err := ops.ArtifactPath(inv, v); err == nil && q == m {
			out = append(out, v)
		}
	}
	return out
}

// globQuote escapes filepath.Match's special characters.
func globQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// hostChoices are the inventory's host names not yet given, for commands
// that take hosts.
func hostChoices(g *globals, given []string, typed string) ([]string, cobra.ShellCompDirective) {
	inv, err := fleet.LoadFiles(g.files(), g.env)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	seen := map[string]bool{}
	for _, a := range given {
		seen[a] = true
	}
	var out []string
	for _, h := range inv.Hosts {
		if !seen[h.Name] && strings.HasPrefix(h.Name, typed) {
			out = append(out, fmt.Sprintf("%s\t%s", h.Name, h.Address))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}
