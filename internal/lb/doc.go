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
//
// Before a host's app is stopped, EnsureOut reads every endpoint again: a
// server that a reload or another operator put back in rotation, or that
// still has sessions, is drained again and waited for, and the returned
// note says so. Verify reads every endpoint to prove a server is back in
// rotation after Enable. Both read the balancer's own state (States); a
// driver that cannot read it (none, exec without a state command) says so
// with CanVerify.
//
// # HAProxy reloads
//
// A reload (`haproxy -sf <pid>`, `systemctl reload haproxy`, a certificate
// renewal) starts a new process from the config file, and the new process
// forgets every runtime state set over the admin socket: a server relctl
// drained comes back in rotation. HAProxy keeps the states across a reload
// only when the config loads a state file and the state was dumped just
// before the reload:
//
//	global
//	    stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
//	    server-state-file /var/lib/haproxy/server-state
//	defaults
//	    load-server-state-from-file global
//
//	# before every reload:
//	echo "show servers state" | socat stdio /run/haproxy/admin.sock > /var/lib/haproxy/server-state
//
// (`expose-fd listeners` lets the new process take the listening sockets
// over with -x, so no connection is refused during the reload.)
//
// Without that, the HAProxy driver still notices the reload: it remembers,
// per endpoint, the servers it drained and has not put back, and the Pid
// and Start_time_sec that `show info` reported. Every Preflight, Drain (and
// each of its polls), Enable, Restore, States, Verify and EnsureOut asks
// again; when the process changed, the driver drains every held server
// again (unless the new process kept its drain) and reports what it did in
// DrainResult.Note, EnsureOut's note, or TakeNotes (NoteTaker). Between the
// reload and that next call the server takes requests, which is harmless
// while its app runs; EnsureOut right before the stop closes the gap.
//
// Preflight refuses a server that is not in rotation (DRAIN or MAINT, or
// DOWN as HAProxy's own check fails, unless forced: a forced DOWN server
// goes back into rotation only once its check passes) and names the
// server, the endpoint and the command that puts it back, e.g.
// `echo 'set server shop/web2 state ready' | ssh lb1 'socat stdio /run/haproxy/admin.sock'`.
package lb
