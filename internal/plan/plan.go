// Package plan turns "this fleet runs X, take it to Y" into an ordered,
// inspectable Plan: phases, batches and per-host steps with stable IDs, the
// point of no return marked, and the observed state it was built from.
//
// A Plan is a pure value. This package does no I/O at all: it imports no os,
// net, context or SSH code. Observing the fleet and executing a plan belong
// to packages observe and rollout.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/version"
)

// SchemaVersion is the version of the JSON form of a Plan. It changes when a
// field changes meaning or disappears; added fields keep it.
const SchemaVersion = 1

// Kind is what a plan does.
type Kind string

// Plan kinds.
const (
	KindUpgrade   Kind = "upgrade"
	KindRollback  Kind = "rollback"
	KindDowngrade Kind = "downgrade"
	// KindRepair brings hosts an earlier run left out of service back, on
	// the release they run: start, healthy, enable. No switch, no stop.
	KindRepair Kind = "repair"
)

// StepKind says what a step does; the executor has one runner per kind.
type StepKind string

// Step kinds, in the order a plan uses them.
const (
	StepPreflight   StepKind = "preflight"
	StepLock        StepKind = "lock"
	StepStage       StepKind = "stage"
	StepMigrate     StepKind = "migrate"
	StepDeploy      StepKind = "deploy"
	StepGate        StepKind = "gate"
	StepPostMigrate StepKind = "post-migrate"
	StepCleanup     StepKind = "cleanup"
	StepUnlock      StepKind = "unlock"
)

// Action is one part of a host's deploy (or rollback) step.
type Action string

// The per-host sequence, in order. ActionVersion is present only when the
// inventory has a version command; otherwise the switch itself is checked.
const (
	ActionDrain    Action = "drain"
	ActionWaitIdle Action = "wait-idle"
	ActionStop     Action = "stop"
	ActionSwitch   Action = "switch"
	ActionStart    Action = "start"
	ActionHealth   Action = "health"
	ActionVersion  Action = "version"
	ActionEnable   Action = "enable"
	ActionVerify   Action = "verify"
)

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

func (d Duration) String() string { return time.Duration(d).String() }

// Plan is an ordered list of steps and everything needed to judge it.
//
// Invariants (checked by Check and by the tests):
//   - step IDs are unique;
//   - no deploy step comes before its hop's migrate step, and every
//     post-migrate step comes after every deploy step of its hop;
//   - only post-migrate steps are points of no return;
//   - Basis.Fingerprint is Observed.Fingerprint of the state it was built from.
type Plan struct {
	Schema int    `json:"schema"`
	App    string `json:"app"`
	Kind   Kind   `json:"kind"`
	From   string `json:"from"`
	To     string `json:"to"`
	Hops   []Hop  `json:"hops"`
	Reason string `json:"reason,omitempty"` // why (downgrades require it; --reason), for the audit
	// Ticket is the change ticket the operator named (--ticket), for the
	// audit, the lock and the hooks.
	Ticket string `json:"ticket,omitempty"`
	// RollsBack is the unfinished run a rollback plan undoes (resume
	// --rollback): the rollback continues under that run's lock.
	RollsBack string   `json:"rolls_back,omitempty"`
	Settings  Settings `json:"settings"`
	// Actions is the per-host sequence every deploy and rollback step runs.
	Actions []Action `json:"actions"`
	Steps   []Step   `json:"steps"`
	Skipped []Skip   `json:"skipped,omitempty"`
	Basis   Basis    `json:"basis"`
	// Inputs are what the plan was built from besides Basis, so that a
	// saved plan can be rebuilt and compared before it runs.
	Inputs *Inputs `json:"inputs,omitempty"`
	// Notes are things the operator should know that are not steps.
	Notes []string `json:"notes,omitempty"`
	// Environment is the inventory's environment the plan was built for
	// (--env; "" for none). It is in the header, the lock and the journal.
	Environment string `json:"environment,omitempty"`
	// Secrets name the secret environment values the run resolves and
	// delivers ("SHOP_DB_URL from_env"): names and kinds only, never a
	// value (values are resolved when the run starts, not when it is
	// planned).
	Secrets []string `json:"secrets,omitempty"`
	// Roles are the plan's roles in deploy order, when the inventory's
	// hosts have roles (roles.go): each role's hosts run its Actions.
	Roles []RolePlan `json:"roles,omitempty"`
	// RolesTogether: every batch takes its share of every role.
	RolesTogether bool `json:"roles_together,omitempty"`
	// Selection is the part of the fleet the plan was aimed at, when not
	// the whole fleet.
	Selection *Selection `json:"selection,omitempty"`
}

