package plan

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/version"
)

var update = flag.Bool("update", false, "rewrite golden files")

// inventory builds a valid inventory of n hosts; canaries are labelled.
func inventory(t testing.TB, n int, extra string, canaries ...int) *fleet.Inventory {
	t.Helper()
	var b strings.Builder
	b.WriteString(`app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands:
  stop: stop
  start: start
  health: check
  migrate: migrate
  post_migrate: migrate --post
balancer: {kind: none}
releases:
  "2.0.0": {upgrade_from: ">=1.4.0", downgrade_to: ["1.4.0"]}
  "1.4.0": {upgrade_from: ">=1.0.0", downgrade_to: ["1.3.2"]}
`)
	b.WriteString(extra)
	b.WriteString("hosts:\n")
	for i := 1; i <= n; i++ {
		labels := ""
		if slices.Contains(canaries, i) {
			labels = ", labels: [canary]"
		}
		fmt.Fprintf(&b, "  - {name: web%d, address: 10.0.%d.%d%s}\n", i, i/250, i%250+1, labels)
	}
	inv, err := fleet.Parse("fleet.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func batchesOf(p *Plan) [][]string {
	var out [][]string
	for _, s := range p.Steps {
		if s.Kind != StepDeploy || s.Hop != 0 {
			continue
		}
		for len(out) < s.Batch {
			out = append(out, nil)
		}
		out[s.Batch-1] = append(out[s.Batch-1], s.Host)
	}
	return out
}

func sizes(bs [][]string) []int {
	out := make([]int, len(bs))
	for i, b := range bs {
		out[i] = len(b)
	}
	return out
}

func TestBatching(t *testing.T) {
	cases := []struct {
		hosts   int
		batches string
		want    []int
	}{
		{1, `[1, 2, "25%"]`, []int{1}},
		{2, `[1, 2, "25%"]`, []int{1, 1}},
		{7, `[1, 2, "25%"]`, []int{1, 2, 2, 2}},
		{100, `[1, 2, "25%"]`, []int{1, 2, 25, 25, 25, 22}},
		{7, `[3]`, []int{3, 3, 1}},
		{100, `["50%"]`, []int{50, 50}},
		{7, `["100%"]`, []int{7}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d hosts %s", c.hosts, c.batches), func(t *testing.T) {
			inv := inventory(t, c.hosts, "rollout: {batches: "+c.batches+"}\n")
			p, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
			if err != nil {
				t.Fatal(err)
			}
			if got := sizes(batchesOf(p)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("batch sizes = %v, want %v", got, c.want)
			}
			if err := p.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCanariesFirst(t *testing.T) {
	inv := inventory(t, 5, "", 4, 2)
	p, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"web2"}, {"web4", "web1"}, {"web3", "web5"}}
	if got := batchesOf(p); !reflect.DeepEqual(got, want) {
		t.Errorf("batches = %v, want %v", got, want)
	}
	// The gate comes right after the canary batch.
	ids := stepIDs(p)
	gi := slices.Index(ids, "gate/canary")
	if gi < 0 || ids[gi-1] != "deploy/web2" || ids[gi+1] != "deploy/web4" {
		t.Errorf("gate misplaced: %v", ids)
	}
}

func stepIDs(p *Plan) []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.ID
	}
	return out
}

func TestOrderSingleHop(t *testing.T) {
	inv := inventory(t, 3, "")
	p, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"preflight", "lock", "stage/web1", "stage/web2", "stage/web3", "migrate",
		"deploy/web1", "gate/canary", "deploy/web2", "deploy/web3", "post-migrate",
		"cleanup/web1", "cleanup/web2", "cleanup/web3", "unlock"}
	if got := stepIDs(p); !reflect.DeepEqual(got, want) {
		t.Errorf("steps =\n%v\nwant\n%v", got, want)
	}
	for _, s := range p.Steps {
		if s.PointOfNoReturn != (s.ID == "post-migrate") {
			t.Errorf("%s: point of no return = %v", s.ID, s.PointOfNoReturn)
		}
	}
}

