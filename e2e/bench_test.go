package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/plan"
)

// benchInventory makes relctl do exactly what bench/floor.sh does: batches
// of one, no canary pause, health polled every 20 ms with no stability
// wait, drains on HAProxy.
const benchInventory = `rollout:
  batches: [1]
  pause_after_canary: false
  on_failure: rollback
health:
  timeout: 20s
  interval: 20ms
  stable_for: 0s
`

// BenchmarkUpgradeVsFloor runs relctl apply and the shell-loop floor side by
// side on the same real fleet (OpenSSH sshd hosts, HAProxy, the demo app),
// re-seeded to 1.0.0 before each timed upgrade to 1.1.0. Reported per
// upgrade: both wall times and their ratio, relctl's own overhead per host
// (wall time minus the time spent in host commands and balancer waits, from
// its journal), and relctl's CPU time and peak RSS.
//
//	go test ./e2e -run '^$' -bench UpgradeVsFloor -benchtime 3x
func BenchmarkUpgradeVsFloor(b *testing.B) {
	for _, n := range []int{5, 20} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			s := newStage(b, n, "haproxy", benchInventory, nil)
			hostsFile := filepath.Join(s.dir, "hosts.txt")
			var lines []string
			for _, h := range s.f.Hosts {
				lines = append(lines, fmt.Sprintf("%s %s %s %s", h.Name, h.IP, h.Path, h.AppAddr))
			}
			if err := os.WriteFile(hostsFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
				b.Fatal(err)
			}
			art := s.f.Artifact("1.1.0", nil)
			var relctlS, floorS, overheadMS, engineMS, cpuS, rssMiB []float64
			for i := 0; i < b.N; i++ {
				s.reset()
				t0 := time.Now()
				c := s.cmd("apply", "--to", "1.1.0", "--yes", "--plain")
				var errb bytes.Buffer
				c.Stderr = &errb
				if err := c.Run(); err != nil {
					b.Fatalf("relctl apply: %v\n%s", err, errb.String())
				}
				wall := time.Since(t0)
				ru := c.ProcessState.SysUsage().(*syscall.Rusage)
				relctlS = append(relctlS, wall.Seconds())
				cpuS = append(cpuS, tv(ru.Utime)+tv(ru.Stime))
				rssMiB = append(rssMiB, float64(ru.Maxrss)/1024)
				total, engine := overhead(b, s, wall)
				overheadMS = append(overheadMS, float64(total.Milliseconds())/float64(n))
				engineMS = append(engineMS, float64(engine.Milliseconds())/float64(n))

				s.reset()
				args := []string{hostsFile, s.f.LB.AdminTCP, s.f.LB.Backend, "1.1.0", art, s.f.MigrationsLog, s.f.User, "--"}
				opts := s.f.SSHArgs(0)
				args = append(args, opts[:len(opts)-1]...) // without the destination
				t0 = time.Now()
				out, err := exec.Command("../bench/floor.sh", args...).CombinedOutput()
				if err != nil {
					b.Fatalf("floor.sh: %v\n%s", err, out)
				}
				floorS = append(floorS, time.Since(t0).Seconds())
				s.wantAll("1.1.0")
			}
			b.ReportMetric(median(relctlS), "relctl-s")
			b.ReportMetric(median(floorS), "floor-s")
			b.ReportMetric(median(relctlS)/median(floorS), "relctl/floor")
			b.ReportMetric(median(overheadMS), "overhead-ms/host")
			b.ReportMetric(median(engineMS), "engine-overhead-ms/host")
			b.ReportMetric(median(cpuS), "relctl-cpu-s")
			b.ReportMetric(median(rssMiB), "relctl-peak-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// reset puts every host back on 1.0.0 and removes what an upgrade to 1.1.0
// staged, so each timed upgrade starts from the same place.
func (s *stage) reset() {
	for _, h := range s.f.Hosts {
		for _, p := range []string{"releases/1.1.0", "releases/.incoming", "shop-1.1.0.tar.gz"} {
			_ = os.RemoveAll(filepath.Join(h.Path, p))
		}
	}
	s.f.Seed("1.0.0", s.f.Artifact("1.0.0", nil))
	_ = os.RemoveAll(s.state)
}

// overhead is relctl's own time: wall time minus what hosts and the
// balancer took on the critical path (deploy actions one after another;
// every other step, parallel groups counted once by their longest member).
// total is over the whole process (start-up, connecting to and observing
// every host, the closing audit included); engine is between the run's
// first and last events.
func overhead(b *testing.B, s *stage, wall time.Duration) (total, engine time.Duration) {
	r := s.latestRun()
	evs := readEvents(b, r.Path)
	work := time.Duration(0)
	groupMax := map[plan.StepKind]time.Duration{}
	var first, last time.Time
	for _, e := range evs {
		if first.IsZero() {
			first = e.Time
		}
		last = e.Time
		switch {
		case e.Type == event.ActionDone && strings.HasPrefix(e.Step, "deploy/"):
			work += e.Duration
		case e.Type == event.StepFinished && !strings.HasPrefix(e.Step, "deploy/"):
			st, _ := r.Plan.Step(e.Step)
			if st.Kind == plan.StepStage || st.Kind == plan.StepCleanup {
				groupMax[st.Kind] = max(groupMax[st.Kind], e.Duration)
			} else {
				work += e.Duration
			}
		}
	}
	for _, d := range groupMax {
		work += d
	}
	return wall - work, last.Sub(first) - work
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
