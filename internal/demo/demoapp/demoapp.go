// Package demoapp is "shop", a small HTTP service that behaves like a well-behaved
// production application, plus the host-side tooling relctl's tests and demo deploy
// with it: a daemonizing start, a draining stop, a health check, a migration
// recorder and an artifact builder.
//
// The same binary serves every version: the version a host runs comes from the
// release's VERSION file, and faults a release should carry (failing health, slow
// start, crashing, failing migration) come from the release's app.conf.
//
// Subcommands (see Main):
//
//	serve   --listen ADDR --version V [--release-dir DIR] [--start-delay D] [--fail-health] [--fail-share F] [--crash-after D] [--drain-grace D]
//	start   --dir HOSTPATH --listen ADDR [--wait D]
//	stop    --dir HOSTPATH [--timeout D]
//	check   --url URL [--version V]
//	migrate --log FILE --version V --phase pre|post [--fail] [--release-dir DIR]
//	version --dir HOSTPATH
package demoapp

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes of Main.
const (
	ExitOK      = 0
	ExitFailed  = 1 // the command ran and failed (unhealthy, migration failed, ...)
	ExitUsage   = 2 // bad arguments
	ExitCrashed = 3 // serve stopped because of --crash-after / crash_after
)

// Main runs one demoapp subcommand and returns its exit code. It keeps no global
// state, so it can be called from tests and from relctl's hidden "demoapp" command.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	var run func([]string, io.Writer, io.Writer) int
	switch cmd {
	case "serve":
		run = cmdServe
	case "start":
		run = cmdStart
	case "stop":
		run = cmdStop
	case "check":
		run = cmdCheck
	case "migrate":
		run = cmdMigrate
	case "version":
		run = cmdVersion
	case "help", "-h", "--help":
		usage(stdout)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "demoapp: unknown command %q\n", cmd)
		usage(stderr)
		return ExitUsage
	}
	return run(rest, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: demoapp <command> [flags]
commands:
  serve   --listen ADDR --version V [--release-dir DIR] [--start-delay D] [--fail-health] [--fail-share F] [--crash-after D] [--drain-grace D]
  start   --dir HOSTPATH --listen ADDR [--wait D]
  stop    --dir HOSTPATH [--timeout D]
  check   --url URL [--version V]
  migrate --log FILE --version V --phase pre|post [--fail]
  version --dir HOSTPATH
`)
}

// newFlags returns a flag set that reports errors to stderr and never exits.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("demoapp "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and maps -h and errors to an exit code; ok is false when the
// caller must return code.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments: %s\n", fs.Name(), strings.Join(fs.Args(), " "))
		return ExitUsage, false
	}
	return 0, true
}

// required reports missing required string flags.
func required(fs *flag.FlagSet, stderr io.Writer, pairs ...string) bool {
	ok := true
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			fmt.Fprintf(stderr, "%s: --%s is required\n", fs.Name(), pairs[i])
			ok = false
		}
	}
	return ok
}
