package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// stopApp stops host i's app (as an operator or a crash would) and waits
// until HAProxy's own check holds its server DOWN.
func stopApp(t *testing.T, s *stage, i int) {
	t.Helper()
	h := s.f.Hosts[i]
	if out, err := s.f.RunAs(filepath.Join(h.Path, "current", "bin", "demoapp"), "stop", "--dir", h.Path, "--timeout", "10s"); err != nil {
		t.Fatalf("stop %s's app: %v\n%s", h.Name, err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := s.f.LB.ServerStatus()
		if err == nil && strings.HasPrefix(st[h.Name], "DOWN") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not DOWN in HAProxy 30s after its app stopped: %v %v", h.Name, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// web2's app is down, so HAProxy's check holds it DOWN: apply refuses it
// at preflight (exit 1, web2 named, nothing touched); apply --force
// upgrades every host, web2 included, puts web2 back only once its check
// passes, and says web2 was DOWN before and came back UP (exit 0).
func TestForceUpgradesAHostThatWasDown(t *testing.T) {
	s := newStage(t, 3, "haproxy", "", nil)
	stopApp(t, s, 1)
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 1 || !strings.Contains(errs, "web2 is DOWN") || !strings.Contains(errs, "force") {
		t.Fatalf("apply with web2 DOWN: exit %d, want 1 naming web2 DOWN\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.0.0")
	code, out, errs = s.relctl("apply", "--to", "1.1.0", "--yes", "--plain", "--force")
	all := out + errs
	if code != 0 {
		t.Fatalf("apply --force: exit %d, want 0\n%s", code, all)
	}
	for _, want := range []string{"web2 was DOWN (check ", "before this run, out of service: --force upgrades it as it is",
		"out before:\tweb2 was DOWN (check "} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q:\n%s", want, all)
		}
	}
	if !strings.Contains(all, "before the run; back UP, in rotation") {
		t.Errorf("the summary does not say web2 came back UP:\n%s", all)
	}
	for _, h := range []string{"web1", "web3"} {
		if strings.Contains(all, h+" was ") {
			t.Errorf("%s was in service, but is reported out before:\n%s", h, all)
		}
	}
	s.wantAll("1.1.0")
	inService(t, s)
	// The run's journal (the refused apply wrote one too, maybe within the
	// same second: take the path the summary names) holds the warning and
	// the summary's record.
	_, rest, ok := strings.Cut(all, "journal:\t")
	path, _, _ := strings.Cut(rest, "\n")
	if !ok || path == "" {
		t.Fatalf("the summary names no journal:\n%s", all)
	}
	var warned, recorded bool
	for _, e := range readEvents(t, path) {
		warned = warned || e.Host == "web2" && strings.Contains(e.Message, "web2 was DOWN")
		if e.Summary != nil {
			for _, o := range e.Summary.OutBefore {
				recorded = recorded || o.Host == "web2" && o.BackUp && strings.HasPrefix(o.Was, "DOWN")
			}
		}
	}
	if !warned || !recorded {
		t.Errorf("journal: warning %t, summary out_before %t", warned, recorded)
	}
}

// web1's app is down and stays down (its start does nothing): apply
// --force takes it on, its health check fails, it is never put back into
// rotation, and the run names it: LEFT DRAINED, was DOWN before, still out
// of rotation; exit 6. The other hosts are untouched.
func TestForceNeverEnablesAHostThatStaysDown(t *testing.T) {
	s := newStage(t, 3, "haproxy", "", func(inv string) string {
		inv = wrapCommand(t, "start", "if [ {{.Host}} = web1 ]; then exit 0; fi; ")(inv)
		return editNode(t, func(n *yaml.Node) { n.Value = "5s" }, "health", "timeout")(inv)
	})
	stopApp(t, s, 0)
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain", "--force")
	all := out + errs
	if code != 6 {
		t.Fatalf("apply --force with web1 staying down: exit %d, want 6\n%s", code, all)
	}
	for _, want := range []string{"LEFT DRAINED:\tweb1", "out before:\tweb1 was DOWN (check ", "before the run; still out of rotation"} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q:\n%s", want, all)
		}
	}
	if v := s.f.CurrentVersion(1); v != "1.0.0" {
		t.Errorf("web2 runs %s: it must be untouched", v)
	}
	inService(t, s, "web1")
}