// Inputs are a plan's inputs other than the observed basis: with Basis
// they determine the plan (Build is pure), so apply --plan rebuilds it
// from them and refuses any difference.
type Inputs struct {
	// Inventory is the sha256 of the inventory file the plan was built from.
	Inventory string `json:"inventory_sha256"`
	// To is --to: the target asked for.
	To string `json:"to"`
	// Upfrom is --upfrom, when given.
	Upfrom string `json:"upfrom,omitempty"`
	// CanVerify is Options.CanVerify.
	CanVerify bool `json:"can_verify"`
	// Selection is --hosts, --labels and --roles, when given.
	Selection *fleet.Selection `json:"selection,omitempty"`
}

// Hop is one full pass from one version to the next (an upgrade across a
// required stop has two or more).
type Hop struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Settings are the timings and policies the executor applies.
type Settings struct {
	Batches            []fleet.BatchSize `json:"batches"`
	PauseAfterCanary   bool              `json:"pause_after_canary"`
	WaitBetweenBatches Duration          `json:"wait_between_batches"`
	OnFailure          string            `json:"on_failure"`
	MaxFailedHosts     int               `json:"max_failed_hosts"`
	DrainTimeout       Duration          `json:"drain_timeout"`
	HealthTimeout      Duration          `json:"health_timeout"`
	HealthInterval     Duration          `json:"health_interval"`
	StableFor          Duration          `json:"stable_for"`
	KeepReleases       int               `json:"keep_releases"`
	Balancer           string            `json:"balancer"`
	MigrationsHost     string            `json:"migrations_host"`
	Parallel           int               `json:"parallel"`
	// Analysis is canary analysis at each canary gate (upgrades only;
	// nil when the inventory asks for none).
	Analysis *fleet.Analysis `json:"analysis,omitempty"`
}

// Step is one unit of work with a stable ID, e.g. "deploy/web3".
type Step struct {
	ID    string   `json:"id"`
	Kind  StepKind `json:"kind"`
	Hop   int      `json:"hop"`             // index into Plan.Hops; -1 outside any hop
	Batch int      `json:"batch,omitempty"` // 1-based batch of a deploy step; 1 is the canary
	Host  string   `json:"host,omitempty"`
	From  string   `json:"from,omitempty"`
	To    string   `json:"to,omitempty"`
	// Versions are the releases a stage step puts on its host.
	Versions []string `json:"versions,omitempty"`
	// Role is a deploy step's host's role, when the plan has roles.
	Role string `json:"role,omitempty"`
	// Mutating steps change a host or the balancer; the journal is synced
	// before each starts.
	Mutating bool `json:"mutating"`
	// PointOfNoReturn marks the step after which rollback is refused.
	PointOfNoReturn bool `json:"point_of_no_return,omitempty"`
	// Undo says what a rollback does about this step.
	Undo string `json:"undo,omitempty"`
}

// String describes the step in the words the preview, the plain output and
// the journal all use: "deploy web3 (1.3.2 → 1.4.0)".
func (s Step) String() string {
	switch s.Kind {
	case StepDeploy:
		return fmt.Sprintf("deploy %s (%s → %s)", s.Host, s.From, s.To)
	case StepStage:
		return fmt.Sprintf("stage %s on %s", strings.Join(s.Versions, ", "), s.Host)
	case StepMigrate:
		return fmt.Sprintf("migrate %s on %s", s.To, s.Host)
	case StepPostMigrate:
		return fmt.Sprintf("post-migrate %s on %s", s.To, s.Host)
	case StepGate:
		return fmt.Sprintf("approve the canary of %s", s.To)
	case StepCleanup:
		return fmt.Sprintf("clean up old releases on %s", s.Host)
	case StepLock:
		return fmt.Sprintf("lock the fleet (on %s)", s.Host)
	case StepUnlock:
		return fmt.Sprintf("unlock the fleet (on %s)", s.Host)
	case StepPreflight:
		return "preflight checks"
	}
	return s.ID
}

// Skip is a host the plan leaves alone, and why.
type Skip struct {
	Host    string `json:"host"`
	Version string `json:"version"`
	Reason  string `json:"reason"`
}

// Basis is the observed state a plan was built from.
type Basis struct {
	Fingerprint string      `json:"fingerprint"`
	Offline     bool        `json:"offline,omitempty"`
	Hosts       []HostState `json:"hosts"`
}

// Observed is what the fleet really runs, as package observe saw it (or as
// assumed from --upfrom when Offline).
type Observed struct {
	Offline bool
	Hosts   []HostState
}

// HostState is one host as observed.
type HostState struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Releases  []string `json:"releases,omitempty"`
	Reachable bool     `json:"reachable"`
	Error     string   `json:"error,omitempty"`
}

