package demoapp

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// EnvBin names the environment variable a wrapper bin/demoapp script sets to its
// own path ($0), so that a wrapped binary still finds its release's app.conf.
const EnvBin = "DEMOAPP_BIN"

func cmdMigrate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("migrate", stderr)
	logPath := fs.String("log", "", "file that records every migration run (appended)")
	version := fs.String("version", "", "version being migrated to")
	phase := fs.String("phase", "", "pre or post")
	fail := fs.Bool("fail", false, "record the run, then fail")
	relDir := fs.String("release-dir", "", "release whose app.conf may carry faults (default: the binary's release)")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if !required(fs, stderr, "log", *logPath, "version", *version, "phase", *phase) {
		return ExitUsage
	}
	if *phase != "pre" && *phase != "post" {
		fmt.Fprintf(stderr, "demoapp migrate: --phase must be pre or post, got %q\n", *phase)
		return ExitUsage
	}
	dir := *relDir
	if dir == "" {
		dir = binaryRelease()
	}
	var conf appConf
	if dir != "" {
		c, err := readConf(filepath.Join(dir, "app.conf"))
		if err != nil {
			fmt.Fprintf(stderr, "demoapp migrate: %v\n", err)
			return ExitFailed
		}
		conf = c
	}
	failConf, err := conf.bool(ConfFailMigrate)
	if err != nil {
		fmt.Fprintf(stderr, "demoapp migrate: %v\n", err)
		return ExitFailed
	}
	delay, err := conf.duration(ConfMigrateDelay)
	if err != nil {
		fmt.Fprintf(stderr, "demoapp migrate: %v\n", err)
		return ExitFailed
	}
	time.Sleep(delay)
	failing := *fail || failConf
	host := os.Getenv("RELCTL_HOST")
	if host == "" {
		host, _ = os.Hostname()
	}
	line := fmt.Sprintf("%s %s %s %s", time.Now().UTC().Format(time.RFC3339Nano), *phase, *version, host)
	if failing {
		line += " failed"
	}
	if err := appendLocked(*logPath, line+"\n"); err != nil {
		fmt.Fprintf(stderr, "demoapp migrate: %v\n", err)
		return ExitFailed
	}
	if failing {
		fmt.Fprintf(stderr, "migration %s %s failed (fault injected)\n", *phase, *version)
		return ExitFailed
	}
	fmt.Fprintf(stdout, "migrated %s %s on %s\n", *phase, *version, host)
	return ExitOK
}

// binaryRelease guesses the release directory of the running binary:
// <release>/bin/demoapp → <release>.
func binaryRelease() string {
	bin := os.Getenv(EnvBin)
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return ""
		}
		bin = exe
	}
	return filepath.Dir(filepath.Dir(bin))
}

// appendLocked appends s to path under an exclusive flock, so concurrent writers on
// one machine never interleave.
func appendLocked(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return fmt.Errorf("open migrations log: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock migrations log: %w", err)
	}
	if _, err := f.WriteString(s); err != nil {
		return fmt.Errorf("write migrations log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync migrations log: %w", err)
	}
	return f.Close()
}
