// Command relctl is a release orchestrator for a fleet of application
// servers behind a load balancer. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/relctl/relctl/internal/cli"
)

func main() {
	// Ctrl-C, a kill and a closed terminal all stop relctl the same safe
	// way: hosts in flight finish or are reverted, the journal and the
	// lock are settled, the demo's processes are stopped.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
