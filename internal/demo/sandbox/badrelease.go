package sandbox

import (
	"fmt"
	"strconv"
	"time"

	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/fleet"
)

// A bad release is one health checks cannot see: its app answers a share
// of requests with 500 while /health stays green. Only canary analysis,
// comparing the canary's 5xx share with the hosts still on the old
// version, catches it; the demo's inventory then asks for analysis in
// mode auto, so the gate rolls the canary back by itself.

// DefaultBadShare is the share of requests a bad release answers 500.
const DefaultBadShare = 0.10

// Demo analysis window: short enough for a newcomer, long enough for the
// canary to serve min_requests at the demo's default traffic (50 req/s
// over 6 hosts: ~8 req/s on the canary).
const (
	demoAnalysisDuration = 8 * time.Second
	demoAnalysisInterval = time.Second
	demoMinRequests      = 30
)

func (o *Options) checkBadRelease() error {
	if o.BadRelease == "" {
		if o.BadShare != 0 {
			return fmt.Errorf("sandbox: bad share without a bad release")
		}
		return nil
	}
	if !versionRE.MatchString(o.BadRelease) {
		return fmt.Errorf("sandbox: bad-release version %q is not a version", o.BadRelease)
	}
	if o.BadRelease == SeedVersion {
		return fmt.Errorf("sandbox: bad-release version cannot be %s: every host runs it at start", SeedVersion)
	}
	if o.BadShare == 0 {
		o.BadShare = DefaultBadShare
	}
	if o.BadShare < 0 || o.BadShare > 1 {
		return fmt.Errorf("sandbox: bad share %g must lie between 0 and 1", o.BadShare)
	}
	return nil
}

// badConf is the app.conf of release v.
func (d *Demo) badConf(v string, conf map[string]string) {
	if v == d.o.BadRelease {
		conf[demoapp.ConfFailShare] = strconv.FormatFloat(d.o.BadShare, 'g', -1, 64)
	}
}

// demoAnalysis is the analysis the demo asks for with a bad release: auto
// mode, the canary's 5xx share at most 2% and at most the baseline's × 2
// + 1%.
func demoAnalysis() fleet.Analysis {
	max, ratio := 0.02, 2.0
	return fleet.Analysis{
		Mode: fleet.AnalysisAuto, Duration: demoAnalysisDuration, Interval: demoAnalysisInterval, MinRequests: demoMinRequests,
		Rate5xx: &fleet.Threshold{Max: &max, MaxRatio: &ratio, Margin: 0.01},
	}
}
