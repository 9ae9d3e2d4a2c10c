package sandbox

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/relctl/relctl/internal/demo/loadgen"
)

// Traffic bounds: the demo's load always stops by itself, at the latest
// after trafficMaxDuration; Close stops it before that.
const (
	trafficMaxDuration = 2 * time.Hour
	trafficMaxRequests = math.MaxInt32
)

// startTraffic starts steady keep-alive load at Rate requests/s through the
// balancer's frontend. It runs on its own context: it outlives Start's ctx
// and ends with Close (or its bounds).
func (d *Demo) startTraffic() error {
	g, err := loadgen.Start(context.Background(), loadgen.Options{
		URL:         d.Frontend + "/",
		Concurrency: min(max(4, d.o.Rate/25), 32),
		Rate:        d.o.Rate,
		MaxRequests: trafficMaxRequests,
		MaxDuration: trafficMaxDuration,
		Timeout:     5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("sandbox: traffic: %w", err)
	}
	d.gen = g
	d.logf("demo: traffic: %d requests/s through %s", d.o.Rate, d.Frontend)
	return nil
}
