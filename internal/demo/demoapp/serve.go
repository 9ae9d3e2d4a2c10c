package demoapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/relctl/relctl/internal/demo/proc"
)

// serveOptions configures one serving process.
type serveOptions struct {
	Listen     string
	Version    string
	ReleaseDir string
	StartDelay time.Duration
	FailHealth bool
	FailShare  float64 // share of requests answered 500 (not /health, /version)
	CrashAfter time.Duration
	DrainGrace time.Duration
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	var o serveOptions
	fs := newFlags("serve", stderr)
	fs.StringVar(&o.Listen, "listen", "", "address to listen on (host:port)")
	fs.StringVar(&o.Version, "version", "", "version to report")
	fs.StringVar(&o.ReleaseDir, "release-dir", "", "release directory whose app.conf may carry faults")
	fs.DurationVar(&o.StartDelay, "start-delay", 0, "answer 503 on /health for this long after start")
	fs.BoolVar(&o.FailHealth, "fail-health", false, "always answer 503 on /health")
	fs.Float64Var(&o.FailShare, "fail-share", 0, "answer this share (0..1) of requests with 500, /health and /version excepted")
	fs.DurationVar(&o.CrashAfter, "crash-after", 0, "exit abruptly after this long")
	fs.DurationVar(&o.DrainGrace, "drain-grace", 0, "on SIGTERM, fail /health this long before closing the listener")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if !required(fs, stderr, "listen", o.Listen, "version", o.Version) {
		return ExitUsage
	}
	if err := o.applyConf(); err != nil {
		fmt.Fprintf(stderr, "demoapp serve: %v\n", err)
		return ExitUsage
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "demoapp serve: %v\n", err)
		return ExitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if lifeline := os.Getenv(proc.LifelineEnv); lifeline != "" {
		// Started for a demo: end, as on SIGTERM, when the demo's process
		// is gone, even if it was SIGKILLed and could not stop this app.
		var cancel context.CancelFunc
		if ctx, cancel, err = proc.WithLifeline(ctx, lifeline, 200*time.Millisecond); err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "demoapp serve: %s: %v\n", proc.LifelineEnv, err)
			return ExitUsage
		}
		defer cancel()
	}
	return serve(ctx, ln, o, stderr)
}

// applyConf merges the release's app.conf into o: a fault set by either the flag or
// the file is in force (for durations, the flag wins when both are set).
func (o *serveOptions) applyConf() error {
	if o.ReleaseDir == "" {
		return nil
	}
	c, err := readConf(filepath.Join(o.ReleaseDir, "app.conf"))
	if err != nil {
		return err
	}
	fail, err := c.bool(ConfFailHealth)
	if err != nil {
		return err
	}
	o.FailHealth = o.FailHealth || fail
	share, err := c.share(ConfFailShare)
	if err != nil {
		return err
	}
	if o.FailShare == 0 {
		o.FailShare = share
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{ConfStartDelay, &o.StartDelay}, {ConfCrashAfter, &o.CrashAfter}, {ConfDrainGrace, &o.DrainGrace}} {
		v, err := c.duration(d.key)
		if err != nil {
			return err
		}
		if *d.dst == 0 {
			*d.dst = v
		}
	}
	return nil
}

// app is the HTTP side of a serving process.
type app struct {
	version    string
	failHealth bool
	failShare  float64
	served     atomic.Int64 // requests that may be failed, for failShare
	readyAt    time.Time
	draining   atomic.Bool
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", a.health)
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n", a.version)
	})
	mux.HandleFunc("/slow", a.failing(a.slow))
	mux.HandleFunc("/{$}", a.failing(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "shop %s\n", a.version)
	}))
	return mux
}

// failing answers a.failShare of the requests with 500, evenly: request n
// fails when floor(n × share) moves on, so 5% is every 20th.
func (a *app) failing(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.failShare > 0 {
			n := float64(a.served.Add(1))
			if math.Floor(n*a.failShare) > math.Floor((n-1)*a.failShare) {
				http.Error(w, fmt.Sprintf("shop %s: 500 (fail_share %g)", a.version, a.failShare), http.StatusInternalServerError)
				return
			}
		}
		h(w, r)
	}
}

func (a *app) health(w http.ResponseWriter, r *http.Request) {
	switch {
	case a.draining.Load():
		http.Error(w, "draining", http.StatusServiceUnavailable)
	case a.failHealth:
		http.Error(w, "failing (fail_health)", http.StatusServiceUnavailable)
	case time.Now().Before(a.readyAt):
		http.Error(w, "starting", http.StatusServiceUnavailable)
	default:
		fmt.Fprint(w, "ok\n")
	}
}

// maxSlow bounds /slow so that a typo cannot hold a drain for hours.
const maxSlow = 10 * time.Minute

func (a *app) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		http.Error(w, "want ?ms=N with N >= 0", http.StatusBadRequest)
		return
	}
	d := min(time.Duration(ms)*time.Millisecond, maxSlow)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		fmt.Fprintf(w, "slept %d ms\n", d.Milliseconds())
	case <-r.Context().Done():
	}
}

// serve serves on ln until ctx is cancelled (SIGTERM), then drains and returns 0.
// It returns ExitCrashed when o.CrashAfter elapses first.
func serve(ctx context.Context, ln net.Listener, o serveOptions, logw io.Writer) int {
	logger := log.New(logw, fmt.Sprintf("demoapp[%d] ", os.Getpid()), log.LstdFlags|log.Lmicroseconds)
	a := &app{version: o.Version, failHealth: o.FailHealth, failShare: o.FailShare, readyAt: time.Now().Add(o.StartDelay)}
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          logger,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Printf("serving shop %s on %s (start_delay=%s fail_health=%t fail_share=%g crash_after=%s drain_grace=%s)",
		o.Version, ln.Addr(), o.StartDelay, o.FailHealth, o.FailShare, o.CrashAfter, o.DrainGrace)

	var crash <-chan time.Time
	if o.CrashAfter > 0 {
		t := time.NewTimer(o.CrashAfter)
		defer t.Stop()
		crash = t.C
	}
	select {
	case <-ctx.Done():
		begin := time.Now()
		a.draining.Store(true)
		why := "terminating"
		if errors.Is(context.Cause(ctx), proc.ErrOwnerGone) {
			why = "the demo that started this app is gone, terminating"
		}
		logger.Printf("%s: /health now 503, draining for %s", why, o.DrainGrace)
		if o.DrainGrace > 0 {
			time.Sleep(o.DrainGrace)
		}
		if err := srv.Shutdown(context.Background()); err != nil {
			logger.Printf("shutdown: %v", err)
			return ExitFailed
		}
		<-errc
		logger.Printf("stopped after finishing in-flight requests (%s)", time.Since(begin).Round(time.Millisecond))
		return ExitOK
	case <-crash:
		logger.Printf("crashing (crash_after=%s)", o.CrashAfter)
		srv.Close()
		return ExitCrashed
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return ExitOK
		}
		logger.Printf("serve: %v", err)
		return ExitFailed
	}
}
