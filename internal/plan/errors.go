package plan

import "errors"

var (
	// ErrNoPath means the releases table offers no chain of upgrades from the
	// fleet's version to the target.
	ErrNoPath = errors.New("no upgrade path")
	// ErrMixedFleet means hosts run different versions that are not the
	// target, so there is no single version to upgrade from.
	ErrMixedFleet = errors.New("mixed fleet")
	// ErrUpfromMismatch means --upfrom names a version the fleet does not run.
	ErrUpfromMismatch = errors.New("fleet does not run the --upfrom version")
	// ErrUnreachable means a host could not be observed; a plan needs all.
	ErrUnreachable = errors.New("host unreachable")
	// ErrPastPointOfNoReturn means a post-migrate step has started, so a
	// rollback would run old code on a contracted schema.
	ErrPastPointOfNoReturn = errors.New("past the point of no return")
	// ErrDowngradeRefused means the target is not on a declared downgrade path.
	ErrDowngradeRefused = errors.New("downgrade refused")
	// ErrIsDowngrade means an upgrade was asked for a lower version.
	ErrIsDowngrade = errors.New("target is older than the running version")
)

// ErrStalePlan means the fleet no longer runs what a plan was built from
// (or, for a resumed run, what its steps can start from): starting it would
// act on a fleet the plan did not see. CheckBasis returns it.
var ErrStalePlan = errors.New("plan is stale")
