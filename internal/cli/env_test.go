package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnvFlag: --env / -e / $RELCTL_ENV pick an environment of the
// inventory; the plan's header and JSON name it; an unknown one is a usage
// error (exit 2) that lists the known ones.
func TestEnvFlag(t *testing.T) {
	code, out, errs := run(t, "plan", "-f", example, "--env", "staging", "--upfrom", "1.3.2", "--to", "1.4.0")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "Plan — shop [staging]: upgrade 1.3.2 → 1.4.0") || !strings.Contains(out, "stg1") || strings.Contains(out, "web1") {
		t.Errorf("staging plan:\n%s", out)
	}
	code, out, _ = run(t, "plan", "-f", example, "-e", "staging", "--upfrom", "1.3.2", "--to", "1.4.0", "--format", "json")
	var p struct{ Environment string }
	if code != ExitOK || json.Unmarshal([]byte(out), &p) != nil || p.Environment != "staging" {
		t.Errorf("json plan: exit %d environment %q", code, p.Environment)
	}

	code, _, errs = run(t, "plan", "-f", example, "-e", "prod", "--upfrom", "1.3.2", "--to", "1.4.0")
	if code != ExitUsage || !strings.Contains(errs, `unknown environment "prod": the inventory defines production, staging`) || !strings.Contains(errs, "fleet.example.yaml:") {
		t.Errorf("unknown environment: exit %d: %s", code, errs)
	}

	t.Setenv("RELCTL_ENV", "nope")
	code, _, errs = run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0")
	if code != ExitUsage || !strings.Contains(errs, `unknown environment "nope"`) {
		t.Errorf("$RELCTL_ENV: exit %d: %s", code, errs)
	}
}

// TestSeveralFleetFiles: -f given twice merges the files in order, and an
// error in the second names that file and line.
func TestSeveralFleetFiles(t *testing.T) {
	dir := t.TempDir()
	over := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(over, []byte("rollout:\n  batches: [2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "plan", "-f", example, "-f", over, "--upfrom", "1.3.2", "--to", "1.4.0")
	if code != ExitOK || !strings.Contains(out, "batches 2 (the last size repeats)") {
		t.Errorf("exit %d: %s\n%s", code, errs, out)
	}
	if err := os.WriteFile(over, []byte("rollout:\n  batches: [2]\n  on_failure: retry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = run(t, "plan", "-f", example, "-f", over, "--upfrom", "1.3.2", "--to", "1.4.0")
	if code != ExitUsage || !strings.Contains(errs, over+":3: rollout.on_failure: on_failure must be") {
		t.Errorf("exit %d: %s", code, errs)
	}
}

// TestRequireEnvironmentFlag: with require_environment: true (a later -f
// layer may set it), plan and apply without -e exit 2 naming the key and
// touch nothing; validate checks every environment in turn.
func TestRequireEnvironmentFlag(t *testing.T) {
	dir := t.TempDir()
	over := filepath.Join(dir, "strict.yaml")
	if err := os.WriteFile(over, []byte("require_environment: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"plan", "-f", example, "-f", over, "--upfrom", "1.3.2", "--to", "1.4.0"},
		{"apply", "-f", example, "-f", over, "--to", "1.4.0", "--yes"},
		{"status", "-f", example, "-f", over},
	} {
		code, out, errs := run(t, args...)
		if code != ExitUsage || !strings.Contains(errs, over+":1: require_environment: this inventory deploys only to a named environment") || !strings.Contains(errs, "production, staging") || out != "" {
			t.Errorf("%s without -e: exit %d, stdout %q, stderr %s", args[0], code, out, errs)
		}
	}
	code, out, errs := run(t, "plan", "-f", example, "-f", over, "-e", "staging", "--upfrom", "1.3.2", "--to", "1.4.0")
	if code != ExitOK || !strings.Contains(out, "[staging]") {
		t.Errorf("with -e staging: exit %d: %s", code, errs)
	}
	code, out, errs = run(t, "validate", "-f", example, "-f", over)
	if code != ExitOK || !strings.Contains(out, "(each environment: production, staging): valid") {
		t.Errorf("validate: exit %d: %s%s", code, out, errs)
	}
}
