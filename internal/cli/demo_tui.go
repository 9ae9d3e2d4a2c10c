package cli

import (
	"context"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/sandbox"
	"github.com/relctl/relctl/internal/tui"
)

// runDemoTUI opens the TUI on the demo fleet, with its live traffic panel.
func runDemoTUI(ctx context.Context, ios *IO, inv *fleet.Inventory, d *sandbox.Demo) error {
	return runTUI(ctx, ios, inv, connFlags{}, tui.Options{}, d)
}
