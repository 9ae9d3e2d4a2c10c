package haproxycfg

import (
	"fmt"
	"strings"
	"time"
)

// Server is one backend server.
type Server struct {
	Name string // its name in the backend: what relctl drains and enables
	Addr string // host:port of its app
}

// Config is one configuration. Frontend, Backend, AdminTCP and at least one
// server are required.
type Config struct {
	// Origin is said in the first line: who wrote the file and how HAProxy
	// runs ("relctl's testfleet").
	Origin string
	// AdminSocket, if set, is a unix admin socket (mode 666, level admin)
	// beside the TCP one.
	AdminSocket string
	AdminTCP    string // host:port of the TCP admin socket (level admin)
	Threads     int    // nbthread; 0 leaves HAProxy's default
	Frontend    string // host:port the frontend binds
	Backend     string
	// CheckInterval is the health check interval; two results in a row
	// take a server UP or DOWN.
	CheckInterval time.Duration
	Servers       []Server
}

// String renders the configuration.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by %s\nglobal\n", c.Origin)
	if c.AdminSocket != "" {
		fmt.Fprintf(&b, "    stats socket %s mode 666 level admin\n", c.AdminSocket)
	}
	fmt.Fprintf(&b, "    stats socket ipv4@%s level admin\n", c.AdminTCP)
	b.WriteString("    stats timeout 2m\n    maxconn 2000\n")
	if c.Threads > 0 {
		fmt.Fprintf(&b, "    nbthread %d\n", c.Threads)
	}
	fmt.Fprintf(&b, `
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout

frontend www
    bind %s
    default_backend %s

backend %s
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter %dms fall 2 rise 2
`, c.Frontend, c.Backend, c.Backend, c.CheckInterval.Milliseconds())
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "    server %s %s check\n", s.Name, s.Addr)
	}
	return b.String()
}
