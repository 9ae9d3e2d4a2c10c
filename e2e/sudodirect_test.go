package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/testkit/testfleet"
	"go.yaml.in/yaml/v3"
)

// Direct become (fleet/become_direct.go): a simple become command runs as
// `sudo -n -u root -- <program> <args>`, so sudoers can name exactly it.
//
// These tests have their own non-root deploy user and sudoers file, so
// that they never grant or take away the sudo of the envsec and issue 17
// tests, which may run beside them.
const (
	directUser    = "relctldirect"
	directSudoers = "/etc/sudoers.d/relctl-e2e-direct"
)

// directStage starts 3 hosts behind HAProxy logged into as directUser,
// seeded with 1.0.0, whose stop and start run as root through sudo -n
// (per command, no env: values: both are simple commands, so they run
// directly). replace holds command text to use instead of the demo's, by
// command name.
func directStage(t *testing.T, replace map[string]string, extra string) *stage {
	t.Helper()
	testfleet.Require(t, "haproxy")
	if _, err := exec.LookPath("sudo"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("sudo is not installed (.ci/run installs it); CI is set, so this is a failure, not a skip")
		}
		t.Skip("sudo is not installed")
	}
	f := testfleet.Start(t, testfleet.Options{Hosts: 3, Balancer: "haproxy", User: directUser})
	f.Seed("1.0.0", f.Artifact("1.0.0", nil))
	f.Artifact("1.1.0", nil)
	s := &stage{t: t, f: f, dir: t.TempDir()}
	s.fleetFile = filepath.Join(s.dir, "fleet.yaml")
	s.state = filepath.Join(s.dir, "state")
	s.writeInventory(releasesTable+extra, func(inv string) string {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(inv), &doc); err != nil {
			t.Fatal(err)
		}
		cmds := mapValue(t, doc.Content[0], "commands")
		for _, name := range []string{"stop", "start"} {
			n := mapValue(t, cmds, name)
			script := n.Value
			if r, ok := replace[name]; ok {
				script = r
			}
			*n = yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Value: "command"}, {Kind: yaml.ScalarNode, Value: script, Style: yaml.DoubleQuotedStyle},
				{Kind: yaml.ScalarNode, Value: "become"}, {Kind: yaml.MappingNode, Style: yaml.FlowStyle, Content: []*yaml.Node{
					{Kind: yaml.ScalarNode, Value: "method"}, {Kind: yaml.ScalarNode, Value: "sudo"},
					{Kind: yaml.ScalarNode, Value: "user"}, {Kind: yaml.ScalarNode, Value: "root"},
				}},
			}}
		}
		out, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	})
	return s
}

// demoappStop and demoappStart are the exact command lines the demo
// inventory's stop and start become on host h (fleetfile.Base).
func demoappStop(h testfleet.Host) string {
	return h.Path + "/current/bin/demoapp stop --dir " + h.Path
}

func demoappStart(h testfleet.Host) string {
	return h.Path + "/current/bin/demoapp start --dir " + h.Path + " --listen " + h.AppAddr
}

