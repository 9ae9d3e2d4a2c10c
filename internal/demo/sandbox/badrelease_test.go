package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/analysis"
	"github.com/relctl/relctl/internal/demo/demoapp"
	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
)

// TestDemoBadRelease deploys the release built to answer 10% of requests
// with 500 while its health check stays green, behind the built-in
// balancer (whose counters are minilb's): the demo inventory's analysis
// (mode auto) sees the canary's 5xx share against the baseline's, rolls
// the canary back by itself, and the verdict carries the evidence. The
// only failed requests are the bad release's own 500s.
func TestDemoBadRelease(t *testing.T) {
	t.Parallel()
	d, inv, conn := startForRollout(t, Options{Hosts: 3, Balancer: BalancerBuiltin, BadRelease: "1.1.0"})
	if conf := unpackConf(t, d, "1.1.0"); !strings.Contains(conf, demoapp.ConfFailShare+"=0.1") {
		t.Fatalf("1.1.0 app.conf = %q", conf)
	}
	a := inv.Analysis
	if a.Mode != fleet.AnalysisAuto || a.Duration != demoAnalysisDuration || a.Rate5xx == nil {
		t.Fatalf("the demo inventory asks for no auto analysis: %+v", a)
	}
	before := d.Traffic()
	res, events := runPlan(t, d, inv, conn, "1.1.0")
	if res.Outcome != event.OutcomeRolledBack || res.Err == nil || !strings.Contains(res.Err.Error(), "canary analysis failed: rate_5xx") {
		t.Fatalf("outcome %s, want rolled back by the analysis: %v\n%s", res.Outcome, res.Err, events)
	}
	for _, h := range d.Hosts {
		if v := httpGet(t, "http://"+h.AppAddr+"/version"); v != SeedVersion {
			t.Errorf("%s runs %s after the rollback", h.Name, v)
		}
	}
	v := res.Summary.Analysis
	if v == nil || v.Result != analysis.Fail || v.Canary.Requests < int64(a.MinRequests) || v.Canary.Resp5xx == 0 || v.Baseline.Resp5xx != 0 ||
		strings.Join(v.Canary.Servers, ",") != "web1" || strings.Join(v.Baseline.Servers, ",") != "web2,web3" {
		t.Fatalf("the summary lacks the evidence: %+v", v)
	}
	if rate := v.Canary.Rate5xx(); rate < 0.05 || rate > 0.15 {
		t.Errorf("the canary's 5xx share %.3f is not about 10%%", rate)
	}
	if err := d.waitAllUp(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	after := d.Traffic()
	if got := after.ByStatus[500] - before.ByStatus[500]; got < v.Canary.Resp5xx {
		t.Errorf("clients saw %d 500s, fewer than the %d the balancer counted on the canary in the window", got, v.Canary.Resp5xx)
	}
	closeClean(t, d)
}
