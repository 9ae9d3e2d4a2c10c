package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/relctl/relctl/internal/demo/sandbox"
	"github.com/relctl/relctl/internal/testkit/syncbuf"
)

// readmeExitCodes is README.md's exit code table: code → meaning.
func readmeExitCodes(t *testing.T) map[int]string { return exitCodeTable(t, "../../README.md") }

// exitCodeTable is the table under a file's "## Exit codes".
func exitCodeTable(t *testing.T, file string) map[int]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile(`^\|\s*(\d+)\s*\|\s*(.+?)\s*\|\s*$`)
	codes := map[int]string{}
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Exit codes"
			continue
		}
		if m := row.FindStringSubmatch(line); in && m != nil {
			n, _ := strconv.Atoi(m[1])
			codes[n] = m[2]
		}
	}
	if len(codes) < 2 {
		t.Fatalf("%s has no exit code table under '## Exit codes' (found %v)", file, codes)
	}
	return codes
}

// cancelOn is a stderr that cancels the command's context the moment a
// line containing marker is written: the first Ctrl-C at a known point.
type cancelOn struct {
	syncbuf.Buffer
	marker string
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.Buffer.Write(p)
	if strings.Contains(c.Buffer.String(), c.marker) {
		c.once.Do(c.cancel)
	}
	return n, err
}

// exitFleet is a demo fleet for the exit code table: three hosts on 1.0.0
// behind the built-in balancer, whose start of 1.1.0 fails on a host while
// that host's directory holds a file named fail-start-1.1.0.
type exitFleet struct {
	t   *testing.T
	d   *sandbox.Demo
	doc map[string]any // the demo's fleet.yaml, as YAML
}

func startExitFleet(t *testing.T) *exitFleet {
	t.Helper()
	// The releases wrap cmd/demoapp, built here (without -race: every
	// health check starts it).
	app := filepath.Join(t.TempDir(), "demoapp")
	if out, err := exec.Command("go", "build", "-o", app, "github.com/relctl/relctl/cmd/demoapp").CombinedOutput(); err != nil {
		t.Fatalf("build demoapp: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := sandbox.Start(ctx, sandbox.Options{Hosts: 3, Balancer: sandbox.BalancerBuiltin, AppCommand: app, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("demo close: %v", err)
		}
	})
	raw, err := os.ReadFile(d.FleetFile)
	if err != nil {
		t.Fatal(err)
	}
	f := &exitFleet{t: t, d: d}
	if err := yaml.Unmarshal(raw, &f.doc); err != nil {
		t.Fatal(err)
	}
	cmds := f.doc["commands"].(map[string]any)
	cmds["start"] = "test ! -e {{.Path}}/fail-start-{{.Version}} && " + cmds["start"].(string)
	f.set("rollback", 0)
	return f
}

// set rewrites fleet.yaml with rollout.on_failure and max_failed_hosts.
func (f *exitFleet) set(onFailure string, maxFailed int) {
	r := f.doc["rollout"].(map[string]any)
	r["on_failure"], r["max_failed_hosts"] = onFailure, maxFailed
	b, err := yaml.Marshal(f.doc)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.d.FleetFile, b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// failStart makes host's start of 1.1.0 fail (or work again).
func (f *exitFleet) failStart(host string, fail bool) {
	for _, h := range f.d.Hosts {
		if h.Name != host {
			continue
		}
		p := filepath.Join(h.Path, "fail-start-1.1.0")
		if fail {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				f.t.Fatal(err)
			}
		} else if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			f.t.Fatal(err)
		}
		return
	}
	f.t.Fatalf("no host %s", host)
}

// relctl runs relctl in-process on the demo's inventory; cancelAt, when
// set, interrupts it once a line holding it reaches stderr.
func (f *exitFleet) relctl(cancelAt string, args ...string) (int, string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out syncbuf.Buffer
	errb := &cancelOn{marker: "\x00never", cancel: func() {}}
	run := ctx
	if cancelAt != "" {
		var stop context.CancelFunc
		run, stop = context.WithCancel(ctx)
		defer stop()
		errb.marker, errb.cancel = cancelAt, stop
	}
	code := Run(run, append([]string{"-f", f.d.FleetFile}, args...), strings.NewReader(""), &out, errb)
	return code, out.String(), errb.String()
}