// sudoersEscape escapes what sudoers reads specially in a command's
// arguments.
func sudoersEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`, `=`, `\=`).Replace(s)
}

// allowOnly writes a sudoers file for directUser that allows exactly cmds
// (and nothing else: no /bin/sh), checked by visudo, removed at the end.
func allowOnly(t *testing.T, cmds []string) {
	t.Helper()
	esc := make([]string, len(cmds))
	for i, c := range cmds {
		esc[i] = sudoersEscape(c)
	}
	rule := directUser + " ALL=(root) NOPASSWD: " + strings.Join(esc, ", ") + "\n"
	tmp := directSudoers + "~" // ignored by sudo until renamed
	if err := os.WriteFile(tmp, []byte(rule), 0o440); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("visudo", "-cf", tmp).CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("visudo: %v %s\n%s", err, out, rule)
	}
	if err := os.Rename(tmp, directSudoers); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(directSudoers) })
	t.Logf("sudoers: %s", rule)
}

// TestSudoDirectNarrowSudoers: with a sudoers file that allows only the
// demo app's exact stop and start command lines on each host (no /bin/sh),
// an upgrade through sudo -n succeeds, the app it started runs as root,
// and plan says nothing about /bin/sh.
func TestSudoDirectNarrowSudoers(t *testing.T) {
	s := directStage(t, nil, "")
	var cmds []string
	for _, h := range s.f.Hosts {
		cmds = append(cmds, demoappStop(h), demoappStart(h))
	}
	allowOnly(t, cmds)

	code, out, errs := s.relctl("plan", "--to", "1.1.0")
	if code != 0 || strings.Contains(out+errs, "/bin/sh") {
		t.Fatalf("plan exit %d (want 0, and no /bin/sh note)\n%s\n%s", code, out, errs)
	}
	code, out, errs = s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s\n%s", code, out, errs, s.f.Logs())
	}
	s.wantAll("1.1.0")
	for _, h := range s.f.Hosts {
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s: no app serving", h.Name)
		}
		status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if !strings.Contains(string(status), "\nUid:\t0\t") {
			t.Errorf("%s: app pid %d does not run as root (it was not started through sudo):\n%s", h.Name, pid, status)
		}
	}
	if err := s.f.LB.WaitAllUp([]string{"web1", "web2", "web3"}, 20*time.Second); err != nil {
		t.Error(err)
	}
}

// TestSudoDirectRefusedNamesTheLine: a sudoers file whose narrow lines
// cover stop but not start: preflight refuses with exit 1, naming for
// every host the exact command and the sudoers line to add, and nothing
// changed on any host (version, app process, balancer state, lock); with
// those lines added, the same apply succeeds.
func TestSudoDirectRefusedNamesTheLine(t *testing.T) {
	s := directStage(t, nil, "")
	var cmds []string
	for _, h := range s.f.Hosts {
		cmds = append(cmds, demoappStop(h))
	}
	allowOnly(t, cmds)
	pids := map[string]int{}
	for _, h := range s.f.Hosts {
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s: no app serving", h.Name)
		}
		pids[h.Name] = pid
	}

	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 1 {
		t.Errorf("apply: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	t.Logf("refused:\n%s", errs)
	for _, h := range s.f.Hosts {
		want := h.Name + ": sudo -n -u root -- " + demoappStart(h) + " (commands.start): sudo refused: sudoers does not allow it — add to sudoers on " +
			h.Name + ": " + directUser + " ALL=(root) NOPASSWD: " + sudoersEscape(demoappStart(h))
		if !strings.Contains(errs+out, want) {
			t.Errorf("no refusal for %s; want\n%s\nin\n%s\n%s", h.Name, want, out, errs)
		}
		if strings.Contains(errs+out, h.Name+": sudo -n -u root -- "+demoappStop(h)+" (commands.stop)") {
			t.Errorf("%s: stop is allowed but was refused:\n%s", h.Name, errs)
		}
	}
	s.wantAll("1.0.0")
	for _, h := range s.f.Hosts {
		if pid, ok := demoapp.ServingPid(h.Path); !ok || pid != pids[h.Name] {
			t.Errorf("%s: the app was restarted or stopped (pid %d, was %d)", h.Name, pid, pids[h.Name])
		}
	}
	st, err := s.f.LB.ServerStatus()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range s.f.Hosts {
		if st[h.Name] != "UP" {
			t.Errorf("%s is %s in HAProxy, want UP", h.Name, st[h.Name])
		}
	}
	if code, out, _ := s.relctl("lock"); code != 0 || !strings.Contains(out, "free") {
		t.Errorf("lock (exit %d): %s", code, out)
	}

	// The lines the refusal names are the ones to add: with them (as
	// written, taken from the message) the same apply goes through.
	var rules []string
	for _, l := range strings.Split(errs+out, "\n") {
		if _, rule, ok := strings.Cut(l, ": sudo refused: sudoers does not allow it — add to sudoers on "); ok {
			_, rule, _ = strings.Cut(rule, ": ")
			if !slices.Contains(rules, rule) { // the error is printed more than once
				rules = append(rules, rule)
			}
		}
	}
	if len(rules) != len(s.f.Hosts) {
		t.Fatalf("%d sudoers lines in the refusal, want %d", len(rules), len(s.f.Hosts))
	}
	appendSudoers(t, rules)
	code, out, errs = s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 0 {
		t.Fatalf("apply with the lines the refusal named: exit %d\n%s\n%s", code, out, errs)
	}
	s.wantAll("1.1.0")
}

// appendSudoers adds rules (whole lines) to the test's sudoers file,
// checked by visudo before it is swapped in.
func appendSudoers(t *testing.T, rules []string) {
	t.Helper()
	old, err := os.ReadFile(directSudoers)
	if err != nil {
		t.Fatal(err)
	}
	tmp := directSudoers + "~"
	if err := os.WriteFile(tmp, append(old, []byte(strings.Join(rules, "\n")+"\n")...), 0o440); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("visudo", "-cf", tmp).CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("visudo: %v %s\n%s", err, out, strings.Join(rules, "\n"))
	}
	if err := os.Rename(tmp, directSudoers); err != nil {
		t.Fatal(err)
	}
}

// TestSudoDirectTimeoutKillsTheCommand: a stop that is `sleep 300` run as
// root directly by sudo (no root shell to forward the TERM) with a 1s
// timeout: the run rolls back (exit 3), and every root sleep it started
// is gone, by pid, soon after: the TERM relctl sends the command's process
// group as the SSH user reaches sudo, which relays it to the command.
func TestSudoDirectTimeoutKillsTheCommand(t *testing.T) {
	s := directStage(t, map[string]string{"stop": "sleep 300"}, "timeouts: {stop: 1s}\n")
	cmds := []string{"/usr/bin/sleep 300"}
	for _, h := range s.f.Hosts {
		cmds = append(cmds, demoappStart(h))
	}
	allowOnly(t, cmds)

	// Watch for the root sleeps while the run goes on.
	var mu sync.Mutex
	seen := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for _, p := range liveProcessesMentioning("/usr/bin/sleep\x00300") {
				f := strings.Fields(p)
				if len(f) == 3 && f[1] == "/usr/bin/sleep" && f[2] == "300" {
					mu.Lock()
					seen[f[0]] = true
					mu.Unlock()
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	close(stop)
	<-done
	t.Logf("apply took %s", time.Since(start).Round(time.Millisecond))
	if code != 3 {
		t.Errorf("apply exit %d, want 3 (rolled back)\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs+out, "web1") || !strings.Contains(errs+out, "timed out") && !strings.Contains(errs+out, "timeout") {
		t.Errorf("the failure does not name web1's timeout:\n%s\n%s", out, errs)
	}
	if len(seen) == 0 {
		t.Fatalf("never saw the root sleep 300 run (is sudo running it directly?)\n%s\n%s", out, errs)
	}
	deadline := time.Now().Add(15 * time.Second)
	for pid := range seen {
		for {
			_, err := os.Stat("/proc/" + pid)
			if os.IsNotExist(err) || !isLiveSleep(pid) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("root sleep 300 pid %s still runs after the 1s timeout", pid)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("root sleeps seen and gone: %d", len(seen))
	s.wantAll("1.0.0")
	if err := s.f.LB.WaitAllUp([]string{"web1", "web2", "web3"}, 20*time.Second); err != nil {
		t.Errorf("after the rollback: %v", err)
	}
}

// isLiveSleep: pid still runs /usr/bin/sleep 300 and is not a zombie (a
// recycled pid runs something else).
func isLiveSleep(pid string) bool {
	cmd, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil || string(cmd) != "/usr/bin/sleep\x00300\x00" {
		return false
	}
	stat, _ := os.ReadFile("/proc/" + pid + "/stat")
	f := strings.Fields(string(stat))
	return !(len(f) > 2 && f[2] == "Z")
}

// TestSudoDirectProgramNotThereYet: a start command whose program is in
// the release this run unpacks ({{.Release}}/bin/demoapp) does not exist
// when preflight asks sudo (which would answer "command not found"
// whatever sudoers says): the run is not refused, and with the narrow
// line for that path the upgrade succeeds.
func TestSudoDirectProgramNotThereYet(t *testing.T) {
	s := directStage(t, map[string]string{"start": "{{.Release}}/bin/demoapp start --dir {{.Path}} --listen {{.Vars.listen}}"}, "")
	var cmds []string
	for _, h := range s.f.Hosts {
		cmds = append(cmds, demoappStop(h),
			h.Path+"/releases/1.1.0/bin/demoapp start --dir "+h.Path+" --listen "+h.AppAddr)
	}
	allowOnly(t, cmds)
	code, out, errs := s.relctl("apply", "--to", "1.1.0", "--yes", "--plain")
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s\n%s", code, out, errs, s.f.Logs())
	}
	s.wantAll("1.1.0")
	for _, h := range s.f.Hosts {
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			t.Fatalf("%s: no app serving", h.Name)
		}
		exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
		status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if !strings.Contains(string(status), "\nUid:\t0\t") || !strings.Contains(exe, "/releases/1.1.0/") {
			t.Errorf("%s: app pid %d (%s) is not the new release's, run as root:\n%s", h.Name, pid, exe, status)
		}
	}
}