func TestMultiHop(t *testing.T) {
	inv := inventory(t, 3, "")
	p, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "2.0.0", Upfrom: "1.3.2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Hop{{"1.3.2", "1.4.0"}, {"1.4.0", "2.0.0"}}; !reflect.DeepEqual(p.Hops, want) {
		t.Fatalf("hops = %v, want %v", p.Hops, want)
	}
	ids := stepIDs(p)
	order := []string{"stage/web1", "migrate@1.4.0", "deploy/web1@1.4.0", "deploy/web3@1.4.0", "post-migrate@1.4.0",
		"migrate@2.0.0", "deploy/web1@2.0.0", "deploy/web3@2.0.0", "post-migrate@2.0.0", "unlock"}
	last := -1
	for _, id := range order {
		i := slices.Index(ids, id)
		if i <= last {
			t.Fatalf("%s out of order in %v", id, ids)
		}
		last = i
	}
	st, _ := p.Step("stage/web2")
	if !reflect.DeepEqual(st.Versions, []string{"1.4.0", "2.0.0"}) {
		t.Errorf("stage versions = %v", st.Versions)
	}
}

func TestPath(t *testing.T) {
	rel := map[string]fleet.Release{
		"3.0.0": {UpgradeFrom: ">=2.1.0"},
		"2.1.0": {UpgradeFrom: ">=2.0.0"},
		"2.0.0": {UpgradeFrom: ">=1.4.0"},
		"1.4.0": {UpgradeFrom: ">=1.0.0"},
		"1.5.0": {UpgradeFrom: ">=1.0.0"},
	}
	cases := []struct {
		from, to string
		want     string
		err      error
	}{
		{"1.4.0", "2.0.0", "1.4.0→2.0.0", nil},
		{"1.3.2", "2.0.0", "1.3.2→1.5.0→2.0.0", nil}, // the highest stop of equal length
		{"1.3.2", "3.0.0", "1.3.2→1.5.0→2.0.0→2.1.0→3.0.0", nil},
		{"1.0.0", "1.9.9", "1.0.0→1.9.9", nil}, // not in the table: anything goes
		{"0.9.0", "2.0.0", "", ErrNoPath},
	}
	for _, c := range cases {
		hops, err := Path(rel, c.from, c.to)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s→%s: err = %v, want %v", c.from, c.to, err, c.err)
			} else if !strings.Contains(err.Error(), `needs upgrade_from ">=1.4.0"`) {
				t.Errorf("error does not name the missing stop: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s→%s: %v", c.from, c.to, err)
			continue
		}
		chain := []string{hops[0].From}
		for _, h := range hops {
			chain = append(chain, h.To)
		}
		if got := strings.Join(chain, "→"); got != c.want {
			t.Errorf("%s→%s: path %s, want %s", c.from, c.to, got, c.want)
		}
	}
}

// TestPathConstraintForms: the releases table's upgrade_from takes ~, ^, ||
// and orders pre-releases by SemVer (rc.2 before rc.10).
func TestPathConstraintForms(t *testing.T) {
	rel := map[string]fleet.Release{
		"3.0.0":       {UpgradeFrom: "^2.1.0 || ~2.0.5"},
		"2.1.0":       {UpgradeFrom: "~2.0.0"},
		"2.0.0":       {UpgradeFrom: ">=1.0.0-rc.10, <2.0.0"},
		"1.0.0-rc.10": {UpgradeFrom: ">=1.0.0-rc.2"},
	}
	cases := []struct{ from, to, want string }{
		{"2.0.5", "3.0.0", "2.0.5→3.0.0"},                       // the || alternative
		{"2.0.1", "3.0.0", "2.0.1→2.1.0→3.0.0"},                 // ~2.0.0 first
		{"1.0.0-rc.2", "2.0.0", "1.0.0-rc.2→1.0.0-rc.10→2.0.0"}, // rc.10 is after rc.2
		{"1.5.0-beta.1", "2.0.0", "1.5.0-beta.1→2.0.0"},         // pre-releases are ordered, not excluded
	}
	for _, c := range cases {
		hops, err := Path(rel, c.from, c.to)
		if err != nil {
			t.Errorf("%s→%s: %v", c.from, c.to, err)
			continue
		}
		chain := []string{hops[0].From}
		for _, h := range hops {
			chain = append(chain, h.To)
		}
		if got := strings.Join(chain, "→"); got != c.want {
			t.Errorf("%s→%s: path %s, want %s", c.from, c.to, got, c.want)
		}
	}
	if _, err := Path(rel, "0.9.0", "3.0.0"); !errors.Is(err, ErrNoPath) {
		t.Errorf("0.9.0→3.0.0: err = %v, want ErrNoPath (the first stop, 1.0.0-rc.10, needs >=1.0.0-rc.2)", err)
	}
}

