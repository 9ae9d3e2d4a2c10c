package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/relctl/relctl/internal/version"
)

// versionFlags are the flags that hold a release version, on any command.
var versionFlags = []string{"to", "upfrom"}

// checkFlagValues runs before every command: a flag value that can never be
// right is a usage error (exit 2) naming the flag, before the inventory is
// read or any host is asked anything.
func checkFlagValues(cmd *cobra.Command, _ []string) error {
	if cmd.Flags().Changed("plain") && cmd.Flags().Changed("json") {
		return withCode(ExitUsage, fmt.Errorf("--plain and --json exclude each other: choose one"))
	}
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		for _, name := range versionFlags {
			if f.Name == name && f.Value.Type() == "string" {
				if verr := version.Valid(f.Value.String()); verr != nil {
					err = withCode(ExitUsage, fmt.Errorf("--%s: %w", name, verr))
				}
			}
		}
		if f.Value.Type() == "duration" && strings.HasPrefix(f.Value.String(), "-") {
			err = withCode(ExitUsage, fmt.Errorf("--%s %s: a duration is not negative", f.Name, f.Value.String()))
		}
		if f.Name == "reason" && strings.TrimSpace(f.Value.String()) == "" {
			err = withCode(ExitUsage, fmt.Errorf("--reason is empty: say why, for the audit record"))
		}
	})
	return err
}
