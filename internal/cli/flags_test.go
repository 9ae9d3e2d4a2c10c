package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// Every bad flag or flag value exits 2 before the inventory is read or a
// host is asked anything: the inventory named here does not exist, so any
// of these reaching it would say so instead.
func TestBadFlagValuesExit2(t *testing.T) {
	nofleet := "/nonexistent/fleet.yaml"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"apply", "-f", nofleet, "--to", "1.4.0", "--bogus"}, "unknown flag: --bogus"},
		{"unknown command", []string{"aply"}, "unknown command"},
		{"plan --to banana", []string{"plan", "-f", nofleet, "--to", "banana"}, `--to: "banana" is not a release version`},
		{"plan --to injection", []string{"plan", "-f", nofleet, "--to", "1.4.0;rm -rf /"}, "--to:"},
		{"plan --upfrom v1", []string{"plan", "-f", nofleet, "--to", "1.4.0", "--upfrom", "v1.3.2"}, "--upfrom:"},
		{"apply --to latest", []string{"apply", "-f", nofleet, "--to", "latest", "--yes"}, "--to:"},
		{"apply --to 1.4", []string{"apply", "-f", nofleet, "--to", "1.4", "--yes"}, "--to:"},
		{"downgrade without --reason", []string{"downgrade", "-f", nofleet, "--to", "1.3.2", "--yes"}, `"reason" not set`},
		{"downgrade blank --reason", []string{"downgrade", "-f", nofleet, "--to", "1.3.2", "--reason", "  ", "--yes"}, "--reason is empty"},
		{"downgrade --to bad", []string{"downgrade", "-f", nofleet, "--to", "1.3.2 ", "--reason", "x", "--yes"}, "--to:"},
		{"downgrade without --to", []string{"downgrade", "-f", nofleet, "--reason", "x"}, `"to" not set`},
		{"plain and json", []string{"apply", "-f", nofleet, "--to", "1.4.0", "--plain", "--json"}, "--plain and --json exclude each other"},
		{"status plain and json", []string{"status", "-f", nofleet, "--plain", "--json"}, "--plain and --json exclude each other"},
		{"plan --json --format markdown", []string{"plan", "-f", nofleet, "--to", "1.4.0", "--json", "--format", "markdown"}, "contradicts --json"},
		{"plan --format yaml", []string{"plan", "-f", nofleet, "--to", "1.4.0", "--format", "yaml"}, "--format"},
		{"history --since", []string{"history", "-f", example, "--since", "yesterday"}, "--since"},
		{"history --host", []string{"history", "-f", example, "--host", "web9"}, "--host"},
		{"history --limit", []string{"history", "-f", example, "-n", "-3"}, "--limit"},
		{"history -n banana", []string{"history", "-f", example, "-n", "banana"}, "invalid argument"},
		{"lock-wait negative", []string{"apply", "-f", nofleet, "--to", "1.4.0", "--lock-wait", "-5m"}, "--lock-wait -5m0s: a duration is not negative"},
		{"apply --plan missing", []string{"apply", "-f", example, "--plan", "/nonexistent/plan.json", "--yes"}, "plan.json"},
		{"apply --to and --plan", []string{"apply", "-f", example, "--to", "1.4.0", "--plan", "x.json", "--yes"}, "give --to VERSION or --plan FILE"},
		{"lock-wait bad duration", []string{"apply", "-f", nofleet, "--to", "1.4.0", "--lock-wait", "soon"}, "--lock-wait"},
		{"repair without host", []string{"repair", "-f", nofleet}, "requires at least 1 arg"},
		{"status with an argument", []string{"status", "-f", nofleet, "web1"}, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(t, c.args...)
			if code != ExitUsage || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, errs, c.want)
			}
			if strings.Contains(errs, "nonexistent/fleet.yaml") {
				t.Errorf("the inventory was read before the flags were checked: %q", errs)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
		})
	}
}

// A plan for a version that is no release (not in the releases table, no
// artifact) cannot run: plan prints it and exits 2. A declared release
// whose artifact is not here yet is a warning (exit 0).
func TestPlanThatCannotRun(t *testing.T) {
	code, out, errs := run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "9.9.9")
	if code != ExitUsage || !strings.Contains(errs, "this plan cannot run: no release 9.9.9 (not in the releases table") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "upgrade 1.3.2 → 9.9.9") {
		t.Errorf("the plan was not printed: %q", out)
	}
	code, out, errs = run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0")
	if code != ExitOK || !strings.Contains(errs, "warning: artifact for 1.4.0 not found") || !strings.Contains(out, "1.3.2 → 1.4.0") {
		t.Errorf("declared release: exit %d, stderr %q", code, errs)
	}
	code, _, errs = run(t, "plan", "-f", example, "--upfrom", "0.9.0", "--to", "2.0.0")
	if code != ExitUsage || !strings.Contains(errs, "no upgrade path") {
		t.Errorf("no path: exit %d, stderr %q", code, errs)
	}
}

// plan --json is plan --format json; --plain is the text plan.
func TestPlanOutputFlags(t *testing.T) {
	code, out, errs := run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0", "--json")
	var m map[string]any
	if code != ExitOK || json.Unmarshal([]byte(out), &m) != nil || m["schema"] == nil {
		t.Errorf("--json: exit %d, stdout %.200q, stderr %q", code, out, errs)
	}
	code, out, _ = run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0", "--plain")
	if code != ExitOK || !strings.HasPrefix(out, "Plan — shop") {
		t.Errorf("--plain: exit %d, stdout %.200q", code, out)
	}
}

// Every command that prints takes --plain and --json, and says what each
// does there.
func TestOutputFlagsEverywhere(t *testing.T) {
	root := newRoot(&IO{})
	for _, path := range [][]string{{"status"}, {"history"}, {"lock"}, {"lock", "break"}, {"plan"}, {"apply"}, {"rollback"}, {"resume"}, {"downgrade"}, {"repair"}} {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatalf("%v: %v", path, err)
		}
		for _, name := range []string{"plain", "json"} {
			f := cmd.Flag(name)
			if f == nil {
				t.Errorf("relctl %s has no --%s", strings.Join(path, " "), name)
			} else if f.Usage == "" {
				t.Errorf("relctl %s --%s has no help", strings.Join(path, " "), name)
			}
		}
	}
}
