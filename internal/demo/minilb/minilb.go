// Package minilb is a small HTTP load balancer for `relctl demo` and tests
// on machines without HAProxy. It owns round-robin reverse proxying over
// servers that pass their HTTP health check, per-server in-flight counts,
// and a TCP admin socket that speaks enough of the HAProxy runtime API
// (show stat, show servers state, set server state/weight) that lb's
// haproxy driver drives it unchanged.
//
// It never serves production traffic: no TLS, no authentication on the
// admin socket (bind it to loopback), no config reload.
package minilb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Server is one backend server.
type Server struct{ Name, Addr string }

// Config configures a balancer. Zero values take the defaults noted.
type Config struct {
	Listen        string        // HTTP listen address, default "127.0.0.1:0"
	AdminListen   string        // TCP admin socket, default "127.0.0.1:0"
	Backend       string        // backend name in the admin API (required)
	Servers       []Server      // at least one
	CheckInterval time.Duration // default 200ms
	CheckPath     string        // default "/health"
	Rise, Fall    int           // consecutive checks to go UP / DOWN, default 2 / 2
}

// admin states, as the admin socket sets them.
type adminState int

const (
	adminReady adminState = iota
	adminDrain
	adminMaint
)

// server is a backend server and its state; mutable fields are guarded by
// LB.mu except the atomic counters.
type server struct {
	id    int
	name  string
	addr  string
	url   *url.URL
	admin adminState
	up    bool
	// health: consecutive results counted towards rise (when down) or
	// fall (when up).
	okRun, failRun int
	checkStatus    string // L7OK, L7STS, L4CON, L4TOUT; "" before the first check / in maint
	checkCode      int
	checkDesc      string
	checkDur       time.Duration
	lastChange     time.Time
	chkFail        int
	chkDown        int
	weight         int // user weight, 0..256
	current        int // smooth weighted round-robin state

	scur  atomic.Int64 // requests in flight
	smax  atomic.Int64
	stot  atomic.Int64
	lbtot atomic.Int64
	eresp atomic.Int64 // transport errors other than connecting
	econ  atomic.Int64 // failed connection attempts to the server
	// hrsp counts the server's responses by status class: [0] 1xx …
	// [4] 5xx, [5] other.
	hrsp [6]atomic.Int64
	// rtimes holds the response times (ms) of the last 1024 responses,
	// for HAProxy's rtime column; guarded by rtMu.
	rtMu   sync.Mutex
	rtimes [1024]int64
	rtN    int
}

// observe records one response of s: its status class and the time to
// its headers.
func (s *server) observe(status int, took time.Duration) {
	class := status/100 - 1
	if class < 0 || class > 4 {
		class = 5
	}
	s.hrsp[class].Add(1)
	s.rtMu.Lock()
	s.rtimes[s.rtN%len(s.rtimes)] = took.Milliseconds()
	s.rtN++
	s.rtMu.Unlock()
}

// rtime is the average response time in ms over the last 1024 responses
// (0 before any), as HAProxy reports it.
func (s *server) rtime() int64 {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	n := min(s.rtN, len(s.rtimes))
	if n == 0 {
		return 0
	}
	var sum int64
	for _, v := range s.rtimes[:n] {
		sum += v
	}
	return sum / int64(n)
}

// LB is a running balancer.
type LB struct {
	cfg      Config
	mu       sync.Mutex
	servers  []*server
	started  time.Time
	front    net.Listener
	admin    net.Listener
	http     *http.Server
	proxy    *httputil.ReverseProxy
	checker  *http.Client
	stop     chan struct{}
	wg       sync.WaitGroup
	closeErr error
	closed   sync.Once
	feCur    atomic.Int64
	feTot    atomic.Int64
}

type attemptKey struct{}

// attempt carries the chosen server into the proxy and its error back.
type attempt struct {
	srv   *server
	err   error
	start time.Time
}

