package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/journal"
	"github.com/relctl/relctl/internal/lb"
	"github.com/relctl/relctl/internal/observe"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/rollout"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update once)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed (a changed shape needs a new version field and docs/json.md):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var snakeRE = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// snakeKeys reports every key of a decoded JSON value (at any depth) that
// is not snake_case, by its path.
func snakeKeys(v any, path string, bad *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if !snakeRE.MatchString(k) {
				*bad = append(*bad, path+"."+k)
			}
			snakeKeys(e, path+"."+k, bad)
		}
	case []any:
		for _, e := range x {
			snakeKeys(e, path+"[]", bad)
		}
	}
}

// checkJSONContract decodes out (one document, or JSON lines when lines)
// and fails on a key that is not snake_case or a missing version field.
func checkJSONContract(t *testing.T, what string, out []byte, versionKey string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", what, err, out)
		}
		n++
		var bad []string
		snakeKeys(v, "", &bad)
		if len(bad) > 0 {
			t.Errorf("%s: keys not snake_case: %v", what, bad)
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: a %T, not an object", what, v)
			continue
		}
		if ver, ok := m[versionKey].(float64); !ok || ver < 1 {
			t.Errorf("%s: no %q version field: %v", what, versionKey, m)
		}
	}
	if n == 0 {
		t.Errorf("%s: no JSON at all", what)
	}
}

func TestSnakeKeysCatchesGoNames(t *testing.T) {
	var v any
	_ = json.Unmarshal([]byte(`{"hosts":[{"name":"web1","HealthOK":true}],"lock":{"LockHolder":"x","lease_until":"y"}}`), &v)
	var bad []string
	snakeKeys(v, "", &bad)
	if strings.Join(bad, " ") != ".hosts[].HealthOK .lock.LockHolder" && strings.Join(bad, " ") != ".lock.LockHolder .hosts[].HealthOK" {
		t.Errorf("found %v", bad)
	}
}

// statusFixture is a status as ops reads it: web2 drained with sessions,
// web4 unreachable, the lock held by a live run of this machine's journal.
func statusFixture(t *testing.T) (*fleet.Inventory, ops.Status) {
	t.Helper()
	inv, err := fleet.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []observe.Host{}
	for _, h := range inv.Hosts {
		oh := observe.Host{HostState: plan.HostState{Name: h.Name, Version: "1.3.2", Reachable: true, Releases: []string{"1.3.2", "1.4.0"}},
			Health: "ok", HealthOK: true, Current: "/srv/shop/releases/1.3.2"}
		if h.Name == "web4" {
			oh = observe.Host{HostState: plan.HostState{Name: h.Name, Error: "dial tcp 10.0.0.14:22: connect: connection refused"}}
		}
		hosts = append(hosts, oh)
	}
	p := &plan.Plan{Kind: plan.KindUpgrade, From: "1.3.2", To: "1.4.0"}
	st := ops.Status{
		Hosts: hosts,
		Balancer: []lb.ServerState{
			{Server: "web1", Status: lb.StatusUp, Weight: 1, Endpoint: "tcp 10.0.0.3:9999", CheckStatus: "L7OK"},
			{Server: "web2", Status: lb.StatusDrain, Admin: lb.StatusDrain, Sessions: 3, Weight: 1, Endpoint: "tcp 10.0.0.3:9999"},
		},
		Lock: &rollout.LockInfo{Owner: "alice@ops1", RunID: "20261129T150000Z-00000000000000aa",
			Proc: rollout.Process{PID: 4242, Machine: "ops1"}, Started: 1796050800, LeaseUntil: 1796050860, Now: 1796050830},
		Unfinished: &journal.Run{ID: "20261129T150000Z-00000000000000aa", Owner: "alice@ops1", Plan: p, Original: p},
		Alive:      &rollout.Liveness{Alive: true, Why: "run 20261129T150000Z-00000000000000aa is still running: pid 4242 on ops1 is alive"},
	}
	return inv, st
}

// throughPipe runs f with an IO whose Out is a real pipe, as in
// `relctl status | cat`, and returns what the reading end got.
func throughPipe(t *testing.T, f func(ios *IO)) *bytes.Buffer {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *bytes.Buffer)
	go func() {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r)
		got <- &b
	}()
	f(&IO{Out: w})
	w.Close()
	return <-got
}

