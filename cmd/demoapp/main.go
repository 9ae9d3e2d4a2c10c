// Command demoapp is the small "shop" service that relctl's tests and demo deploy.
// See package github.com/relctl/relctl/internal/demo/demoapp for its subcommands.
package main

import (
	"os"

	"github.com/relctl/relctl/internal/demo/demoapp"
)

func main() {
	os.Exit(demoapp.Main(os.Args[1:], os.Stdout, os.Stderr))
}
