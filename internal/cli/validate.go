package cli

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/version"
)

// ValidateSchema is the "schema" of validate --json (docs/json.md).
const ValidateSchema = 1

// Problem is one inventory problem as validate --json writes it.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"` // 0: the problem has no line (the file cannot be read)
	Key     string `json:"key"`  // "" for the file as a whole
	Message string `json:"message"`
}

// ArtifactCheck is whether a declared release's artifact is present.
type ArtifactCheck struct {
	Version string `json:"version"`
	Path    string `json:"path"`
	Present bool   `json:"present"`
}

// validateReport is validate --json's document.
type validateReport struct {
	Schema    int             `json:"schema"`
	File      string          `json:"file"`
	Valid     bool            `json:"valid"`
	Problems  []Problem       `json:"problems"`
	App       string          `json:"app,omitempty"`
	Hosts     int             `json:"hosts,omitempty"`
	Balancer  string          `json:"balancer,omitempty"`
	Releases  []string        `json:"releases,omitempty"`
	Artifacts []ArtifactCheck `json:"artifacts,omitempty"`
	Notes     []string        `json:"notes,omitempty"`
}

func newValidateCmd(ios *IO, g *globals) *cobra.Command {
	var of outputFlags
	cmd := &cobra.Command{
		Use:   "validate [-f FILE | FILE]",
		Short: "Check the inventory offline: every problem at once, with file:line and key",
		Long: `validate loads FILE, else the inventory the other commands read (-f,
$RELCTL_FLEET, else ./fleet.yaml), and checks it the way they do, without connecting to any
host: unknown or misspelt keys, wrong types, missing required keys, bad
versions, constraints, durations, addresses and templates. Every problem is
reported at once, each naming file:line and the key, and validate exits 2.
A valid inventory exits 0 with one line: the app, its hosts, the balancer
and the releases declared. The artifact of each declared release is looked
for where artifact.source says; a missing one is noted (apply needs the
artifact of the version it deploys) but is not a problem.

--json writes one document: {"schema": 1, "file", "valid", "problems":
[{"file", "line", "key", "message"}], and when valid "app", "hosts",
"balancer", "releases", "artifacts": [{"version", "path", "present"}],
"notes": [the become commands that need /bin/sh under sudo, and why]}.`,
		Example: `  relctl validate
  relctl validate -f staging.yaml
  relctl validate staging.yaml             # the same
  relctl validate --json > problems.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files := g.files()
			if len(args) == 1 {
				files = args
			}
			return runValidate(ios, files, g.env, of.json)
		},
	}
	addOutputFlags(cmd, &of, "the problems, or the summary line, as text (the default)", `one JSON document, "schema": 1 (docs/json.md)`)
	return cmd
}

func runValidate(ios *IO, files []string, env string, asJSON bool) error {
	path := strings.Join(files, ", ")
	rep := validateReport{Schema: ValidateSchema, File: path, Problems: []Problem{}}
	inv, err := fleet.LoadFiles(files, env)
	var each []string
	if env == "" && errors.Is(err, fleet.ErrEnvironmentRequired) {
		// The inventory is deployed only to a named environment, and
		// validate checks the file, not one deployment: every one in turn.
		each = fleet.EnvironmentNames(files)
		inv, err = loadEachEnvironment(files, each)
	}
	if err != nil {
		var es fleet.Errors
		var e *fleet.Error
		var lines []string
		switch {
		case errors.As(err, &es):
		case errors.As(err, &e):
			es = fleet.Errors{e}
		default:
			msg := err.Error() + " (use -f to name the inventory, or set RELCTL_FLEET; relctl init writes a starter)"
			rep.Problems = append(rep.Problems, Problem{File: path, Message: msg})
			lines = append(lines, msg)
		}
		for _, e := range es {
			rep.Problems = append(rep.Problems, Problem{File: e.File, Line: e.Line, Key: e.KeyPath(), Message: e.Msg})
			lines = append(lines, e.Error())
		}
		if asJSON {
			if err := writeDoc(ios.Out, rep); err != nil {
				return err
			}
		} else {
			for _, l := range lines {
				fmt.Fprintln(ios.Err, l)
			}
		}
		return withCode(ExitUsage, fmt.Errorf("%s: %s", path, plural(len(rep.Problems), "problem")))
	}
	rep.Valid = true
	rep.App = inv.App
	rep.Hosts = len(inv.Hosts)
	rep.Balancer = inv.Balancer.Kind
	for v := range inv.Releases {
		rep.Releases = append(rep.Releases, v)
	}
	sort.Slice(rep.Releases, func(i, j int) bool { return version.Less(rep.Releases[i], rep.Releases[j]) })
	for _, v := range rep.Releases {
		p, err := ops.ArtifactPath(inv, v)
		if err != nil {
			continue
		}
		_, serr := os.Stat(p)
		rep.Artifacts = append(rep.Artifacts, ArtifactCheck{Version: v, Path: p, Present: serr == nil})
	}
	// Become commands that need /bin/sh under sudo (rendered for the
	// newest release, or a placeholder version).
	to := "0.0.0"
	if n := len(rep.Releases); n > 0 {
		to = rep.Releases[n-1]
	}
	rep.Notes = inv.BecomeShellNotes("", to)
	if asJSON {
		return writeDoc(ios.Out, rep)
	}
	rel := "no releases table"
	if n := len(rep.Releases); n > 0 {
		rel = fmt.Sprintf("%s declared (%s)", plural(n, "release"), strings.Join(rep.Releases, ", "))
	}
	if len(each) > 0 {
		path += " (each environment: " + strings.Join(each, ", ") + ")"
	}
	fmt.Fprintf(ios.Out, "%s: valid: app %s, %s, balancer %s, %s\n", path, rep.App, plural(rep.Hosts, "host"), rep.Balancer, rel)
	for _, a := range rep.Artifacts {
		if !a.Present {
			fmt.Fprintf(ios.Err, "note: no artifact for %s at %s (apply --to %s needs it)\n", a.Version, a.Path, a.Version)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(ios.Err, "note: "+n)
	}
	return nil
}

// loadEachEnvironment loads the inventory once per environment and returns
// the last one loaded, or every distinct problem found in any of them.
func loadEachEnvironment(files, names []string) (*fleet.Inventory, error) {
	var inv *fleet.Inventory
	var all fleet.Errors
	seen := map[string]bool{}
	for _, name := range names {
		i, err := fleet.LoadFiles(files, name)
		if err == nil {
			inv = i
			continue
		}
		var es fleet.Errors
		var e *fleet.Error
		switch {
		case errors.As(err, &es):
		case errors.As(err, &e):
			es = fleet.Errors{e}
		default:
			return nil, err
		}
		for _, e := range es {
			if !seen[e.Error()] {
				seen[e.Error()] = true
				all = append(all, e)
			}
		}
	}
	if len(all) > 0 {
		return nil, all
	}
	if inv == nil {
		return nil, errors.New("no environment to validate")
	}
	return inv, nil
}