// Start validates cfg, listens on both addresses, runs a first round of
// health checks, and serves until Close.
func Start(cfg Config) (*LB, error) {
	if cfg.Backend == "" {
		return nil, errors.New("minilb: backend is required")
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("minilb: at least one server is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.AdminListen == "" {
		cfg.AdminListen = "127.0.0.1:0"
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 200 * time.Millisecond
	}
	if cfg.CheckPath == "" {
		cfg.CheckPath = "/health"
	}
	if cfg.Rise <= 0 {
		cfg.Rise = 2
	}
	if cfg.Fall <= 0 {
		cfg.Fall = 2
	}
	l := &LB{cfg: cfg, started: time.Now(), stop: make(chan struct{})}
	seen := map[string]bool{}
	for i, s := range cfg.Servers {
		if s.Name == "" || s.Addr == "" {
			return nil, fmt.Errorf("minilb: servers[%d]: name and addr are required", i)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("minilb: servers[%d]: duplicate name %q", i, s.Name)
		}
		seen[s.Name] = true
		u, err := url.Parse("http://" + s.Addr)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("minilb: servers[%d] (%s): bad addr %q", i, s.Name, s.Addr)
		}
		// Like HAProxy, a server starts UP and must fail `fall` checks to go down.
		l.servers = append(l.servers, &server{id: i + 1, name: s.Name, addr: s.Addr, url: u, up: true, weight: 1, lastChange: l.started})
	}

	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	l.proxy = &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			a := pr.In.Context().Value(attemptKey{}).(*attempt)
			pr.SetURL(a.srv.url)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		// Count the server's response by status class, like HAProxy's
		// hrsp_* columns, and its response time.
		ModifyResponse: func(resp *http.Response) error {
			a := resp.Request.Context().Value(attemptKey{}).(*attempt)
			a.srv.observe(resp.StatusCode, time.Since(a.start))
			return nil
		},
		// Record the error; ServeHTTP decides between retrying and 502.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			r.Context().Value(attemptKey{}).(*attempt).err = err
		},
	}
	l.checker = &http.Client{
		Timeout:   max(cfg.CheckInterval, time.Second),
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: time.Second}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}

	var err error
	if l.front, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("minilb: listen %s: %w", cfg.Listen, err)
	}
	if l.admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		l.front.Close()
		return nil, fmt.Errorf("minilb: admin listen %s: %w", cfg.AdminListen, err)
	}

	// A first round of checks before serving, so States are real at once.
	var first sync.WaitGroup
	for _, s := range l.servers {
		first.Add(1)
		go func() { defer first.Done(); l.check(s) }()
	}
	first.Wait()

	l.http = &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	l.wg.Add(2 + len(l.servers))
	go func() { defer l.wg.Done(); l.http.Serve(l.front) }()
	go func() { defer l.wg.Done(); l.serveAdmin() }()
	for _, s := range l.servers {
		go func() { defer l.wg.Done(); l.checkLoop(s) }()
	}
	return l, nil
}

// Addr is the HTTP address clients use ("127.0.0.1:port").
func (l *LB) Addr() string { return l.front.Addr().String() }

// AdminAddr is the TCP admin socket address, for lb.Endpoint{TCP: ...}.
func (l *LB) AdminAddr() string { return l.admin.Addr().String() }

// Close stops listening, ends checks and waits for in-flight requests up to
// 5 seconds.
func (l *LB) Close() error {
	l.closed.Do(func() {
		close(l.stop)
		l.admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.http.Shutdown(ctx); err != nil {
			l.closeErr = fmt.Errorf("minilb: shutdown: %w", err)
			l.http.Close()
		}
		l.wg.Wait()
		l.checker.CloseIdleConnections()
		if t, ok := l.proxy.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
	})
	return l.closeErr
}