// status on a pipe: one record per line, tab-separated, a header line; a
// host that cannot be read makes it exit 1 after printing everything.
func TestStatusTablePiped(t *testing.T) {
	inv, st := statusFixture(t)
	var err error
	out := throughPipe(t, func(ios *IO) { err = showStatus(ios, inv, st, outputFlags{}) })
	if codeOf(err) != ExitError || !strings.Contains(err.Error(), "1 host unreachable") {
		t.Errorf("err %v (exit %d), want exit 1 naming 1 host unreachable", err, codeOf(err))
	}
	lines := strings.Split(out.String(), "\n")
	want := []string{
		"HOST\tVERSION\tHEALTH\tBALANCER\tRELEASES",
		"web1\t1.3.2\tok\tUP\t1.3.2 1.4.0",
		"web2\t1.3.2\tok\tDRAIN (3 sess)\t1.3.2 1.4.0",
		"web3\t1.3.2\tok\t-\t1.3.2 1.4.0",
		"web4\t?\tunreachable: dial tcp 10.0.0.14:22: connect: connection refused\t-\t-",
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q", i, lines[i], w)
		}
	}
	for _, l := range lines[:6] {
		if n := strings.Count(l, "\t"); n != 4 {
			t.Errorf("%q has %d tabs, want 4", l, n)
		}
	}
	if !strings.Contains(out.String(), "lock: held by alice@ops1") || !strings.Contains(out.String(), "running: 20261129T150000Z-00000000000000aa") {
		t.Errorf("no lock or running line:\n%s", out.String())
	}
}

func TestStatusJSONGolden(t *testing.T) {
	inv, st := statusFixture(t)
	var out bytes.Buffer
	if err := showStatus(&IO{Out: &out}, inv, st, outputFlags{json: true}); codeOf(err) != ExitError {
		t.Errorf("err %v: an unreachable host exits 1 with --json too", err)
	}
	checkJSONContract(t, "status --json", out.Bytes(), "schema")
	golden(t, "status.json", out.Bytes())
	// Errors are strings, a free lock is null.
	st.Lock, st.LockErr, st.LBErr, st.Unfinished, st.Alive = nil, errors.New("web1: timeout"), errors.New("endpoint down"), nil, nil
	out.Reset()
	_ = showStatus(&IO{Out: &out}, inv, st, outputFlags{json: true})
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["lock"] != nil || m["lock_error"] != "web1: timeout" || m["balancer_error"] != "endpoint down" {
		t.Errorf("lock %v lock_error %v balancer_error %v", m["lock"], m["lock_error"], m["balancer_error"])
	}
}

func historyFixture() []rollout.HistoryRecord {
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	return []rollout.HistoryRecord{
		{Time: at("2026-11-29T16:00:00Z"), RunID: "20261129T155900Z-00000000000000cc", Owner: "bob@ops2", Kind: "downgrade", From: "1.4.0", To: "1.3.2",
			Host: "web1", Result: "in service", Outcome: "succeeded", Reason: "checkout returns 500\tfor EU cards"},
		{Time: at("2026-11-29T15:30:00Z"), Owner: "bob@ops2", Kind: "lock-break", Host: "web1", Result: "lock broken",
			Reason:  "held by alice@ops1 (run 20261129T150000Z-00000000000000aa) since 2026-11-29T15:00:00Z, lease expired 25m0s ago",
			PrevRun: "20261129T150000Z-00000000000000aa", PrevOwner: "alice@ops1"},
		{Time: at("2026-11-29T15:00:05Z"), RunID: "20261129T150000Z-00000000000000aa", Owner: "alice@ops1", Kind: "upgrade", From: "1.3.2", To: "1.4.0",
			Host: "web2", Result: "left drained: not healthy", Outcome: "failed"},
		{Time: at("2026-11-29T15:00:04Z"), RunID: "20261129T150000Z-00000000000000aa", Owner: "alice@ops1", Kind: "upgrade", From: "1.3.2", To: "1.4.0",
			Host: "web1", Result: "in service", Outcome: "failed"},
	}
}