// status reads every host's version with status --json, checking the
// output contract on the way.
func (f *exitFleet) versions() map[string]string {
	f.t.Helper()
	code, out, errs := f.relctl("", "status", "--json")
	if code != ExitOK {
		f.t.Fatalf("status --json: exit %d\n%s%s", code, out, errs)
	}
	checkJSONContract(f.t, "status --json (demo fleet)", []byte(out), "schema")
	var st struct {
		Hosts []struct {
			Name, Version string
			HealthOK      bool `json:"health_ok"`
		}
		Lock *json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		f.t.Fatal(err)
	}
	if st.Lock != nil {
		f.t.Errorf("the lock is still held after the step: %s", *st.Lock)
	}
	v := map[string]string{}
	for _, h := range st.Hosts {
		if !h.HealthOK {
			f.t.Errorf("%s is not healthy: %s", h.Name, out)
		}
		v[h.Name] = h.Version
	}
	return v
}

func (f *exitFleet) want(step string, want map[string]string) {
	f.t.Helper()
	got := f.versions()
	for h, v := range want {
		if got[h] != v {
			f.t.Errorf("after %s: %s runs %q, want %s (all: %v)", step, h, got[h], v, got)
		}
	}
}

func all(v string) map[string]string { return map[string]string{"web1": v, "web2": v, "web3": v} }

