// Package demo is the room for relctl's built-in demo: everything `relctl
// demo` starts on this machine so that a newcomer can watch an upgrade,
// and that the tests reuse as parts of a local fleet. It holds no code
// itself; its packages are:
//
//   - sandbox: the whole demo fleet with one call (Start, Close, and the
//     reaping of demos that died without Close)
//   - sshserver: in-process SSH hosts, and their key files
//   - demoapp: the "shop" app every host runs, and its host-side tooling
//   - minilb: a balancer speaking HAProxy's runtime API, when HAProxy is
//     not installed
//   - loadgen: bounded HTTP traffic and its figures
//   - proc: starting, stopping and reaping local processes (HAProxy, sshd,
//     the apps), so that nothing outlives the demo, SIGKILL included
//   - haproxycfg: the HAProxy configuration of a local fleet
//   - fleetfile: the fleet.yaml of a local fleet, on internal/fleet's types
//
// The relctl binary ships these packages, so their code never imports test
// code (internal/testkit, or package testing outside _test files); only
// their tests may, as minilb's run lbtest's balancer scenario. The product
// packages (internal/fleet, observe, plan, rollout, event, journal, view,
// tui, remote, lb, shell) never import them: the demo drives relctl only
// through what a real fleet offers, an inventory, SSH hosts and a
// balancer. Only internal/cli wires the demo command in.
package demo
