// Package loadgen sends bounded HTTP load at one URL and measures what clients would
// see: status codes, transport errors and latency percentiles. relctl's proof tests
// run it through the balancer during a rollout ("no one observes errors"), and the
// demo shows its live Snapshot.
//
// A run always stops by itself: both MaxRequests and MaxDuration are required.
// Connections are kept alive like a real client's.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Options bound and shape one run.
type Options struct {
	URL         string
	Concurrency int           // parallel clients; default 4
	Rate        int           // requests per second over all clients; 0 = as fast as possible
	MaxRequests int           // required (> 0)
	MaxDuration time.Duration // required (> 0)
	Timeout     time.Duration // per request; default 5s
}

// Stats is a point-in-time summary of a run.
type Stats struct {
	Requests int64 // finished requests (OK + Non2xx + Errors)
	OK       int64 // 2xx
	Non2xx   int64
	Errors   int64 // no response: connect, reset, timeout, ...
	// Latency percentiles over requests that got a response (≈0.2% resolution).
	P50, P90, P99, Max time.Duration
	ByStatus           map[int]int64
	FirstErrors        []string // the first errors and non-2xx answers, up to 10
	Elapsed            time.Duration
	InFlight           int64
}

// String is a one-line summary.
func (s Stats) String() string {
	return fmt.Sprintf("%d requests in %s: %d ok, %d non-2xx, %d errors; p50 %s p90 %s p99 %s max %s",
		s.Requests, s.Elapsed.Round(time.Millisecond), s.OK, s.Non2xx, s.Errors,
		s.P50.Round(10*time.Microsecond), s.P90.Round(10*time.Microsecond),
		s.P99.Round(10*time.Microsecond), s.Max.Round(10*time.Microsecond))
}

// Clean reports whether every finished request got a 2xx answer.
func (s Stats) Clean() bool { return s.Requests > 0 && s.OK == s.Requests }

const maxFirstErrors = 10

// Gen is a running load generator.
type Gen struct {
	o      Options
	client *http.Client
	tr     *http.Transport
	begin  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	issued atomic.Int64
	inFl   atomic.Int64

	mu       sync.Mutex
	hist     histogram
	ok       int64
	non2xx   int64
	errs     int64
	byStatus map[int]int64
	first    []string
	end      time.Time

	stopOnce sync.Once
	final    Stats
}

// Start validates o and starts the clients. Cancelling ctx stops issuing new
// requests (like Stop, without waiting); requests in flight finish or time out.
func Start(ctx context.Context, o Options) (*Gen, error) {
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	switch {
	case o.URL == "":
		return nil, errors.New("loadgen: URL is required")
	case o.MaxRequests <= 0 || o.MaxDuration <= 0:
		return nil, errors.New("loadgen: MaxRequests and MaxDuration must both be > 0")
	case o.Concurrency < 0 || o.Rate < 0 || o.Timeout < 0:
		return nil, errors.New("loadgen: Concurrency, Rate and Timeout must not be negative")
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loadgen: invalid URL %q", o.URL)
	}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: o.Concurrency,
		MaxIdleConns:        o.Concurrency,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	runCtx, cancel := context.WithTimeout(ctx, o.MaxDuration)
	g := &Gen{
		o:        o,
		tr:       tr,
		client:   &http.Client{Transport: tr, Timeout: o.Timeout},
		begin:    time.Now(),
		cancel:   cancel,
		done:     make(chan struct{}),
		byStatus: map[int]int64{},
	}
	for range o.Concurrency {
		g.wg.Add(1)
		go g.worker(runCtx)
	}
	go func() {
		g.wg.Wait()
		g.mu.Lock()
		g.end = time.Now()
		g.mu.Unlock()
		cancel()
		tr.CloseIdleConnections()
		close(g.done)
	}()
	return g, nil
}

// Done is closed when the run has ended by itself (a bound was reached or ctx was
// cancelled) and every request has finished.
func (g *Gen) Done() <-chan struct{} { return g.done }

// Snapshot returns the statistics so far. It is cheap and safe to call concurrently.
func (g *Gen) Snapshot() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	end := g.end
	if end.IsZero() {
		end = time.Now()
	}
	s := Stats{
		OK: g.ok, Non2xx: g.non2xx, Errors: g.errs,
		ByStatus:    make(map[int]int64, len(g.byStatus)),
		FirstErrors: append([]string(nil), g.first...),
		Elapsed:     end.Sub(g.begin),
		InFlight:    g.inFl.Load(),
	}
	s.Requests = s.OK + s.Non2xx + s.Errors
	for k, v := range g.byStatus {
		s.ByStatus[k] = v
	}
	q := g.hist.quantiles(0.50, 0.90, 0.99)
	s.P50, s.P90, s.P99 = q[0], q[1], q[2]
	s.Max = g.hist.max
	return s
}

// Stop stops issuing requests, waits for those in flight, and returns the final
// statistics. It may be called more than once, and after the run ended by itself.
func (g *Gen) Stop() Stats {
	g.stopOnce.Do(func() {
		g.cancel()
		<-g.done
		g.final = g.Snapshot()
	})
	return g.final
}

// Wait waits until the run ends by itself (or ctx is done) and returns the final
// statistics.
func (g *Gen) Wait(ctx context.Context) (Stats, error) {
	select {
	case <-g.done:
		return g.Stop(), nil
	case <-ctx.Done():
		return g.Snapshot(), ctx.Err()
	}
}

func (g *Gen) worker(ctx context.Context) {
	defer g.wg.Done()
	// The run's context ends at MaxDuration by a timer, which a busy machine
	// can fire a few hundred milliseconds late; the clock decides too, so no
	// request is sent past the bound and a rated run never sends more than
	// Rate×MaxDuration.
	end := g.begin.Add(g.o.MaxDuration)
	for {
		if ctx.Err() != nil || !time.Now().Before(end) {
			return
		}
		n := g.issued.Add(1)
		if n > int64(g.o.MaxRequests) {
			return
		}
		if g.o.Rate > 0 {
			due := g.begin.Add(time.Duration(n-1) * time.Second / time.Duration(g.o.Rate))
			if !due.Before(end) {
				return
			}
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				if ctx.Err() != nil { // both were ready: Stop wins
					return
				}
			}
		}
		g.one()
	}
}

// one sends a request. It is deliberately not tied to the run's context: ending the
// run must not turn requests in flight into errors.
func (g *Gen) one() {
	g.inFl.Add(1)
	defer g.inFl.Add(-1)
	t0 := time.Now()
	resp, err := g.client.Get(g.o.URL)
	if err != nil {
		g.record(0, 0, err.Error())
		return
	}
	_, cerr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	lat := time.Since(t0)
	if cerr != nil {
		g.record(0, 0, fmt.Sprintf("read body (status %d): %v", resp.StatusCode, cerr))
		return
	}
	msg := ""
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg = fmt.Sprintf("status %d", resp.StatusCode)
	}
	g.record(resp.StatusCode, lat, msg)
}

func (g *Gen) record(status int, lat time.Duration, problem string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if problem != "" && len(g.first) < maxFirstErrors {
		g.first = append(g.first, fmt.Sprintf("+%s %s", time.Since(g.begin).Round(time.Millisecond), problem))
	}
	if status == 0 {
		g.errs++
		return
	}
	g.byStatus[status]++
	if status >= 200 && status <= 299 {
		g.ok++
	} else {
		g.non2xx++
	}
	g.hist.add(lat)
}
