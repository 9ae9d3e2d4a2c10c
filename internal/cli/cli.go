// Package cli wires relctl's commands: flags, the choice of output mode, and
// which packages do the work. It holds no business logic of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/rollout"
)

// Version is set at build time (-ldflags "-X github.com/relctl/relctl/internal/cli.Version=1.2.3").
var Version = "dev"

// IO is where a command reads and writes. Data goes to Out, progress and
// errors to Err.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Run runs relctl with args and returns its exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ios := &IO{In: stdin, Out: stdout, Err: stderr}
	root := newRoot(ios)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := codeOf(err)
	var ee *exitError
	var oe *ops.Error
	if !errors.As(err, &ee) && !errors.As(err, &oe) && !errors.Is(err, rollout.ErrLocked) {
		// cobra's own errors: unknown command, bad flag.
		code = ExitUsage
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintf(stderr, "relctl: %v\n", err)
		if code == ExitUsage && cmd != nil && !errors.Is(err, fleet.ErrInvalid) && isFlagError(err) {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

// errSilent marks an error whose story was already told on the output.
var errSilent = errors.New("")

func isFlagError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "flag") || strings.Contains(s, "unknown command") || strings.Contains(s, "argument")
}

// globals are the flags every command has.
type globals struct {
	fleet  string   // the first of fleets: the inventory file messages name
	fleets []string // -f, in merge order (fleet.LoadFiles)
	env    string   // --env, or $RELCTL_ENV
}

func newRoot(ios *IO) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "relctl",
		Short: "Release orchestrator: plan, roll out and roll back a fleet upgrade over SSH",
		Long: `relctl reads a fleet inventory, sees what every host really runs, plans an
upgrade from that version to another (pre-deploy migrations, host-by-host
deploys behind the load balancer, post-deploy migrations) and runs it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
	}
	root.SetVersionTemplate("relctl {{.Version}}\n")
	root.Flags().BoolP("version", "v", false, "print relctl's version (as relctl version does)")
	def := os.Getenv("RELCTL_FLEET")
	if def == "" {
		def = "fleet.yaml"
	}
	g.fleet = def
	root.PersistentFlags().StringArrayVarP(&g.fleets, "fleet", "f", []string{def},
		"fleet inventory (or $RELCTL_FLEET); repeat to merge several files in order, later wins key by key")
	root.PersistentFlags().StringVarP(&g.env, "env", "e", os.Getenv("RELCTL_ENV"),
		"environment of the inventory to use (or $RELCTL_ENV): its environments.<name> overlay is merged over the files")
	var cf connFlags
	root.Flags().BoolVar(&cf.acceptNew, "accept-new-host-keys", false, "accept and record unknown host keys")
	root.Args = cobra.NoArgs
	root.PersistentPreRunE = checkFlagValues
	root.RunE = rootRun(ios, g, &cf)
	root.AddCommand(
		newPlanCmd(ios, g),
		newApplyCmd(ios, g),
		newStatusCmd(ios, g),
		newRollbackCmd(ios, g),
		newResumeCmd(ios, g),
		newDowngradeCmd(ios, g),
		newRepairCmd(ios, g),
		newLockCmd(ios, g),
		newHistoryCmd(ios, g),
		newVersionCmd(ios),
		newDemoCmd(ios),
		newDemoappCmd(ios),
		newInitCmd(ios, g),
		newValidateCmd(ios, g),
	)
	conventions(root, g)
	return root
}

func newVersionCmd(ios *IO) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print relctl's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(ios.Out, "relctl %s\n", versionString())
			return nil
		},
	}
}

// versionString is relctl's version: Version as set by -ldflags, else the
// module version go install recorded, else "dev". `relctl version` and
// `relctl --version` print it the same way.
func versionString() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return v
}

// files is -f in merge order; g.fleet becomes the first of them (the flag
// fills g.fleets only, so g.fleet is kept in step here).
func (g *globals) files() []string {
	if len(g.fleets) > 0 {
		g.fleet = g.fleets[0]
	}
	return g.fleets
}

// loadFleet loads the inventory, turning its errors into usage errors.
func loadFleet(g *globals) (*fleet.Inventory, error) {
	inv, err := fleet.LoadFiles(g.files(), g.env)
	if err != nil {
		if errors.Is(err, fleet.ErrInvalid) {
			return nil, withCode(ExitUsage, err)
		}
		return nil, withCode(ExitUsage, fmt.Errorf("%w (use -f to name the inventory, or set RELCTL_FLEET)", err))
	}
	return inv, nil
}
