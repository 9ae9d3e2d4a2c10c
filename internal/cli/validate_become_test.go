package cli

import (
	"bytes"
	"encoding/json"
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

// validate --json carries the same lines as "notes", and plain validate's
// note lines are exactly those.
func TestValidateJSONNamesShellBecome(t *testing.T) {
	var out, plain bytes.Buffer
	if err := runValidate(&IO{Out: &out, Err: &bytes.Buffer{}}, []string{"../../fleet.example.yaml"}, "", true); err != nil {
		t.Fatal(err)
	}
	var rep validateReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(rep.Notes) < 2 || !strings.HasPrefix(rep.Notes[0], "commands.") {
		t.Fatalf("notes %q", rep.Notes)
	}
	if err := runValidate(&IO{Out: &bytes.Buffer{}, Err: &plain}, []string{"../../fleet.example.yaml"}, "", false); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(plain.String(), "\n") {
		if n, ok := strings.CutPrefix(l, "note: commands."); ok {
			lines = append(lines, "commands."+n)
		}
	}
	if strings.Join(lines, "\n") != strings.Join(rep.Notes, "\n") {
		t.Errorf("plain notes:\n%s\njson notes:\n%s", strings.Join(lines, "\n"), strings.Join(rep.Notes, "\n"))
	}
}
