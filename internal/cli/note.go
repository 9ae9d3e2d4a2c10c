package cli

import "github.com/spf13/cobra"

// addNoteFlags adds --reason (unless the command has its own) and
// --ticket: what the operator says about the run, recorded in its plan,
// the lock, the journal's run_started, every host's audit record and the
// hooks' input (RELCTL_REASON, RELCTL_TICKET). They are data, never shell
// text; ops.CheckNote bounds them.
func addNoteFlags(cmd *cobra.Command, cf *connFlags, reason bool) {
	f := cmd.Flags()
	if reason {
		f.StringVar(&cf.reason, "reason", "", "why, for the lock, the journal, the audit history and the hooks")
	}
	f.StringVar(&cf.ticket, "ticket", "", "the change ticket (e.g. CHG-1234), for the lock, the journal, the audit history and the hooks")
}