// Fingerprint is a short hash of what matters for planning: every host's
// name, reachability and running version. apply refuses a plan whose
// fingerprint no longer matches the fleet.
func (o Observed) Fingerprint() string {
	hs := append([]HostState(nil), o.Hosts...)
	sort.Slice(hs, func(i, j int) bool { return hs[i].Name < hs[j].Name })
	h := sha256.New()
	if o.Offline {
		h.Write([]byte("offline\n"))
	}
	for _, s := range hs {
		fmt.Fprintf(h, "%s\x00%t\x00%s\n", s.Name, s.Reachable, s.Version)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// State returns the observed state of host name.
func (o Observed) State(name string) (HostState, bool) {
	for _, s := range o.Hosts {
		if s.Name == name {
			return s, true
		}
	}
	return HostState{}, false
}

// Assume returns the offline observation "every host runs v".
func Assume(inv *fleet.Inventory, v string) Observed {
	o := Observed{Offline: true, Hosts: make([]HostState, len(inv.Hosts))}
	for i, h := range inv.Hosts {
		o.Hosts[i] = HostState{Name: h.Name, Version: v, Reachable: true}
	}
	return o
}

// Empty reports whether the plan has nothing to do.
func (p *Plan) Empty() bool {
	for _, s := range p.Steps {
		if s.Kind == StepDeploy {
			return false
		}
	}
	return true
}

// Step returns the step with id.
func (p *Plan) Step(id string) (Step, bool) {
	for _, s := range p.Steps {
		if s.ID == id {
			return s, true
		}
	}
	return Step{}, false
}

// DeployHosts returns the hosts the plan switches, in plan order, once each.
func (p *Plan) DeployHosts() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range p.Steps {
		if s.Kind == StepDeploy && !seen[s.Host] {
			seen[s.Host] = true
			out = append(out, s.Host)
		}
	}
	return out
}

// checkVersions validates every version a plan carries exactly like --to:
// a plan file is input, and its versions end up in host-side commands.
func (p *Plan) checkVersions() error {
	bad := func(where, v string) error {
		if err := version.Valid(v); err != nil {
			return fmt.Errorf("plan %s: %w", where, err)
		}
		return nil
	}
	if err := errors.Join(bad("from", p.From), bad("to", p.To)); err != nil {
		return err
	}
	for i, h := range p.Hops {
		if err := errors.Join(bad(fmt.Sprintf("hops[%d].from", i), h.From), bad(fmt.Sprintf("hops[%d].to", i), h.To)); err != nil {
			return err
		}
	}
	for _, s := range p.Steps {
		if s.From != "" {
			if err := bad("step "+s.ID+" from", s.From); err != nil {
				return err
			}
		}
		if s.To != "" {
			if err := bad("step "+s.ID+" to", s.To); err != nil {
				return err
			}
		}
		for _, v := range s.Versions {
			if err := bad("step "+s.ID+" versions", v); err != nil {
				return err
			}
		}
	}
	for _, h := range p.Basis.Hosts {
		if h.Version != "" {
			if err := bad("basis host "+h.Name, h.Version); err != nil {
				return err
			}
		}
	}
	for _, a := range p.Actions {
		if !knownAction[a] {
			return fmt.Errorf("plan lists action %q, which this relctl does not know", a)
		}
	}
	for _, r := range p.Roles {
		for _, a := range r.Actions {
			if !knownAction[a] {
				return fmt.Errorf("plan role %s lists action %q, which this relctl does not know", r.Name, a)
			}
		}
	}
	return nil
}

var knownAction = map[Action]bool{ActionDrain: true, ActionWaitIdle: true, ActionStop: true, ActionSwitch: true,
	ActionStart: true, ActionHealth: true, ActionVersion: true, ActionEnable: true, ActionVerify: true}

// Check verifies the plan's invariants; a plan read from a file is checked
// before it is applied.
func (p *Plan) Check() error {
	if p.Schema != SchemaVersion {
		return fmt.Errorf("plan schema %d is not %d: rebuild the plan with this relctl", p.Schema, SchemaVersion)
	}
	if err := p.checkVersions(); err != nil {
		return err
	}
	ids := map[string]bool{}
	migrated := map[int]bool{}
	postDone := map[int]bool{}
	for i, s := range p.Steps {
		if ids[s.ID] {
			return fmt.Errorf("step %d: duplicate id %q", i, s.ID)
		}
		ids[s.ID] = true
		if s.PointOfNoReturn && s.Kind != StepPostMigrate {
			return fmt.Errorf("step %s: only post-migrate is a point of no return", s.ID)
		}
		switch s.Kind {
		case StepMigrate:
			migrated[s.Hop] = true
		case StepDeploy:
			if postDone[s.Hop] {
				return fmt.Errorf("step %s: deploy after its hop's post-migrate", s.ID)
			}
		case StepPostMigrate:
			postDone[s.Hop] = true
		}
	}
	return nil
}
