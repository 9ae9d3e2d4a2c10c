package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestValidateNamesShellBecome: validate says, one line per command, which
// become commands of the example need /bin/sh under sudo and why; stop and
// start (simple, env: false) are not among them.
func TestValidateNamesShellBecome(t *testing.T) {
	var out, errb bytes.Buffer
	if err := runValidate(&IO{Out: &out, Err: &errb}, []string{"../../fleet.example.yaml"}, "", false); err != nil {
		t.Fatal(err)
	}
	e := errb.String()
	for _, want := range []string{
		"note: commands.migrate (cd /srv/shop/releases/2.0.0 && ./bin/shop migrate) runs as shop through /bin/sh under sudo because it is shell text: it holds \"&\"",
		"note: commands.version (cat /srv/shop/current/VERSION) runs as shop through /bin/sh under sudo because env: values must reach it",
	} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr lacks %q:\n%s", want, e)
		}
	}
	if strings.Contains(e, "commands.stop") || strings.Contains(e, "commands.start") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out.String(), e)
	}
}