// ServeHTTP proxies r to the next eligible server. A transport error on an
// idempotent request without a body is retried once on another server; a
// user's request is never dropped silently: it gets the response or a 502/503.
func (l *LB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.feCur.Add(1)
	defer l.feCur.Add(-1)
	l.feTot.Add(1)
	retryable := (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0)
	var tried []*server
	var lastErr error
	for try := 0; try < 2; try++ {
		s := l.pick(tried)
		if s == nil {
			break
		}
		tried = append(tried, s)
		a := &attempt{srv: s, start: time.Now()}
		n := s.scur.Add(1)
		for m := s.smax.Load(); n > m && !s.smax.CompareAndSwap(m, n); m = s.smax.Load() {
		}
		s.stot.Add(1)
		l.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), attemptKey{}, a)))
		s.scur.Add(-1)
		if a.err == nil {
			return
		}
		var op *net.OpError
		if errors.As(a.err, &op) && op.Op == "dial" {
			s.econ.Add(1)
		} else {
			s.eresp.Add(1)
		}
		lastErr = fmt.Errorf("%s: %w", s.name, a.err)
		if !retryable || r.Context().Err() != nil {
			break
		}
	}
	if lastErr != nil {
		if r.Context().Err() == nil {
			http.Error(w, "502 Bad Gateway: "+lastErr.Error(), http.StatusBadGateway)
		}
		return
	}
	http.Error(w, "503 Service Unavailable: no server is available to handle this request", http.StatusServiceUnavailable)
}

// pick chooses by smooth weighted round-robin among servers that are UP,
// READY and weighted, skipping those already tried.
func (l *LB) pick(skip []*server) *server {
	l.mu.Lock()
	defer l.mu.Unlock()
	var best *server
	total := 0
	for _, s := range l.servers {
		if !s.up || s.admin != adminReady || s.weight <= 0 || contains(skip, s) {
			continue
		}
		s.current += s.weight
		total += s.weight
		if best == nil || s.current > best.current {
			best = s
		}
	}
	if best != nil {
		best.current -= total
		best.lbtot.Add(1)
	}
	return best
}

func contains(list []*server, s *server) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *LB) checkLoop(s *server) {
	t := time.NewTicker(l.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.check(s)
		}
	}
}

// check runs one health check of s (paused while in MAINT) and applies
// rise/fall.
func (l *LB) check(s *server) {
	l.mu.Lock()
	maint := s.admin == adminMaint
	l.mu.Unlock()
	if maint {
		return
	}
	start := time.Now()
	status, code, desc := "L7OK", 0, ""
	resp, err := l.checker.Get("http://" + s.addr + l.cfg.CheckPath)
	switch {
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			status, desc = "L4TOUT", "Layer4 timeout"
		} else {
			status, desc = "L4CON", "Layer4 connection problem"
		}
	default:
		resp.Body.Close()
		code = resp.StatusCode
		if code >= 200 && code < 400 {
			desc = "Layer7 check passed"
		} else {
			status, desc = "L7STS", "Layer7 wrong status"
		}
	}
	ok := status == "L7OK"

	l.mu.Lock()
	defer l.mu.Unlock()
	if s.admin == adminMaint { // went into maint meanwhile
		return
	}
	s.checkStatus, s.checkCode, s.checkDesc, s.checkDur = status, code, desc, time.Since(start)
	if ok {
		s.okRun++
		s.failRun = 0
		if !s.up && s.okRun >= l.cfg.Rise {
			s.up, s.lastChange = true, time.Now()
		}
	} else {
		s.chkFail++
		s.failRun++
		s.okRun = 0
		if s.up && s.failRun >= l.cfg.Fall {
			s.up, s.lastChange = false, time.Now()
			s.chkDown++
		}
	}
}

// find returns the server named name (l.mu held).
func (l *LB) find(name string) *server {
	for _, s := range l.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// setAdmin applies an admin state change (l.mu held).
func (l *LB) setAdmin(s *server, st adminState) {
	if s.admin == st {
		return
	}
	if s.admin == adminMaint {
		// Leaving maintenance: like HAProxy, health must be proven again.
		s.up, s.okRun, s.failRun = false, 0, 0
	}
	if st == adminMaint {
		s.checkStatus, s.checkCode, s.checkDesc = "", 0, ""
	}
	s.admin = st
	s.lastChange = time.Now()
}

// status is the HAProxy-style status column (l.mu held).
func (s *server) status() string {
	switch {
	case s.admin == adminMaint:
		return "MAINT"
	case !s.up:
		return "DOWN"
	case s.admin == adminDrain:
		return "DRAIN"
	}
	return "UP"
}
