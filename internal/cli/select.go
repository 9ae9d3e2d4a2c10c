package cli

import (
	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/fleet"
)

// selFlags are --hosts, --labels and --roles: which hosts an operation is
// aimed at (plan, apply, status, rollback).
type selFlags struct {
	hosts, labels, roles []string
}

func (s selFlags) selection() fleet.Selection {
	return fleet.Selection{Hosts: s.hosts, Labels: s.labels, Roles: s.roles}
}

func addSelectFlags(cmd *cobra.Command, s *selFlags) {
	f := cmd.Flags()
	f.StringSliceVar(&s.hosts, "hosts", nil, "only these hosts (web1,web3); plan and apply name the hosts left out, and hold post-migrate back while one of them still runs the old version")
	f.StringSliceVar(&s.labels, "labels", nil, "only hosts with any of these labels (canary)")
	f.StringSliceVar(&s.roles, "roles", nil, "only hosts of these roles (worker); --hosts, --labels and --roles together: a host must match each one given")
}
