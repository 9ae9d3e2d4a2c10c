package rollout

// MigrationDir is where the migration wrapper of run runID's migration
// step stepID records it on the host under base: its claim, the pid (and
// start time) of the shell that runs it, its exit status once it ended,
// and its output. ops reads it to tell an operator what a migration
// whose relctl died is doing.
func MigrationDir(base, runID, stepID string) string { return migrationDir(base, runID, stepID) }
