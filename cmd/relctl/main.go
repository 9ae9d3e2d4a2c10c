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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
