package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/demo/proc"
)

// ownerEnv makes the test binary play a `relctl demo` that gets SIGKILLed:
// its value is the demoapp binary to use.
const ownerEnv = "SANDBOX_TEST_OWNER"

// runOwner starts a 2-host demo in $TMPDIR, prints "ready <dir> <pid>..."
// (HAProxy's pid, if it runs, and every app's), and blocks until killed.
func runOwner(appBin string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := Start(ctx, Options{Hosts: 2, AppCommand: appBin, Traffic: true, Rate: 20})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	pids := []string{d.Dir}
	if pid := d.BalancerPID(); pid > 0 {
		pids = append(pids, fmt.Sprint(pid))
	}
	for _, h := range d.Hosts {
		pid, ok := demoapp.ServingPid(h.Path)
		if !ok {
			fmt.Println("error", h.Name, "serves nothing")
			return 1
		}
		pids = append(pids, fmt.Sprint(pid))
	}
	fmt.Println("ready", strings.Join(pids, " "))
	select {}
}

// TestDemoSIGKILLed proves that a demo killed with SIGKILL, which runs no
// Close, leaves no process behind: HAProxy gets its parent-death signal, the
// apps see their lifeline end; and that the next demo removes the directory
// (ReapOrphans), but never one whose demo still runs.
func TestDemoSIGKILLed(t *testing.T) {
	parent := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	owner := exec.Command(self)
	owner.Env = append(os.Environ(), ownerEnv+"="+demoappBin, "TMPDIR="+parent)
	owner.Stderr = os.Stderr
	out, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Process.Kill(); _ = owner.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the demo process said nothing: %v", err)
	}
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "ready" {
		t.Fatalf("the demo process: %q", line)
	}
	dir := f[1]
	var pids []int
	for _, s := range f[2:] {
		var pid int
		fmt.Sscan(s, &pid)
		pids = append(pids, pid)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			if proc.Alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	if want := 2; haveHAProxy() {
		if len(pids) != want+1 {
			t.Fatalf("pids %v: want HAProxy's and 2 apps'", pids)
		}
	}
	for _, pid := range pids {
		if !proc.Alive(pid) {
			t.Fatalf("pid %d is not running before the demo is killed", pid)
		}
	}
	ReapOrphans(parent, t.Logf)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("ReapOrphans touched a running demo: %v", err)
	}

	if err := owner.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = owner.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for proc.Alive(pid) {
			if time.Now().After(deadline) {
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				t.Fatalf("pid %d (%s) still runs %s after the demo was SIGKILLed", pid, strings.ReplaceAll(string(cmd), "\x00", " "), 30*time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for len(Processes(dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the killed demo still run: %v", Processes(dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed demo's directory is gone before any reaper ran: %v", err)
	}
	ReapOrphans(parent, t.Logf)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("ReapOrphans left %s (%v)", dir, err)
	}
	if left, _ := filepath.Glob(filepath.Join(parent, "relctl-demo-*")); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
