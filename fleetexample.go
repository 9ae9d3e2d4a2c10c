// Package relctl carries files of the repository's root that the relctl
// binary needs: fleet.example.yaml, the commented inventory `relctl init`
// writes. The code lives under internal/ and cmd/.
package relctl

import _ "embed"

// FleetExample is fleet.example.yaml: a complete inventory, every key
// explained.
//
//go:embed fleet.example.yaml
var FleetExample string