// TestREADMEExitCodes drives real commands on a local demo fleet (in-process
// SSH hosts, the built-in balancer, the demo app) through every exit code
// of README.md's table, and fails if a row of the table has no command
// here that exits with it. Each step also checks where the fleet ends.
func TestREADMEExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo fleet")
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	readme := readmeExitCodes(t)
	f := startExitFleet(t)

	// An inventory whose web3 cannot be reached (nothing listens on port 1).
	unreachable := filepath.Join(t.TempDir(), "fleet.yaml")
	{
		raw, _ := os.ReadFile(f.d.FleetFile)
		var doc map[string]any
		_ = yaml.Unmarshal(raw, &doc)
		doc["hosts"].([]any)[2].(map[string]any)["address"] = "127.0.0.1:1"
		b, _ := yaml.Marshal(doc)
		if err := os.WriteFile(unreachable, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The same inventory with a before_run hook that refuses every run
	// (written by its step, from the inventory as it is then).
	refusing := filepath.Join(filepath.Dir(f.d.FleetFile), "fleet-refusing.yaml")

	type step struct {
		name     string
		before   func()
		cancelAt string
		args     []string
		code     int
		stdout   string // must appear on stdout
		after    func(out, errs string)
	}
	seen := map[int][]string{}
	steps := []step{
		{name: "status of a healthy fleet", args: []string{"status"}, code: ExitOK, stdout: "HOST\tVERSION\tHEALTH\tBALANCER\tRELEASES\nweb1\t1.0.0\tok\tUP\t"},
		{name: "status --plain", args: []string{"status", "--plain"}, code: ExitOK, stdout: "HOST\tVERSION\tHEALTH\tBALANCER\tRELEASES\n"},
		{name: "lock --json of a free fleet", args: []string{"lock", "--json"}, code: ExitOK, stdout: `"held": false`,
			after: func(out, _ string) { checkJSONContract(t, "lock --json (demo fleet)", []byte(out), "schema") }},
		{name: "status with a host that cannot be reached", args: []string{"-f", unreachable, "status"}, code: ExitError, stdout: "web3\t?\tunreachable: "},
		{name: "apply --to banana", args: []string{"apply", "--to", "banana", "--yes", "--plain"}, code: ExitUsage},
		{name: "apply with an unknown flag", args: []string{"apply", "--to", "1.1.0", "--yes", "--canary-only"}, code: ExitUsage},
		{name: "downgrade without --reason", args: []string{"downgrade", "--to", "1.0.0", "--yes"}, code: ExitUsage},
		{name: "a before_run hook refuses the run", before: func() {
			raw, _ := os.ReadFile(f.d.FleetFile)
			hooked := append(raw, []byte("\nhooks:\n  before_run: ['echo change freeze >&2; exit 1']\n")...)
			if err := os.WriteFile(refusing, hooked, 0o644); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"-f", refusing, "apply", "--to", "1.1.0", "--yes", "--plain"}, code: ExitRefused,
			after: func(_, errs string) {
				if !strings.Contains(errs, "hooks.before_run[0] failed: exit status 1: change freeze") {
					t.Errorf("the refusal does not name the hook: %s", errs)
				}
				f.want("the refused run", all("1.0.0"))
			}},
		{name: "plan --to 9.9.9 (no such release)", args: []string{"plan", "--to", "9.9.9"}, code: ExitUsage, stdout: "upgrade 1.0.0 → 9.9.9"},
		{name: "plan --to 2.0.0 past the declared path", args: []string{"plan", "--to", "2.0.0"}, code: ExitOK, stdout: "1.0.0 → 1.1.0 → 2.0.0"},
		{name: "the canary fails to start: rolled back", before: func() { f.failStart("web1", true) },
			args: []string{"apply", "--to", "1.1.0", "--yes", "--plain"}, code: ExitRolledBack,
			after: func(string, string) { f.want("the rollback", all("1.0.0")) }},
		{name: "the run pauses (on_failure: pause)", before: func() { f.set("pause", 0) },
			args: []string{"apply", "--to", "1.1.0", "--yes", "--plain"}, code: ExitPaused},
		{name: "a new run over the paused one", args: []string{"apply", "--to", "1.1.0", "--yes", "--plain"}, code: ExitLocked},
		// The paused run's lock names this test's process, which lives on
		// (a real relctl has exited): break it as an operator would.
		{name: "lock break --force of the paused run's lock", args: []string{"lock", "break", "--force", "--json"}, code: ExitOK, stdout: `"broken": true`},
		{name: "resume --rollback of the paused run", before: func() { f.failStart("web1", false) },
			args: []string{"resume", "--rollback", "--yes", "--plain"}, code: ExitOK,
			after: func(string, string) { f.want("resume --rollback", all("1.0.0")) }},
		{name: "interrupted while the canary deploys", before: func() { f.set("rollback", 0) }, cancelAt: "\tstart\tdeploy web1",
			args: []string{"apply", "--to", "1.1.0", "--yes", "--plain"}, code: ExitAborted,
			after: func(string, string) {
				f.want("the interrupt", map[string]string{"web1": "1.1.0", "web2": "1.0.0", "web3": "1.0.0"})
			}},
		{name: "one host fails within the budget: partially upgraded", before: func() { f.set("rollback", 1); f.failStart("web2", true) },
			args: []string{"apply", "--to", "1.1.0", "--yes", "--plain"}, code: ExitPartial,
			after: func(string, string) {
				f.failStart("web2", false)
				f.want("the partial upgrade", map[string]string{"web1": "1.1.0", "web2": "1.0.0", "web3": "1.1.0"})
			}},
		{name: "apply --json finishes the fleet", args: []string{"apply", "--to", "1.1.0", "--yes", "--json"}, code: ExitOK, stdout: `"type":"run_finished"`,
			after: func(out, _ string) {
				checkJSONContract(t, "apply --json (demo fleet)", []byte(out), "v")
				f.want("the last apply", all("1.1.0"))
			}},
		{name: "apply --json with nothing to do", args: []string{"apply", "--to", "1.1.0", "--yes", "--json"}, code: ExitOK,
			after: func(out, errs string) {
				if out != "" || !strings.Contains(errs, "nothing to do") {
					t.Errorf("stdout %q (want none: no events), stderr %q", out, errs)
				}
			}},
		{name: "history --json", args: []string{"history", "--json", "-n", "0"}, code: ExitOK,
			after: func(out, _ string) { checkJSONContract(t, "history --json (demo fleet)", []byte(out), "v") }},
		{name: "history of web1, piped: the lock break and its reason", args: []string{"history", "--host", "web1"}, code: ExitOK,
			stdout: "\tlock break of run ", after: func(out, _ string) {
				for _, l := range strings.Split(out, "\n") {
					if strings.Contains(l, "lock break of run") && !strings.Contains(l, "\tlock broken\theld by ") {
						t.Errorf("the lock break's REASON is not the lock it broke: %q", l)
					}
				}
			}},
		{name: "history --host web2 --since 1h, piped", args: []string{"history", "--host", "web2", "--since", "1h", "-n", "0"}, code: ExitOK,
			stdout: "TIME\tHOST\tRUN\tOWNER\tWHAT\tRESULT\tREASON\n",
			after: func(out, _ string) {
				lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				// The partial upgrade (web2 reverted) and the last apply.
				if len(lines) < 3 || !strings.Contains(out, "\trolled back") || !strings.Contains(out, "\tin service\t") {
					t.Errorf("history of web2 lacks its two runs:\n%s", out)
				}
				for _, l := range lines {
					if fields := strings.Split(l, "\t"); len(fields) != 7 || fields[1] != "web2" && fields[1] != "HOST" {
						t.Errorf("history line %q: want 7 tab-separated fields of web2", l)
					}
				}
			}},
	}
	for _, s := range steps {
		if t.Failed() {
			t.Fatalf("stopped before %q: an earlier step failed", s.name)
		}
		if s.before != nil {
			s.before()
		}
		args := s.args
		begin := time.Now()
		code, out, errs := f.relctl(s.cancelAt, args...)
		t.Logf("%s: relctl %s → exit %d in %s", s.name, strings.Join(args, " "), code, time.Since(begin).Round(time.Millisecond))
		if code != s.code {
			t.Errorf("%s: relctl %s: exit %d, want %d (%s)\nstdout:\n%s\nstderr:\n%s", s.name, strings.Join(args, " "), code, s.code, readme[s.code], out, errs)
			continue
		}
		if s.stdout != "" && !strings.Contains(out, s.stdout) {
			t.Errorf("%s: stdout lacks %q:\n%s", s.name, s.stdout, out)
		}
		if s.after != nil {
			s.after(out, errs)
		}
		seen[code] = append(seen[code], s.name)
	}
	for _, p := range uncovered(readme, seen) {
		t.Error(p)
	}
	for c := 0; c < 256; c++ {
		if len(seen[c]) > 0 {
			t.Logf("exit %d: %s", c, strings.Join(seen[c], "; "))
		}
	}
}

// uncovered names every row of the table no step exited with, and every
// exit code seen that the table lacks.
func uncovered(table map[int]string, seen map[int][]string) []string {
	var codes []int
	for c := range table {
		codes = append(codes, c)
	}
	for c := range seen {
		if _, ok := table[c]; !ok {
			codes = append(codes, c)
		}
	}
	sort.Ints(codes)
	var out []string
	for _, c := range codes {
		meaning, ok := table[c]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("exit %d happens (%s) but README.md's table has no row for it", c, strings.Join(seen[c], "; ")))
		case len(seen[c]) == 0:
			out = append(out, fmt.Sprintf("README.md's exit code %d (%s) has no command here that exits with it", c, meaning))
		}
	}
	return out
}

func TestUncoveredExitCodes(t *testing.T) {
	table := map[int]string{0: "ok", 2: "usage", 8: "new"}
	got := uncovered(table, map[int][]string{0: {"status"}, 2: {"apply --to banana"}, 9: {"odd"}})
	if len(got) != 2 || !strings.Contains(got[0], "exit code 8 (new) has no command") || !strings.Contains(got[1], "exit 9 happens (odd)") {
		t.Errorf("%q", got)
	}
	if got := uncovered(table, map[int][]string{0: {"a"}, 2: {"b"}, 8: {"c"}}); len(got) != 0 {
		t.Errorf("%q", got)
	}
}

// docs/design.md repeats README.md's exit code table word for word.
func TestExitCodeTablesAgree(t *testing.T) {
	readme, design := readmeExitCodes(t), exitCodeTable(t, "../../docs/design.md")
	for c := 0; c < 256; c++ {
		if readme[c] != design[c] {
			t.Errorf("exit %d: README.md says %q, docs/design.md %q", c, readme[c], design[c])
		}
	}
}
