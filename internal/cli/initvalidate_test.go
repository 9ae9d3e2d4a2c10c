package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/tui"
)

func TestInitWritesAValidInventoryAndNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.yaml")
	code, out, errs := run(t, "init", path)
	if code != ExitOK {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	for _, w := range []string{"wrote " + path, "edit " + path, "relctl validate -f " + path, "relctl plan -f " + path + " --to VERSION"} {
		if !strings.Contains(out, w) {
			t.Errorf("init's next steps lack %q:\n%s", w, out)
		}
	}
	inv, err := fleet.Load(path)
	if err != nil {
		t.Fatalf("what init wrote does not load: %v", err)
	}
	if inv.App != "shop" || len(inv.Hosts) != 5 || len(inv.Releases) != 3 {
		t.Errorf("loaded %s, %d hosts, %d releases", inv.App, len(inv.Hosts), len(inv.Releases))
	}
	written, _ := os.ReadFile(path)
	if !strings.Contains(string(written), "# upgrade_from:") || !strings.HasPrefix(string(written), "# "+path+" — a relctl inventory, written by relctl init") {
		t.Errorf("init wrote no commented inventory:\n%.400s", written)
	}
	// The plan the header suggests works on what init wrote.
	if code, _, errs := run(t, "plan", "-f", path, "--upfrom", "1.3.2", "--to", "2.0.0"); code != ExitOK {
		t.Errorf("plan on the starter: exit %d: %s", code, errs)
	}

	// Never overwrites: exit 2, the file named, the content unchanged.
	if err := os.WriteFile(path, []byte("app: mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = run(t, "-f", path, "init")
	if code != ExitUsage || out != "" || !strings.Contains(errs, path+" already exists") || !strings.Contains(errs, "never overwrites") {
		t.Errorf("init over a file: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if b, _ := os.ReadFile(path); string(b) != "app: mine\n" {
		t.Errorf("init changed an existing file: %q", b)
	}
	// No --force.
	if code, _, errs := run(t, "init", "--force", path); code != ExitUsage || !strings.Contains(errs, "unknown flag: --force") {
		t.Errorf("init --force: exit %d %s", code, errs)
	}
	// A directory that does not exist: 2, nothing created.
	missing := filepath.Join(dir, "no", "such", "fleet.yaml")
	if code, _, errs := run(t, "init", missing); code != ExitUsage || !strings.Contains(errs, missing) {
		t.Errorf("init in a missing directory: exit %d %s", code, errs)
	}
	// The default file is the inventory the other commands read.
	t.Setenv("RELCTL_FLEET", filepath.Join(dir, "env.yaml"))
	if code, out, _ := run(t, "init"); code != ExitOK || !strings.Contains(out, "relctl validate  ") || strings.Contains(out, " -f ") {
		t.Errorf("init with RELCTL_FLEET: exit %d:\n%s", code, out)
	}
	if _, err := fleet.Load(filepath.Join(dir, "env.yaml")); err != nil {
		t.Errorf("init with RELCTL_FLEET: %v", err)
	}
}

func TestValidate(t *testing.T) {
	// Valid: one line, exit 0.
	inv := completionFleet(t)
	code, out, errs := run(t, "validate", "-f", inv)
	if code != ExitOK || out != inv+": valid: app shop, 5 hosts, balancer haproxy, 3 releases declared (1.3.2, 1.4.0, 2.0.0)\n" {
		t.Fatalf("validate: exit %d, %q, %q", code, out, errs)
	}
	if !strings.Contains(errs, "no artifact for 2.0.0") || strings.Contains(errs, "no artifact for 1.4.0") {
		t.Errorf("artifact notes: %q", errs)
	}
	if code, out2, _ := run(t, "validate", inv); code != ExitOK || out2 != out {
		t.Errorf("validate FILE: exit %d, %q", code, out2)
	}

	// Three problems of different passes (an unknown key, a bad value, a
	// missing required key): all at once, each with file:line and key.
	src, _ := os.ReadFile(example)
	bad := strings.Replace(string(src), "keep_releases: 5", "keep_relases: 5", 1)
	bad = strings.Replace(bad, "timeout: 60s ", "timeout: banana", 1)
	bad = strings.Replace(bad, "{name: web4, address: 10.0.0.14}", "{name: web4}", 1)
	lineOf := func(s string) int { return 1 + strings.Count(bad[:strings.Index(bad, s)], "\n") }
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []Problem{
		{path, lineOf("keep_relases"), "keep_relases", `unknown key "keep_relases" (did you mean "keep_releases"?)`},
		{path, lineOf("timeout: banana"), "health.timeout", `"banana" is not a duration (such as 500ms, 30s or 2m)`},
		{path, lineOf("{name: web4}"), "hosts[3] (web4)", "address is required"},
	}
	code, out, errs = run(t, "validate", "-f", path)
	if code != ExitUsage || out != "" {
		t.Errorf("invalid: exit %d, stdout %q", code, out)
	}
	for _, p := range want {
		line := (&fleet.Error{File: p.File, Line: p.Line, Path: p.Key, Msg: p.Message}).Error()
		if p.Key == "keep_relases" {
			line = (&fleet.Error{File: p.File, Line: p.Line, Msg: p.Message}).Error()
		}
		if !strings.Contains(errs, line+"\n") {
			t.Errorf("stderr lacks %q:\n%s", line, errs)
		}
	}
	if !strings.Contains(errs, "3 problems") {
		t.Errorf("no count: %s", errs)
	}

	code, out, _ = run(t, "validate", "-f", path, "--json")
	var rep struct {
		Schema   int       `json:"schema"`
		Valid    bool      `json:"valid"`
		Problems []Problem `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitUsage {
		t.Fatalf("--json: exit %d, %v: %s", code, err, out)
	}
	if rep.Schema != 1 || rep.Valid || len(rep.Problems) != len(want) {
		t.Fatalf("--json: %+v", rep)
	}
	for i := range want {
		if rep.Problems[i] != want[i] {
			t.Errorf("problem %d: %+v, want %+v", i, rep.Problems[i], want[i])
		}
	}

	// Valid, as JSON.
	code, out, _ = run(t, "validate", "-f", inv, "--json")
	var ok map[string]any
	if err := json.Unmarshal([]byte(out), &ok); err != nil || code != ExitOK || ok["valid"] != true || ok["hosts"].(float64) != 5 || ok["balancer"] != "haproxy" || len(ok["problems"].([]any)) != 0 {
		t.Errorf("valid --json: exit %d %v: %s", code, err, out)
	}

	// No file: 2, named.
	none := filepath.Join(t.TempDir(), "none.yaml")
	if code, _, errs := run(t, "validate", "-f", none); code != ExitUsage || !strings.Contains(errs, none) {
		t.Errorf("missing file: exit %d %s", code, errs)
	}
}

// The TUI's note for a newcomer without an inventory names init, with the
// file relctl looked for.
func TestNoInventoryNamesInit(t *testing.T) {
	note := tui.NoInventory("staging.yaml")
	for _, w := range []string{"staging.yaml does not exist", "relctl demo", "relctl init staging.yaml", "relctl validate"} {
		if !strings.Contains(note, w) {
			t.Errorf("the note lacks %q:\n%s", w, note)
		}
	}
}

// TestValidateJSONShape pins the keys docs/json.md documents for
// validate --json, for a valid and an invalid inventory.
func TestValidateJSONShape(t *testing.T) {
	keys := func(m map[string]any) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return strings.Join(ks, ",")
	}
	inv := completionFleet(t)
	_, out, _ := run(t, "validate", "-f", inv, "--json")
	var ok map[string]any
	if err := json.Unmarshal([]byte(out), &ok); err != nil {
		t.Fatal(err)
	}
	if got := keys(ok); got != "app,artifacts,balancer,file,hosts,notes,problems,releases,schema,valid" {
		t.Errorf("valid: keys %s", got)
	}
	if got := keys(ok["artifacts"].([]any)[0].(map[string]any)); got != "path,present,version" {
		t.Errorf("artifact: keys %s", got)
	}
	bad := filepath.Join(t.TempDir(), "fleet.yaml")
	os.WriteFile(bad, []byte("app: a\nbogus: 1\n"), 0o644)
	_, out, _ = run(t, "validate", "-f", bad, "--json")
	var no map[string]any
	if err := json.Unmarshal([]byte(out), &no); err != nil {
		t.Fatal(err)
	}
	if got := keys(no); got != "file,problems,schema,valid" {
		t.Errorf("invalid: keys %s", got)
	}
	if got := keys(no["problems"].([]any)[0].(map[string]any)); got != "file,key,line,message" {
		t.Errorf("problem: keys %s", got)
	}
}

// validate --json agrees with its section of docs/json.md, checked the way
// TestJSONDocsMatchOutput checks the others.
func TestValidateJSONDocs(t *testing.T) {
	text, _ := docSection(t, "Validate (`relctl validate --json`)")
	can := map[string]bool{}
	jsonPaths(reflect.TypeOf(validateReport{}), "", can)
	var ex strings.Builder // every json block of the section
	for _, part := range strings.Split(text, "```json\n")[1:] {
		ex.WriteString(part[:strings.Index(part, "```")])
	}
	dec := json.NewDecoder(strings.NewReader(ex.String()))
	n := 0
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("the example is not JSON: %v\n%s", err, ex.String())
		}
		n++
		got := map[string]bool{}
		valuePaths(v, "", got)
		for p := range got {
			if !can[p] {
				t.Errorf("the example has %q, which the output never has", p)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d examples, want an invalid and a valid one", n)
	}
	for p := range can {
		leaf := strings.TrimSuffix(p[strings.LastIndex(p, ".")+1:], "[]")
		if !strings.Contains(text, "`"+leaf+"`") && !strings.Contains(text, leaf+",") && !strings.Contains(text, leaf+"}") {
			t.Errorf("docs/json.md does not name %q", p)
		}
	}
	if code, _, errs := run(t, "validate", "-f", example, "--plain", "--json"); code != ExitUsage || !strings.Contains(errs, "exclude each other") {
		t.Errorf("--plain --json: exit %d %s", code, errs)
	}
}
