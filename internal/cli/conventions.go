package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// conventions gives the command tree what users of gh, kubectl and
// terraform expect of a CLI: suggestions for a mistyped command, an example
// in every command's help, and completion that offers values. It runs once
// the tree is built, so each command's own file keeps only its flags.
func conventions(root *cobra.Command, g *globals) {
	suggestCommands(root)
	addExamples(root)
	addCompletions(root, g)
}

// suggestCommands makes every command that has subcommands answer an
// unknown one with cobra's suggestions ("Did you mean this?"). cobra does
// that only for a command without an Args check, and relctl's root has one
// (it takes no arguments: without a subcommand it opens the TUI).
func suggestCommands(c *cobra.Command) {
	if c.HasSubCommands() {
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2
		}
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return unknownCommand(cmd, args[0])
		}
	}
	for _, sub := range c.Commands() {
		suggestCommands(sub)
	}
}

// unknownCommand is cobra's own wording for an unknown command, with its
// suggestions (subcommands within SuggestionsMinimumDistance edits, or with
// the typed name as a prefix).
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
	}
	return fmt.Errorf("%s", msg)
}
