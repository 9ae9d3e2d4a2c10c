package fleetfile

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/shell"
)

// Host is one local host running the demo app.
type Host struct {
	Name    string // web1: also its server name in the balancer
	SSHAddr string // host:port of its SSH server
	AppAddr string // host:port its app listens on: the balancer's upstream
	Path    string // the inventory path (releases/, current, .relctl/)
}

// Fleet is what the inventory of a local demo-app fleet is made from.
type Fleet struct {
	User          string // SSH user
	IdentityFile  string // unencrypted client key authorised on every host
	KnownHosts    string // every host's key
	ArtifactDir   string // holds shop-<version>.tar.gz
	MigrationsLog string // where the app's migrate command records runs
	Hosts         []Host // the first is the canary and runs the migrations
}

// Base returns the inventory the demo and the test fleet share: app shop on
// every host, started, stopped and checked with the demo app's own
// subcommands, migrations recorded in MigrationsLog, the first host a
// canary, batches of 1, 2, then half the fleet, rolling back on failure.
// It has no balancer: the caller sets Balancer and anything else its fleet
// does differently before Marshal.
func Base(f Fleet) *fleet.Inventory {
	noSSHConfig := false
	pause := true
	migrate := func(phase string) string {
		return fmt.Sprintf("{{.Release}}/bin/demoapp migrate --log %s --version {{.Version}} --phase %s", shell.Quote(f.MigrationsLog), phase)
	}
	inv := &fleet.Inventory{
		App:          "shop",
		KeepReleases: fleet.DefaultKeepReleases,
		SSH: fleet.SSH{
			User:           f.User,
			IdentityFile:   f.IdentityFile,
			KnownHosts:     fleet.StringList{f.KnownHosts},
			UseSSHConfig:   &noSSHConfig,
			ConnectTimeout: 5 * time.Second,
			MaxParallel:    fleet.DefaultMaxParallel,
		},
		Artifact: fleet.Artifact{Source: filepath.Join(f.ArtifactDir, "shop-{{.Version}}.tar.gz")},
		Commands: fleet.Commands{
			Start:       "{{.Path}}/current/bin/demoapp start --dir {{.Path}} --listen {{.Vars.listen}}",
			Stop:        "{{.Path}}/current/bin/demoapp stop --dir {{.Path}}",
			Health:      "{{.Path}}/current/bin/demoapp check --url http://{{.Vars.listen}} --version {{.Version}}",
			Version:     "cat {{.Path}}/current/VERSION",
			Migrate:     migrate("pre"),
			PostMigrate: migrate("post"),
		},
		Health: fleet.Health{Timeout: 20 * time.Second, Interval: 200 * time.Millisecond, StableFor: 400 * time.Millisecond},
		Rollout: fleet.Rollout{
			Batches:          []fleet.BatchSize{{N: 1}, {N: 2}, {Percent: 50, IsPercent: true}},
			PauseAfterCanary: &pause,
			OnFailure:        fleet.OnFailureRollback,
		},
		Emergency: fleet.Emergency{Batches: []fleet.BatchSize{{Percent: 50, IsPercent: true}}, DrainTimeout: 2 * time.Second},
	}
	for i, h := range f.Hosts {
		fh := fleet.Host{Name: h.Name, Address: h.SSHAddr, Server: h.Name, Path: h.Path, Upstream: h.AppAddr,
			Vars: map[string]string{"listen": h.AppAddr}}
		if i == 0 {
			inv.Path = h.Path
			inv.Migrations.Host = h.Name
			fh.Labels = []string{"canary"}
		}
		inv.Hosts = append(inv.Hosts, fh)
	}
	return inv
}

// Notes are the comments Marshal writes into the file, for a reader. A key
// is named by its path of YAML keys, with * for any list index:
// "ssh.user", "hosts.*.address".
type Notes struct {
	Head   string            // lines before the first key
	Before map[string]string // lines before a key
	After  map[string]string // a comment at the end of a key's line
}

// Marshal renders inv as fleet.yaml text with notes. Keys whose values are
// empty or zero (nil, "", 0, 0s, empty lists and maps) are left out, so
// fleet.Load gives them its defaults: where an explicit 0 differs from the
// default (keep_releases, ssh.port, ssh.max_parallel, health.stable_for),
// write that key yourself. A note whose path names no key written is an
// error, so notes cannot silently drift from the keys.
func Marshal(inv *fleet.Inventory, n Notes) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(inv); err != nil {
		return nil, fmt.Errorf("fleetfile: %w", err)
	}
	prune(&doc)
	tidy(&doc, 0)
	used := map[string]bool{}
	annotate(&doc, "", n, used)
	for _, m := range []map[string]string{n.Before, n.After} {
		for path := range m {
			if !used[path] {
				return nil, fmt.Errorf("fleetfile: note on %q: no such key in the inventory", path)
			}
		}
	}
	doc.HeadComment = comment(n.Head)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("fleetfile: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("fleetfile: %w", err)
	}
	return b.Bytes(), nil
}

// prune drops the mapping entries whose values are empty or zero, deepest
// first, so a mapping left empty goes too.
func prune(n *yaml.Node) {
	for _, c := range n.Content {
		prune(c)
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !empty(n.Content[i+1]) {
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
	}
	n.Content = kept
}

func empty(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return len(n.Content) == 0
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return true
		case "!!str":
			return n.Value == "" || n.Value == "0s"
		case "!!int":
			return n.Value == "0"
		}
	}
	return false
}

// tidy writes short lists of scalars and small mappings of scalars below
// the top level in flow style: batches: [1, 2, 50%], vars: {listen: ...}.
func tidy(n *yaml.Node, depth int) {
	for _, c := range n.Content {
		tidy(c, depth+1)
	}
	if depth < 2 || !scalars(n) {
		return
	}
	if n.Kind == yaml.SequenceNode || (n.Kind == yaml.MappingNode && len(n.Content) <= 4) {
		n.Style = yaml.FlowStyle
	}
}

// scalars reports whether n is a list or mapping of scalars (or of lists
// of scalars).
func scalars(n *yaml.Node) bool {
	if n.Kind != yaml.SequenceNode && n.Kind != yaml.MappingNode {
		return false
	}
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode && !(c.Kind == yaml.SequenceNode && scalars(c)) {
			return false
		}
	}
	return true
}

// annotate attaches the notes to the keys they name and records which
// paths it found.
func annotate(n *yaml.Node, path string, notes Notes, used map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			annotate(c, path, notes, used)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			annotate(c, join(path, "*"), notes, used)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := join(path, key.Value)
			if s, ok := notes.Before[p]; ok {
				key.HeadComment, used[p] = comment(s), true
			}
			if s, ok := notes.After[p]; ok {
				if val.Kind == yaml.ScalarNode || val.Style == yaml.FlowStyle {
					val.LineComment = comment(s)
				} else {
					key.LineComment = comment(s)
				}
				used[p] = true
			}
			annotate(val, p, notes, used)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// comment turns lines of text into YAML comment lines.
func comment(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight("# "+l, " ")
	}
	return strings.Join(lines, "\n")
}
