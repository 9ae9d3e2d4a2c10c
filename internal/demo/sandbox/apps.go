package sandbox

import (
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/demo/proc"
)

// stopApps stops every demo app under dir: first each host's app by its
// pidfile (SIGTERM, the app drains, SIGKILL after timeout), then any other
// process whose command line names dir/hosts/ (an app whose pidfile was lost,
// a start or stop still running). It returns the pids still alive after all.
func stopApps(dir string, timeout time.Duration) []int {
	var wg sync.WaitGroup
	paths, _ := filepath.Glob(filepath.Join(dir, "hosts", "*", "srv", "shop"))
	for _, p := range paths {
		if pid, ok := demoapp.ServingPid(p); ok {
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = proc.Terminate(pid, timeout) }()
		}
	}
	wg.Wait()
	left := Processes(dir)
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		left = Processes(dir)
	}
	return left
}

// Processes returns the live processes (not zombies) whose command line
// names dir/hosts/: the demo's apps and any host command still running.
// The calling process and its ancestors are never listed.
func Processes(dir string) []int {
	return proc.Matching(filepath.Clean(dir) + "/hosts/")
}
