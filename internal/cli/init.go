package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	relctl "github.com/relctl/relctl"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/shell"
)

func newInitCmd(ios *IO, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented starter inventory (never over an existing file)",
		Long: `init writes a starter inventory to FILE (default: the inventory the other
commands read: -f, $RELCTL_FLEET, else ./fleet.yaml). It is relctl's
fleet.example.yaml: a complete inventory with every key explained beside it,
for an example fleet to replace with yours. init never overwrites a file:
if FILE exists it changes nothing and exits 2.`,
		Example: `  relctl init                              # ./fleet.yaml
  relctl init staging.yaml
  relctl -f prod.yaml init`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.files()[0]
			if len(args) == 1 {
				path = args[0]
			}
			return writeStarter(ios, path)
		},
	}
}

// starterInventory is what init writes to path: fleet.example.yaml under a
// header of its own.
func starterInventory(path string, now time.Time) string {
	body := relctl.FleetExample
	// Drop the example's own header (its first comment block).
	if i := strings.Index(body, "\n\n"); i >= 0 && strings.HasPrefix(body, "#") {
		body = body[i+2:]
	}
	f := fileFlag(path)
	return fmt.Sprintf(`# %s — a relctl inventory, written by relctl init on %s
# from relctl's fleet.example.yaml. Every key is explained beside it; the
# values describe an example fleet: replace them with yours, and delete what
# you do not need (most keys have defaults, named in the comments).
#
# Then:
#   relctl validate%[3]s                      # offline: every problem at once, with file:line and key
#   relctl plan%[3]s --to VERSION             # the exact plan apply would run (reads the hosts over SSH)
#   relctl plan%[3]s --upfrom 1.3.2 --to 2.0.0   # the same offline, from a version you name
#
# Unknown keys are errors (a typo never silently changes a rollout), and every
# error names this file, the line and the key.

%s`, path, now.Format("2006-01-02"), f, body)
}

// fileFlag is " -f PATH" when the other commands would not read path by
// default.
func fileFlag(path string) string {
	def := os.Getenv("RELCTL_FLEET")
	if def == "" {
		def = "fleet.yaml"
	}
	if path == def {
		return ""
	}
	return " -f " + shell.Quote(path)
}

func writeStarter(ios *IO, path string) error {
	content := starterInventory(path, timeNow())
	// What init writes must load: a broken example fails here, not in the
	// operator's first validate.
	if _, err := fleet.Parse(path, []byte(content)); err != nil {
		return fmt.Errorf("init: the starter inventory does not load (a relctl bug): %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	switch {
	case errors.Is(err, fs.ErrExist):
		return withCode(ExitUsage, fmt.Errorf("%s already exists: relctl init never overwrites an inventory (edit it and run relctl validate%s, or name another file: relctl init FILE)", path, fileFlag(path)))
	case errors.Is(err, fs.ErrNotExist):
		return withCode(ExitUsage, fmt.Errorf("init: %w (create the directory first)", err))
	case err != nil:
		return fmt.Errorf("init: %w", err)
	}
	_, werr := f.WriteString(content)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return fmt.Errorf("init: write %s: %w", path, werr)
	}
	fl := fileFlag(path)
	fmt.Fprintf(ios.Out, `wrote %s: a starter inventory, every key explained beside it.
Next:
  1. edit %s: app, path, ssh, artifact, commands, balancer, releases and hosts
     describe an example fleet; make them yours
  2. relctl validate%s                  # offline: every problem at once, with file:line and key
  3. relctl plan%s --to VERSION         # the exact plan apply would run, changing nothing
`, path, path, fl, fl)
	return nil
}