// history on a pipe: a REASON field on every line, tabs in a reason made
// spaces; filters by host, run prefix (a lock record matches the run it
// broke) and time; --limit counts after the filters.
func TestHistoryTableAndFilters(t *testing.T) {
	inv, _ := statusFixture(t)
	now, _ := time.Parse(time.RFC3339, "2026-11-29T16:10:00Z")
	cases := []struct {
		name string
		o    historyOptions
		want []string
	}{
		{"all", historyOptions{}, []string{
			"TIME\tHOST\tRUN\tOWNER\tWHAT\tRESULT\tREASON",
			"2026-11-29T16:00:00Z\tweb1\t20261129T155900Z-00000000000000cc\tbob@ops2\tdowngrade 1.4.0 → 1.3.2\tin service\tcheckout returns 500 for EU cards",
			"2026-11-29T15:30:00Z\tweb1\t-\tbob@ops2\tlock break of run 20261129T150000Z-00000000000000aa\tlock broken\theld by alice@ops1 (run 20261129T150000Z-00000000000000aa) since 2026-11-29T15:00:00Z, lease expired 25m0s ago",
			"2026-11-29T15:00:05Z\tweb2\t20261129T150000Z-00000000000000aa\talice@ops1\tupgrade 1.3.2 → 1.4.0\tleft drained: not healthy\t-",
			"2026-11-29T15:00:04Z\tweb1\t20261129T150000Z-00000000000000aa\talice@ops1\tupgrade 1.3.2 → 1.4.0\tin service\t-",
		}},
		{"host", historyOptions{Host: "web2"}, []string{"", "2026-11-29T15:00:05Z\tweb2"}},
		{"run prefix", historyOptions{Run: "20261129T1500"}, []string{"", "2026-11-29T15:30:00Z\tweb1", "2026-11-29T15:00:05Z\tweb2", "2026-11-29T15:00:04Z\tweb1"}},
		{"since duration", historyOptions{Since: "45m"}, []string{"", "2026-11-29T16:00:00Z", "2026-11-29T15:30:00Z"}},
		{"since time", historyOptions{Since: "2026-11-29T15:00:05Z"}, []string{"", "2026-11-29T16:00:00Z", "2026-11-29T15:30:00Z", "2026-11-29T15:00:05Z"}},
		{"since days", historyOptions{Since: "1d"}, []string{"", "2026-11-29T16:00:00Z", "2026-11-29T15:30:00Z", "2026-11-29T15:00:05Z", "2026-11-29T15:00:04Z"}},
		{"limit after filter", historyOptions{Host: "web1", Limit: 2}, []string{"", "2026-11-29T16:00:00Z", "2026-11-29T15:30:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseHistoryFilter(inv, &c.o, now)
			if err != nil {
				t.Fatal(err)
			}
			var herr error
			out := throughPipe(t, func(ios *IO) { herr = runHistory(ios, historyFixture(), nil, f, &c.o) })
			if herr != nil {
				t.Fatal(herr)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != len(c.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(c.want), out.String())
			}
			for i, w := range c.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d = %q, want it to begin %q", i, lines[i], w)
				}
				if n := strings.Count(lines[i], "\t"); n != 6 {
					t.Errorf("line %d has %d tabs, want 6: %q", i, n, lines[i])
				}
			}
		})
	}
}

func TestHistoryBadFilters(t *testing.T) {
	inv, _ := statusFixture(t)
	for _, c := range []struct {
		o    historyOptions
		flag string
	}{
		{historyOptions{Host: "web9"}, "--host"},
		{historyOptions{Run: "2026;rm"}, "--run"},
		{historyOptions{Since: "yesterday"}, "--since"},
		{historyOptions{Since: "-5m"}, "--since"},
		{historyOptions{Since: "2026-11-29"}, "--since"},
		{historyOptions{Limit: -1}, "--limit"},
	} {
		_, err := parseHistoryFilter(inv, &c.o, time.Now())
		if codeOf(err) != ExitUsage || !strings.Contains(fmtErr(err), c.flag) {
			t.Errorf("%+v: err %v (exit %d), want exit 2 naming %s", c.o, err, codeOf(err), c.flag)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestHistoryJSONGolden(t *testing.T) {
	var out bytes.Buffer
	o := &historyOptions{Out: outputFlags{json: true}}
	if err := runHistory(&IO{Out: &out}, historyFixture(), nil, historyFilter{}, o); err != nil {
		t.Fatal(err)
	}
	checkJSONContract(t, "history --json", out.Bytes(), "v")
	golden(t, "history.jsonl", out.Bytes())
	// A host that could not be read: what could be read is printed, exit 1.
	out.Reset()
	err := runHistory(&IO{Out: &out}, historyFixture()[:1], []error{errors.New("web3: connection refused")}, historyFilter{}, o)
	if codeOf(err) != ExitError || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("err %v, out %q", err, out.String())
	}
}

func TestLockJSONGolden(t *testing.T) {
	_, st := statusFixture(t)
	var out bytes.Buffer
	for _, c := range []struct {
		info  *rollout.LockInfo
		broke bool
	}{{st.Lock, false}, {nil, false}, {st.Lock, true}, {nil, true}} {
		if err := showLock(&IO{Out: &out}, "web1", c.info, c.broke, outputFlags{json: true}); err != nil {
			t.Fatal(err)
		}
	}
	checkJSONContract(t, "lock --json", out.Bytes(), "schema")
	golden(t, "lock.jsonl", out.Bytes())
}

// The plan's JSON (plan --json, --format json) keeps the same contract.
func TestPlanJSONContract(t *testing.T) {
	code, out, errs := run(t, "plan", "-f", example, "--upfrom", "1.3.2", "--to", "2.0.0", "--format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	checkJSONContract(t, "plan --format json", []byte(out), "schema")
}
