// Command relctl is a release orchestrator for a fleet of application
// servers behind a load balancer. See README.md.
package main

import (
	"os"

	"github.com/relctl/relctl/internal/cli"
)

func main() {
	// cli.Main owns the interrupt discipline: the first Ctrl-C, SIGTERM or
	// SIGHUP finishes or reverts the host in flight and starts nothing new;
	// the second forces a bounded end with every host not in service named.
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
