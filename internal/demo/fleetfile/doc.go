// Package fleetfile writes the fleet.yaml of a local fleet of demo-app
// hosts, for the demo (internal/demo/sandbox) and the test fleet
// (internal/testkit/testfleet).
//
// It owns one thing: turning a fleet.Inventory value into YAML that
// fleet.Load reads back to the same values. The keys are internal/fleet's
// own struct tags and the values its own types, so a key renamed or
// retyped there changes or breaks this output with it, and a key added
// there needs no change here. Base gives the inventory both rooms start
// from: the demo app's commands, paths, SSH settings and a canary.
//
// It never defines inventory keys or defaults of its own (internal/fleet
// does), never reads an inventory, and never starts anything.
package fleetfile