func TestMixedFleets(t *testing.T) {
	inv := inventory(t, 4, "")
	obs := Assume(inv, "1.4.0")
	obs.Offline = false
	obs.Hosts[1].Version = "2.0.0"
	p, err := Build(inv, obs, Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Skipped) != 1 || p.Skipped[0].Host != "web2" || slices.Contains(p.DeployHosts(), "web2") {
		t.Errorf("web2 should be skipped: %+v / %v", p.Skipped, p.DeployHosts())
	}

	obs.Hosts[2].Version = "1.3.9"
	_, err = Build(inv, obs, Options{To: "2.0.0"})
	if !errors.Is(err, ErrMixedFleet) || !strings.Contains(err.Error(), "web3 on 1.3.9") {
		t.Errorf("third version: err = %v", err)
	}

	obs = Assume(inv, "1.4.0")
	_, err = Build(inv, obs, Options{To: "2.0.0", Upfrom: "1.3.2"})
	if !errors.Is(err, ErrUpfromMismatch) || !strings.Contains(err.Error(), "web1") {
		t.Errorf("upfrom mismatch: err = %v", err)
	}

	obs.Hosts[3].Reachable, obs.Hosts[3].Error = false, "dial tcp: connection refused"
	_, err = Build(inv, obs, Options{To: "2.0.0"})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "web4: unreachable: dial tcp") {
		t.Errorf("unreachable: err = %v", err)
	}
}

