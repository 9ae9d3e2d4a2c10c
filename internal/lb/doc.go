// Package lb owns the load-balancer drivers that take one application server
// out of rotation and put it back: HAProxy (runtime API), open-source nginx
// (upstream file edit + reload), arbitrary commands (exec) and none.
//
// Every driver sits behind the Balancer interface and reaches its balancer
// endpoints only through a Connector, which the caller adapts from its SSH
// pool; lb never imports SSH code, never knows about plans, batches or
// rollouts, and never decides what to do when a step fails: it reports
// precisely what it did and what it saw, and the caller compensates.
//
// Zero downtime rests on three rules the drivers keep:
//   - a drain lets in-flight requests finish and sends new ones elsewhere
//     (HAProxy "state drain", nginx "down" + graceful reload);
//   - a server is put back only after the balancer's own health check passes,
//     then verified UP on every endpoint;
//   - weights are never used as a drain mechanism, so operator weights survive.
package lb
