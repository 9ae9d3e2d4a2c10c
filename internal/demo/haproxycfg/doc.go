// Package haproxycfg writes the HAProxy configuration that the demo
// (internal/demo/sandbox) and the test fleet (internal/testkit/testfleet)
// run: one HTTP frontend, one round-robin backend of demo-app servers with
// /health checks, a runtime API admin socket, and retries that hide a
// server going away between its last check and a request.
//
// It owns that text only. It never starts HAProxy (package proc does) and
// never talks to it (relctl's own driver, internal/lb, does).
package haproxycfg
