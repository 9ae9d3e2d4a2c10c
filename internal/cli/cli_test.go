package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/plan"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

const example = "../../fleet.example.yaml"

func TestPlanTwoHops(t *testing.T) {
	code, out, _ := run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "2.0.0")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"in 2 hops (1.3.2 → 1.4.0 → 2.0.0)", "migrate@1.4.0", "POINT OF NO RETURN", "gate/canary@2.0.0", "What rollback can and cannot undo"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q", want)
		}
	}
}

func TestPlanJSONRoundTrips(t *testing.T) {
	out := filepath.Join(t.TempDir(), "plan.json")
	code, _, errs := run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "2.0.0", "--format", "json", "-o", out)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.UnmarshalJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	_ = json.Unmarshal(data, &raw)
	if raw["schema"].(float64) != plan.SchemaVersion || len(p.Hops) != 2 {
		t.Errorf("schema %v hops %v", raw["schema"], p.Hops)
	}
}

func TestPlanNothingToDo(t *testing.T) {
	code, out, _ := run(t, "plan", "-f", example, "--upfrom", "2.0.0", "--to", "2.0.0")
	if code != ExitOK || !strings.Contains(out, "Nothing to do") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestPlanErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "fleet.yaml")
	src, _ := os.ReadFile(example)
	_ = os.WriteFile(bad, []byte(strings.Replace(string(src), "  - {name: web4, address: 10.0.0.14}", "  - {name: web4}", 1)), 0o644)
	web4Line := 1 + strings.Count(string(src[:strings.Index(string(src), "{name: web4")]), "\n")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad inventory", []string{"plan", "-f", bad, "--upfrom", "1.3.2", "--to", "2.0.0"}, ExitUsage, fmt.Sprintf("fleet.yaml:%d: hosts[3] (web4): address is required", web4Line)},
		{"missing inventory", []string{"plan", "-f", filepath.Join(dir, "nope.yaml"), "--upfrom", "1.0.0", "--to", "2.0.0"}, ExitUsage, "nope.yaml"},
		{"no --to", []string{"plan", "-f", example, "--upfrom", "1.3.2"}, ExitUsage, `"to" not set`},
		{"bad version", []string{"plan", "-f", example, "--upfrom", "1.3.2", "--to", "2.0;reboot"}, ExitUsage, "may hold only letters"},
		{"no path", []string{"plan", "-f", example, "--upfrom", "0.9.0", "--to", "2.0.0"}, ExitUsage, "no upgrade path from 0.9.0"},
		{"downgrade", []string{"plan", "-f", example, "--upfrom", "2.0.0", "--to", "1.4.0"}, ExitUsage, "relctl downgrade"},
		{"bad format", []string{"plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0", "--format", "yaml"}, ExitUsage, "--format"},
		{"unknown command", []string{"deploy"}, ExitUsage, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := run(t, c.args...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, c.code, c.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != ExitOK || !strings.HasPrefix(out, "relctl ") {
		t.Errorf("exit %d: %q", code, out)
	}
}