func TestNothingToDo(t *testing.T) {
	inv := inventory(t, 3, "")
	p, err := Build(inv, Assume(inv, "2.0.0"), Options{To: "2.0.0", Upfrom: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() || !strings.Contains(RenderText(p), "Nothing to do") {
		t.Errorf("want an empty plan, got %v", stepIDs(p))
	}
}

func TestRefusesDowngradeAsUpgrade(t *testing.T) {
	inv := inventory(t, 2, "")
	_, err := Build(inv, Assume(inv, "2.0.0"), Options{To: "1.4.0"})
	if !errors.Is(err, ErrIsDowngrade) {
		t.Errorf("err = %v", err)
	}
}

func TestBadVersions(t *testing.T) {
	inv := inventory(t, 2, "")
	for _, v := range []string{"1.0;reboot", "1.0 .0", "$(id)", "", "latest", "v1.2.0", "1.2", "1.4", "banana"} {
		_, err := Build(inv, Assume(inv, "1.4.0"), Options{To: v})
		if err == nil {
			t.Errorf("--to %q accepted", v)
			continue
		}
		if !errors.Is(err, version.ErrInvalid) || !strings.Contains(err.Error(), "--to: ") ||
			!strings.Contains(err.Error(), "a release version is MAJOR.MINOR.PATCH, e.g. 1.2.0") {
			t.Errorf("--to %q: %v, want the flag named and what is expected", v, err)
		}
		if v == "" {
			continue // an empty --upfrom is no --upfrom
		}
		if _, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0", Upfrom: v}); err == nil || !strings.Contains(err.Error(), "--upfrom: ") {
			t.Errorf("--upfrom %q: %v", v, err)
		}
	}
}

// TestRollbackFromEveryPoint replays progress one step at a time and checks
// the rollback plan at each point.
func TestRollbackFromEveryPoint(t *testing.T) {
	inv := inventory(t, 4, "")
	p, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	prog := Progress{Started: map[string]bool{}, Finished: map[string]bool{}}
	for i, s := range p.Steps {
		prog.Started[s.ID] = true // s is half-way: started, not finished
		r, err := Rollback(inv, p, prog)
		hop := -1
		noReturn := false
		for _, x := range p.Steps[:i+1] {
			if x.Kind == StepDeploy {
				hop = max(hop, x.Hop)
			}
		}
		for _, x := range p.Steps[:i+1] {
			if x.PointOfNoReturn && x.Hop >= hop {
				noReturn = true
			}
		}
		if noReturn {
			if !errors.Is(err, ErrPastPointOfNoReturn) {
				t.Fatalf("after %s: err = %v, want point of no return", s.ID, err)
			}
		} else {
			if err != nil {
				t.Fatalf("after %s: %v", s.ID, err)
			}
			var want []string
			for _, x := range p.Steps[:i+1] {
				if x.Kind == StepDeploy && x.Hop == hop {
					want = append(want, "rollback/"+x.Host)
				}
			}
			slices.Reverse(want)
			var got []string
			for _, x := range r.Steps {
				if x.Kind == StepDeploy {
					got = append(got, x.ID)
					if x.To != p.Hops[hop].From || x.From != p.Hops[hop].To {
						t.Errorf("after %s: %s goes %s → %s", s.ID, x.ID, x.From, x.To)
					}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("after %s: rollback hosts %v, want %v", s.ID, got, want)
			}
			if len(want) == 0 && !r.Empty() {
				t.Errorf("after %s: want an empty rollback", s.ID)
			}
		}
		prog.Finished[s.ID] = true
	}
}

func TestDowngrade(t *testing.T) {
	inv := inventory(t, 4, "emergency: {batches: [\"50%\"], drain_timeout: 3s}\n")
	obs := Assume(inv, "2.0.0")
	p, err := Downgrade(inv, obs, DowngradeOptions{To: "1.4.0", Reason: "checkout 500s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sizes(batchesOf(p)); !reflect.DeepEqual(got, []int{2, 2}) {
		t.Errorf("emergency batches = %v", got)
	}
	if p.HasKind(StepGate) || p.HasKind(StepMigrate) || p.HasKind(StepPostMigrate) {
		t.Errorf("downgrade must have no gate or migrations: %v", stepIDs(p))
	}
	if p.Settings.DrainTimeout.String() != "3s" || p.Reason != "checkout 500s" {
		t.Errorf("settings: %+v", p.Settings)
	}

	cases := []struct {
		name string
		to   string
		last *LastRun
		ok   bool
	}{
		{"declared", "1.4.0", nil, true},
		{"not declared", "1.3.2", nil, false},
		{"back to upfrom before post-migrate", "1.2.0", &LastRun{From: "1.2.0", To: "2.0.0"}, true},
		{"back to upfrom after post-migrate", "1.2.0", &LastRun{From: "1.2.0", To: "2.0.0", PostMigrated: true}, false},
	}
	for _, c := range cases {
		_, err := Downgrade(inv, obs, DowngradeOptions{To: c.to, Reason: "x", Last: c.last})
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v", c.name, err)
		}
		if err != nil && !errors.Is(err, ErrDowngradeRefused) {
			t.Errorf("%s: err = %v, want ErrDowngradeRefused", c.name, err)
		}
	}
	if _, err := Downgrade(inv, obs, DowngradeOptions{To: "1.4.0"}); err == nil {
		t.Error("a downgrade without a reason was accepted")
	}
	// --to is a release version here too, said as such (not "not declared").
	for _, v := range []string{"latest", "v1.4.0", "1.4", ""} {
		_, err := Downgrade(inv, obs, DowngradeOptions{To: v, Reason: "x"})
		if !errors.Is(err, version.ErrInvalid) || !strings.HasPrefix(err.Error(), "--to: ") {
			t.Errorf("downgrade --to %q: err = %v, want the release-version error", v, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	inv := inventory(t, 3, "")
	a := Assume(inv, "1.4.0")
	b := Assume(inv, "1.4.0")
	slices.Reverse(b.Hosts)
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("fingerprint depends on host order")
	}
	b.Hosts[0].Version = "2.0.0"
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("fingerprint ignores a version change")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	inv := inventory(t, 7, "", 3)
	p, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := MarshalJSONIndent(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := UnmarshalJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("round trip changed the plan:\n%+v\n%+v", p, q)
	}
	data2, _ := MarshalJSONIndent(q)
	if string(data) != string(data2) {
		t.Error("JSON is not stable across a round trip")
	}
	if _, err := UnmarshalJSON([]byte(`{"schema": 99}`)); err == nil {
		t.Error("accepted a plan of another schema")
	}
}

func TestGolden(t *testing.T) {
	inv, err := fleet.Load("../../fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's balancer is HAProxy, which can read a server's state back.
	two, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "2.0.0", Upfrom: "1.3.2", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	one, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "1.4.0", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	prog := Progress{Started: map[string]bool{"deploy/web1": true, "deploy/web2": true, "deploy/web3": true}}
	rb, err := Rollback(inv, one, prog)
	if err != nil {
		t.Fatal(err)
	}
	dg, err := Downgrade(inv, Assume(inv, "1.4.0"), DowngradeOptions{To: "1.3.2", Reason: "checkout returns 500", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Plan{"two-hop": two, "one-hop": one, "rollback": rb, "downgrade": dg} {
		js, err := MarshalJSONIndent(p)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name+".txt", RenderText(p))
		golden(t, name+".md", RenderMarkdown(p))
		golden(t, name+".json", string(js))
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/plan -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test ./internal/plan -update to accept):\n%s", name, got)
	}
}

func BenchmarkBuild1000Hosts3Hops(b *testing.B) {
	inv := inventory(b, 1000, "")
	inv.Releases = map[string]fleet.Release{
		"4.0.0": {UpgradeFrom: ">=3.0.0"},
		"3.0.0": {UpgradeFrom: ">=2.0.0"},
		"2.0.0": {UpgradeFrom: ">=1.0.0"},
	}
	obs := Assume(inv, "1.0.0")
	b.ReportAllocs()
	for b.Loop() {
		p, err := Build(inv, obs, Options{To: "4.0.0"})
		if err != nil || len(p.Hops) != 3 {
			b.Fatal(err, p.Hops)
		}
	}
}

func BenchmarkRenderText1000Hosts(b *testing.B) {
	inv := inventory(b, 1000, "")
	p, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "2.0.0"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = RenderText(p)
	}
}

// The plan lists verify only when the balancer can read a server's state
// back, and version only when the inventory has a version command: the
// executor runs exactly this list.
func TestActionsFollowWhatCanRun(t *testing.T) {
	inv := inventory(t, 3, "")
	p, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Action{ActionDrain, ActionWaitIdle, ActionStop, ActionSwitch, ActionStart, ActionHealth, ActionEnable}
	if !reflect.DeepEqual(p.Actions, want) {
		t.Errorf("balancer none: actions %v, want %v", p.Actions, want)
	}
	if txt := RenderText(p); !strings.Contains(txt, "→ enable\n") || strings.Contains(txt, "verify UP") {
		t.Errorf("the preview promises a verify that cannot run:\n%s", RenderText(p))
	}
	inv2, err := fleet.Parse("fleet.yaml", []byte(`app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: stop, start: start, health: check, version: cat VERSION}
balancer: {kind: haproxy, backend: shop, endpoints: [{tcp: "127.0.0.1:9999"}]}
hosts:
  - {name: web1, address: 10.0.0.1}
  - {name: web2, address: 10.0.0.2}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err = Build(inv2, Assume(inv2, "1.4.0"), Options{To: "2.0.0", CanVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	want = []Action{ActionDrain, ActionWaitIdle, ActionStop, ActionSwitch, ActionStart, ActionHealth, ActionVersion, ActionEnable, ActionVerify}
	if !reflect.DeepEqual(p.Actions, want) {
		t.Errorf("with a version command and a verifying balancer: actions %v, want %v", p.Actions, want)
	}
	// A rollback runs the same list as the run it undoes.
	rb, err := Rollback(inv2, p, Progress{Started: map[string]bool{"deploy/web1": true}, Finished: map[string]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rb.Actions, want) {
		t.Errorf("rollback actions %v, want %v", rb.Actions, want)
	}
}

// A host whose deploy started but never switched runs the version the
// rollback would take it to: it is not in the rollback plan (its own
// compensation handled it), and the plan says so.
func TestRollbackLeavesOutHostsThatNeverSwitched(t *testing.T) {
	inv := inventory(t, 3, "rollout: {batches: [3]}\n")
	p, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	prog := Progress{
		Started:  map[string]bool{"deploy/web1": true, "deploy/web2": true, "deploy/web3": true},
		Finished: map[string]bool{"deploy/web1": true},
		Switched: map[string]bool{"deploy/web1": true, "deploy/web2": true},
		Reverted: map[string]bool{"deploy/web2": true},
	}
	rb, err := Rollback(inv, p, prog)
	if err != nil {
		t.Fatal(err)
	}
	if got := rb.DeployHosts(); !reflect.DeepEqual(got, []string{"web1"}) {
		t.Errorf("rollback hosts %v, want [web1]", got)
	}
	if !strings.Contains(strings.Join(rb.Notes, "\n"), "web3 never switched") {
		t.Errorf("notes %q do not name web3", rb.Notes)
	}
	// From a journal (no Switched), what the fleet runs decides.
	prog.Switched = nil
	rb, err = Rollback(inv, p, prog)
	if err != nil {
		t.Fatal(err)
	}
	obs := Assume(inv, "2.0.0")
	obs.Hosts[2].Version = "1.4.0" // web3 never switched
	q, dropped := DropSettled(rb, obs)
	if !reflect.DeepEqual(q.DeployHosts(), []string{"web1"}) || !reflect.DeepEqual(dropped, []string{"web3"}) {
		t.Errorf("after DropSettled: hosts %v, dropped %v", q.DeployHosts(), dropped)
	}
}

// A plan file is input like --to: a version that could carry shell text is
// refused before anything runs.
func TestPlanFileVersionsValidated(t *testing.T) {
	inv := inventory(t, 2, "")
	p, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := MarshalJSONIndent(p)
	for _, evil := range []string{`"2.0.0 $(touch x)"`, `"1.4.0;reboot"`, `""`, `"latest"`, `"2.0"`, `"v2.0.0"`} {
		bad := strings.Replace(string(data), `"to": "2.0.0"`, `"to": `+evil, 1)
		if bad == string(data) {
			t.Fatal("test did not edit the plan")
		}
		if _, err := UnmarshalJSON([]byte(bad)); err == nil || !strings.Contains(err.Error(), "version") {
			t.Errorf("plan with to=%s accepted (err %v)", evil, err)
		}
	}
	bad := strings.Replace(string(data), `"version": "1.4.0"`, `"version": "1.4.0 $(id)"`, 1)
	if _, err := UnmarshalJSON([]byte(bad)); err == nil || !strings.Contains(err.Error(), "basis host web1") {
		t.Errorf("plan with a bad observed version accepted (err %v)", err)
	}
	bad = strings.Replace(string(data), `"wait-idle"`, `"reboot"`, 1)
	if _, err := UnmarshalJSON([]byte(bad)); err == nil || !strings.Contains(err.Error(), "reboot") {
		t.Errorf("plan with an unknown action accepted (err %v)", err)
	}
}

// A rollback goes back in the forward run's batches, reversed: the last
// batch that started goes first, all its hosts in parallel, the canary
// last. A host its own compensation took back, or that never switched, is
// left out of its batch.
func TestRollbackInReverseBatches(t *testing.T) {
	inv := inventory(t, 8, "rollout: {batches: [1, 3]}\n", 8)
	p, err := Build(inv, Assume(inv, "1.4.0"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	// Forward: [web8] [web1 web2 web3] [web4 web5 web6] [web7]. The third
	// batch failed on web5 (compensated), web6 never switched.
	prog := Progress{Started: map[string]bool{}, Finished: map[string]bool{},
		Switched: map[string]bool{}, Reverted: map[string]bool{"deploy/web5": true}}
	for _, h := range []string{"web8", "web1", "web2", "web3", "web4", "web5", "web6"} {
		prog.Started["deploy/"+h] = true
		if h != "web6" {
			prog.Switched["deploy/"+h] = true
		}
	}
	rb, err := Rollback(inv, p, prog)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, s := range rb.Steps {
		if s.Kind != StepDeploy {
			continue
		}
		if s.Batch > len(got) {
			got = append(got, nil)
		}
		got[s.Batch-1] = append(got[s.Batch-1], s.Host)
	}
	want := [][]string{{"web4"}, {"web3", "web2", "web1"}, {"web8"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rollback batches %v, want %v", got, want)
	}
	if sizes := fmt.Sprint(rb.Settings.Batches); sizes != "[1 3 1]" {
		t.Errorf("settings batches %s", sizes)
	}
	txt := RenderText(rb)
	for _, w := range []string{"batch 2              roll back 2.0.0 → 1.4.0 on 3 hosts, in parallel", "web3, web2, web1", "web4; then web3, web2, web1; then web8"} {
		if !strings.Contains(txt, w) {
			t.Errorf("plan text lacks %q:\n%s", w, txt)
		}
	}
}

// An emergency downgrade goes in the emergency batches, each batch's
// hosts in parallel: never one host at a time unless the batch says 1.
func TestDowngradeInBatches(t *testing.T) {
	inv := inventory(t, 5, "emergency: {batches: [2]}\n", 3)
	p, err := Downgrade(inv, Assume(inv, "1.4.0"), DowngradeOptions{To: "1.3.2", Reason: "500s"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps {
		if s.Kind == StepDeploy {
			got = append(got, fmt.Sprintf("%d:%s", s.Batch, s.Host))
		}
	}
	if want := []string{"1:web3", "1:web1", "2:web2", "2:web4", "3:web5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("downgrade batches %v, want %v", got, want)
	}
}
