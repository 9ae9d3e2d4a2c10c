package demoapp

import (
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary act as bin/demoapp: artifacts built by these tests
// embed the test binary itself, which runs Main when its first argument is a
// subcommand rather than a -test flag.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	// Children (the daemonized servers) must not linger in the race detector's
	// default one-second exit sleep: stop timings would be off.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(m.Run())
}
