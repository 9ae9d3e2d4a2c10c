package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIConventions runs the relctl binary as a newcomer would: --version,
// a mistyped command, init, validate, and init again over the file. Exit
// codes are the process's.
func TestCLIConventions(t *testing.T) {
	dir := t.TempDir()
	runBin := func(args ...string) (int, string, string) {
		cmd := exec.Command(relctlBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "RELCTL_FLEET=")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return ee.ExitCode(), out.String(), errb.String()
		case err != nil:
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	}
	_, v1, _ := runBin("version")
	if code, v2, _ := runBin("--version"); code != 0 || v1 != v2 || !strings.HasPrefix(v2, "relctl ") {
		t.Errorf("--version: exit %d %q; version: %q", code, v2, v1)
	}
	if code, _, errs := runBin("aply"); code != 2 || !strings.Contains(errs, "Did you mean this?\n\tapply") {
		t.Errorf("aply: exit %d %q", code, errs)
	}
	if code, out, errs := runBin("init"); code != 0 || !strings.Contains(out, "relctl validate") {
		t.Fatalf("init: exit %d %s %s", code, out, errs)
	}
	if code, out, errs := runBin("validate"); code != 0 || !strings.HasPrefix(out, "fleet.yaml: valid: app shop, 5 hosts") {
		t.Errorf("validate what init wrote: exit %d %q %q", code, out, errs)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "fleet.yaml"))
	if code, _, errs := runBin("init"); code != 2 || !strings.Contains(errs, "fleet.yaml already exists") {
		t.Errorf("init again: exit %d %q", code, errs)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "fleet.yaml")); !bytes.Equal(before, after) {
		t.Error("init again changed the file")
	}
	broken := bytes.Replace(before, []byte("address: 10.0.0.14"), []byte("adress: 10.0.0.14"), 1)
	broken = bytes.Replace(broken, []byte("timeout: 60s "), []byte("timeout: 60  "), 1)
	os.WriteFile(filepath.Join(dir, "fleet.yaml"), broken, 0o644)
	if code, _, errs := runBin("validate"); code != 2 || !strings.Contains(errs, `(web4): unknown key "adress" (did you mean "address"?)`) ||
		!strings.Contains(errs, "health.timeout:") || !strings.Contains(errs, "2 problems") {
		t.Errorf("validate a broken file: exit %d %q", code, errs)
	}
}
