// Package testkit is the room for test harnesses: real parts that
// integration tests and the e2e proof start, use and stop. It holds no
// code itself; its packages are:
//
//   - testfleet: OpenSSH sshd hosts on 127.0.0.x with a deploy user, the
//     demo app on every host, HAProxy or nginx in front
//   - lbtest: HTTP backends and the drain/enable scenario every
//     HAProxy-speaking balancer must pass
//
// Its packages are imported only from tests. They may use the demo's parts
// (internal/demo: the app, process handling, key files, the HAProxy and
// fleet.yaml writers); the demo's own code never uses theirs. They never
// hold a helper the demo also needs: such a helper belongs in
// internal/demo, which ships.
package testkit
