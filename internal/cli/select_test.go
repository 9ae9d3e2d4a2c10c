package cli

import (
	"strings"
	"testing"
)

// --hosts, --labels and --roles reach the planner: the plan names what it
// leaves out and the post-migrate it holds back; an unknown name exits 2
// naming it, on every command that takes a selection.
func TestPlanSelection(t *testing.T) {
	code, out, errs := run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0", "--hosts", "web1,web3")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"selected: --hosts web1,web3: 2 of 5 hosts",
		"left out: web2 (1.3.2), web4 (1.3.2), web5 (1.3.2)",
		"post-migrate skipped: web2, web4, web5 are not selected and still run 1.3.2 — run again without --hosts to finish",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "POINT OF NO RETURN") {
		t.Errorf("a partial plan shows a post-migrate:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0", "--hosts", "web1,web9"}, `--hosts: "web9" is not a host of`},
		{[]string{"plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0", "--labels", "blue"}, `--labels: no host of`},
		{[]string{"plan", "-f", example, "--upfrom", "1.3.2", "--to", "1.4.0", "--roles", "db"}, `--roles: "db" is not a role of`},
		{[]string{"plan", "-f", example, "--upfrom", "1.3.2", "--to", "2.0.0", "--labels", "canary"}, "needs the whole fleet on 1.4.0 before the hop to 2.0.0 starts"},
		{[]string{"apply", "-f", example, "--plan", "plan.json", "--hosts", "web1"}, "--plan FILE carries its own selection"},
		{[]string{"status", "-f", example, "--hosts", "web9"}, `--hosts: "web9" is not a host of`},
		{[]string{"rollback", "-f", example, "--roles", "db", "--yes"}, `--roles: "db" is not a role of`},
	} {
		code, _, errs := run(t, c.args...)
		if code != ExitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errs, c.want)
		}
	}
	for _, cmd := range []string{"apply", "status", "rollback", "plan"} {
		code, out, _ := run(t, cmd, "--help")
		if code != ExitOK || !strings.Contains(out, "--hosts") || !strings.Contains(out, "--labels") || !strings.Contains(out, "--roles") {
			t.Errorf("%s --help lacks the selection flags (exit %d)", cmd, code)
		}
	}
}
