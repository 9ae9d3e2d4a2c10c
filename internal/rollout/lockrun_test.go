package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
	"github.com/relctl/relctl/internal/remote"
)

// realLockFleet is the engine test fake with the lock made real: lock
// scripts run in sh on this machine against the inventory's path (a
// temporary directory), and fail like an unreachable host while fail is
// set. Every other command goes to the fake.
type realLockFleet struct {
	*fakeFleet
	fail atomic.Bool
}

func (f *realLockFleet) Run(ctx context.Context, host string, c remote.Command) (remote.Result, error) {
	if !strings.Contains(c.Script, ".relctl/lock") {
		return f.fakeFleet.Run(ctx, host, c)
	}
	if f.fail.Load() {
		return remote.Result{ExitCode: -1}, fmt.Errorf("%s: %w", host, remote.ErrConnectionLost)
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", c.Script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if c.Stdout != nil {
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			c.Stdout(l)
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return remote.Result{ExitCode: ee.ExitCode()}, &remote.ExitError{Host: host, Code: ee.ExitCode(), StderrTail: stderr.String()}
	}
	return remote.Result{}, err
}

// A run whose lock is lost mid-run (its renewals fail past the lease, or
// someone breaks it) finishes the step in flight, starts nothing more, and
// says so.
func TestLostLockStopsNewSteps(t *testing.T) {
	cases := []struct {
		how, during string
		upgraded    []string // hosts that end on 1.1.0: the one in flight when the lock went
	}{
		{"renewals fail past the lease", "web1 migrate-cmd 1.1.0", nil},
		{"lock broken", "web1 migrate-cmd 1.1.0", nil},
		{"renewals fail past the lease", "web1 health 1.1.0", []string{"web1"}},
	}
	for _, c := range cases {
		how := c.how
		t.Run(how+" during "+c.during, func(t *testing.T) {
			dir := t.TempDir()
			inv, err := fleet.Parse("fleet.yaml", []byte(strings.Replace(fmt.Sprintf(testInventory, ""), "path: /srv/shop", "path: "+dir, 1)))
			if err != nil {
				t.Fatal(err)
			}
			hosts := []string{"web1", "web2", "web3"}
			f := &realLockFleet{fakeFleet: newFake(t, hosts, "1.0.0")}
			f.base = dir
			obs := plan.Observed{}
			for _, h := range hosts {
				obs.Hosts = append(obs.Hosts, plan.HostState{Name: h, Version: "1.0.0", Reachable: true})
			}
			p, err := plan.Build(inv, obs, plan.Options{To: "1.1.0"})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var events []event.Event
			lostTold := func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range events {
					if e.Type == event.Warning && strings.Contains(e.Message, "lock lost") && strings.Contains(e.Message, "no new step starts") {
						return true
					}
				}
				return false
			}
			bus := event.NewBus("run1", nil, event.SinkFunc(func(e event.Event) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}))
			lockPath := filepath.Join(dir, ".relctl", "lock")
			f.hook = func(s string) error {
				if s != c.during {
					return nil
				}
				// The lock goes while this step is in flight.
				if how == "lock broken" {
					if err := os.Remove(lockPath); err != nil {
						return err
					}
				} else {
					f.fail.Store(true)
				}
				deadline := time.Now().Add(60 * time.Second)
				for !lostTold() {
					if time.Now().After(deadline) {
						return errors.New("the run was never told its lock was lost")
					}
					time.Sleep(10 * time.Millisecond)
				}
				return nil // the step in flight finishes
			}
			arts := map[string]Artifact{"1.1.0": {Path: "/dist/shop-1.1.0.tar.gz", SHA256: "abc"}}
			e := New(Config{Inventory: inv, Plan: p, Hosts: f, Balancer: f.fakeFleet, Bus: bus, Artifacts: arts, RunID: "run1", Owner: "me@here", LockLease: 2 * time.Second})
			res := e.Run(context.Background())

			if res.Outcome != event.OutcomeAborted || !errors.Is(res.Err, ErrLockLost) {
				t.Fatalf("outcome %s, err %v; want aborted because the lock was lost", res.Outcome, res.Err)
			}
			f.mu.Lock()
			log := append([]string(nil), f.log...)
			f.mu.Unlock()
			if !strings.Contains(strings.Join(log, "\n"), c.during) {
				t.Fatalf("%s never ran:\n%s", c.during, strings.Join(log, "\n"))
			}
			lost := slices.Index(log, c.during)
			for _, l := range log[lost+1:] {
				if strings.HasPrefix(l, "lb drain") || strings.Contains(l, " switch ") || strings.Contains(l, " stop") || strings.Contains(l, "post-cmd") {
					t.Errorf("%q ran after the lock was lost:\n%s", l, strings.Join(log, "\n"))
				}
			}
			for _, h := range hosts {
				want := "1.0.0"
				if slices.Contains(c.upgraded, h) {
					want = "1.1.0"
				}
				if f.current[h] != want || !f.up[h] {
					t.Errorf("%s: version %s (want %s), in rotation %v", h, f.current[h], want, f.up[h])
				}
			}
			if last := events[len(events)-1]; last.Type != event.RunFinished || last.Outcome != event.OutcomeAborted {
				t.Errorf("last event %+v", last)
			}
			// Nobody's lock is created by this run after the loss.
			if how == "lock broken" {
				if _, err := os.Stat(lockPath); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the broken lock is back: %v", err)
				}
			}
		})
	}
}
