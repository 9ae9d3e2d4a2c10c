package cli

import (
	"context"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/sandbox"
)

// runDemoTUI opens the TUI on the demo fleet. Until the TUI is wired, the
// demo runs in plain mode in a terminal too.
func runDemoTUI(ctx context.Context, ios *IO, inv *fleet.Inventory, d *sandbox.Demo) error {
	return runDemoPlain(ctx, ios, inv, d, &demoOptions{to: "2.0.0"})
}
