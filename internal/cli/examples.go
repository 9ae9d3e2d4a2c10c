package cli

import "github.com/spf13/cobra"

// examples are the help's examples of the commands whose definition does
// not carry its own, by command path. Every line that starts with relctl is
// parsed against the real command and flags by TestExamplesParse, so an
// example with a wrong flag fails the build's tests.
var examples = map[string]string{
	"relctl": `  relctl                                   # the TUI on ./fleet.yaml (or $RELCTL_FLEET)
  relctl -f staging.yaml                   # the TUI on another inventory
  relctl init                              # write a commented starter fleet.yaml
  relctl validate                          # check the inventory offline, every problem at once
  relctl plan --to 1.4.0                   # the exact plan apply would run, changing nothing
  relctl demo                              # a demo fleet on this machine, to see relctl work`,
	"relctl status": `  relctl status
  relctl status -f staging.yaml
  relctl status --plain | cut -f1,2             # host and version: tab-separated fields, even on a terminal
  relctl status --json > status.json`,
	"relctl rollback": `  relctl rollback                          # shows what goes back, asks, then runs
  relctl rollback --yes --plain            # without a terminal (CI): no question, plain lines`,
	"relctl resume": `  relctl resume                            # finish the run a killed relctl left behind
  relctl resume --rollback                 # roll that run back instead
  relctl resume --yes --json               # without a terminal, events as JSON lines`,
	"relctl downgrade": `  relctl downgrade --to 1.3.2 --reason "INC-4711: 1.4.0 loses carts"
  relctl downgrade --to 1.3.2 --reason "INC-4711" --yes --plain`,
	"relctl lock": `  relctl lock                              # who holds the fleet's lock, for which run, until when
  relctl lock --json
  relctl lock break                        # break an expired lease (audited)`,
	"relctl lock break": `  relctl lock break                        # only an expired lease
  relctl lock break --force                # the holder is gone for sure: break a live lease too`,
	"relctl history": `  relctl history                           # the last 50 records, newest first
  relctl history --since 24h --host web3
  relctl history --run 20261129T1548       # one run's records: the beginning of its id is enough
  relctl history --limit 0 --json > audit.jsonl`,
	"relctl version": `  relctl version
  relctl --version`,
}

// addExamples sets the examples above on the commands that have none.
func addExamples(c *cobra.Command) {
	if ex, ok := examples[c.CommandPath()]; ok && c.Example == "" {
		c.Example = ex
	}
	for _, sub := range c.Commands() {
		addExamples(sub)
	}
}
