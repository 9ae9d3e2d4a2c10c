// Package fleet owns the inventory: its types, strict YAML loading, defaults,
// validation with errors that name the file, line, key path and host, the
// rendering of command templates, and host selection.
//
// It never does network I/O: observing hosts is package observe's job, and
// talking to them is package remote's.
package fleet

import (
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

// Inventory is a parsed, defaulted and validated fleet.yaml. The key names are
// a contract (see docs/design.md): they are extended, never renamed.
type Inventory struct {
	// File is the path the inventory was loaded from; used in error messages.
	File string `yaml:"-"`
	// Files are every file merged into the inventory, in order (File is
	// the first); Environment is the environment merged over them ("" for
	// none). See layers.go.
	Files       []string `yaml:"-"`
	Environment string   `yaml:"-"`
	// RequireEnvironment refuses the inventory without --env/$RELCTL_ENV
	// when it defines environments: the base alone is never deployed by
	// an operator who forgot -e (layers.go). An extension.
	RequireEnvironment bool `yaml:"require_environment,omitempty"`

	App          string             `yaml:"app"`
	Path         string             `yaml:"path"`
	KeepReleases int                `yaml:"keep_releases"`
	SSH          SSH                `yaml:"ssh"`
	Artifact     Artifact           `yaml:"artifact"`
	Commands     Commands           `yaml:"commands"`
	Migrations   Migrations         `yaml:"migrations"`
	Health       Health             `yaml:"health"`
	Rollout      Rollout            `yaml:"rollout"`
	Emergency    Emergency          `yaml:"emergency"`
	Balancer     Balancer           `yaml:"balancer"`
	Timeouts     Timeouts           `yaml:"timeouts"`
	Releases     map[string]Release `yaml:"releases"`
	// Analysis is canary analysis at the canary gate (analysis.go).
	Analysis Analysis `yaml:"analysis"`
	// Hooks are local commands run at points of a run (hooks.go).
	Hooks Hooks `yaml:"hooks"`
	// Vars are template values for every host ({{.Vars.name}}); a host's own
	// vars override them. An extension of the original inventory keys.
	Vars map[string]string `yaml:"vars"`
	// Roles are named groups of hosts with their own commands, health,
	// batches and balancer membership (roles.go). An extension.
	Roles map[string]Role `yaml:"roles"`
	Hosts []Host          `yaml:"hosts"`
	// Env are environment variables for the commands, delivered on stdin,
	// never in a command line; a value may be a secret resolved when a run
	// starts (env.go). An extension of the original inventory keys.
	Env map[string]EnvValue `yaml:"env,omitempty"`
	// Become runs the inventory's commands as another user through sudo
	// (become.go); commands.<name>.become overrides it per command.
	Become *Become `yaml:"become,omitempty"`

	templates map[string]*Template // parsed commands, filled by validation
	artifact  *template.Template
	roles     map[string]*roleInfo // effective role settings, filled by validation

	// commandBecome is commands.<name>.become, lifted out of the commands
	// mapping before decoding (become.go).
	commandBecome map[string]*Become
}

// SSH holds connection settings; a host may override user, port,
// identity_file, known_hosts and jump.
type SSH struct {
	User           string        `yaml:"user"`
	Port           int           `yaml:"port"`
	IdentityFile   string        `yaml:"identity_file"`
	KnownHosts     StringList    `yaml:"known_hosts"`
	Jump           string        `yaml:"jump"`
	UseSSHConfig   *bool         `yaml:"use_ssh_config"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	MaxParallel    int           `yaml:"max_parallel"`
	// ServerAliveInterval and ServerAliveCountMax have OpenSSH's meaning:
	// a keepalive every interval; a host is dead after CountMax of them in
	// a row go unanswered. Zero (left out): ssh_config's values when
	// use_ssh_config is on, else 15s and 3 (package remote's defaults).
	ServerAliveInterval time.Duration `yaml:"server_alive_interval"`
	ServerAliveCountMax int           `yaml:"server_alive_count_max"`
}

// HostSSH is the subset of SSH settings a single host may override.
type HostSSH struct {
	User         string     `yaml:"user"`
	Port         int        `yaml:"port"`
	IdentityFile string     `yaml:"identity_file"`
	KnownHosts   StringList `yaml:"known_hosts"`
	Jump         string     `yaml:"jump"`
}

// Artifact says where release artifacts are found on the operator's machine.
type Artifact struct {
	// Source is a path template such as ./dist/shop-{{.Version}}.tar.gz,
	// relative to the inventory file's directory.
	Source string `yaml:"source"`
}

// Commands are shell templates run with sh -c on the hosts. Template values
// are shell-quoted when rendered.
type Commands struct {
	Stop        string `yaml:"stop"`
	Start       string `yaml:"start"`
	Health      string `yaml:"health"`
	Version     string `yaml:"version"`
	Migrate     string `yaml:"migrate"`
	PostMigrate string `yaml:"post_migrate"`
}

// Migrations says where migrations run.
type Migrations struct {
	Host string `yaml:"host"`
}

// Health is how a host is judged ready for traffic after it starts.
type Health struct {
	Timeout   time.Duration `yaml:"timeout"`
	Interval  time.Duration `yaml:"interval"`
	StableFor time.Duration `yaml:"stable_for"`
}

// Rollout shapes a routine upgrade.
type Rollout struct {
	Batches            []BatchSize   `yaml:"batches"`
	PauseAfterCanary   *bool         `yaml:"pause_after_canary"`
	WaitBetweenBatches time.Duration `yaml:"wait_between_batches"`
	MaxFailedHosts     int           `yaml:"max_failed_hosts"`
	OnFailure          string        `yaml:"on_failure"`
	// RoleOrder is the order roles are deployed in ([web, worker]), or
	// "together" (every batch takes its share of each role). Roles not
	// named come after, in the order they first appear in hosts.
	RoleOrder StringList `yaml:"role_order"`
}

// Timeouts bound every remote call of a run, per kind of command: when one
// passes, the command's process group is killed on the host and the step
// fails (and is compensated), so a run can never wait forever on a host.
type Timeouts struct {
	Stop        time.Duration `yaml:"stop"`         // the stop command
	Start       time.Duration `yaml:"start"`        // the start command
	Switch      time.Duration `yaml:"switch"`       // pointing current at a release
	HealthCheck time.Duration `yaml:"health_check"` // one run of the health command (health.timeout bounds them all)
	Version     time.Duration `yaml:"version"`      // the version command, and reading current
	Migrate     time.Duration `yaml:"migrate"`      // the pre-deploy migration
	PostMigrate time.Duration `yaml:"post_migrate"` // the post-deploy migration
	Lock        time.Duration `yaml:"lock"`         // taking, renewing, reading and releasing the lock; audit records
	Upload      time.Duration `yaml:"upload"`       // uploading and unpacking one artifact; pruning old releases
	Observe     time.Duration `yaml:"observe"`      // reading a host's state (plan, status, preflight, history)
}

// Emergency shapes an emergency downgrade: bigger batches, shorter drains.
type Emergency struct {
	Batches      []BatchSize   `yaml:"batches"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// Balancer names the load balancer in front of the hosts.
type Balancer struct {
	Kind         string        `yaml:"kind"`
	Backend      string        `yaml:"backend"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// PollInterval is how often a drain or an enable asks the balancer
	// (default 20ms: an admin-socket round trip costs well under 1ms).
	PollInterval time.Duration `yaml:"poll_interval"`
	Endpoints    []Endpoint    `yaml:"endpoints"`
	// UpstreamFile is the nginx file holding `upstream <backend> { ... }`.
	UpstreamFile string `yaml:"upstream_file"`
	// Nginx is the nginx command on the balancer host (default "nginx"),
	// e.g. "sudo nginx" or "nginx -c /etc/nginx/nginx.conf".
	Nginx string `yaml:"nginx"`
	// IdleCheck is an optional nginx command (exit 0 = the server is idle);
	// without it a drain waits drain_timeout.
	IdleCheck string `yaml:"idle_check"`
	// Commands are the exec kind's templates.
	Commands BalancerCommands `yaml:"commands"`
}

// BalancerCommands are the exec balancer's templates ({{.Server}},
// {{.Backend}}, {{.Address}}).
type BalancerCommands struct {
	Drain  string `yaml:"drain"`
	Enable string `yaml:"enable"`
	State  string `yaml:"state"`
}

// Endpoint is one balancer instance. Every instance gets the same commands.
type Endpoint struct {
	SSH    string `yaml:"ssh"`
	Socket string `yaml:"socket"`
	TCP    string `yaml:"tcp"`
}

// Release is one row of the compatibility table.
type Release struct {
	UpgradeFrom string   `yaml:"upgrade_from"`
	DowngradeTo []string `yaml:"downgrade_to"`
}

// Host is one application server.
type Host struct {
	Name    string   `yaml:"name"`
	Address string   `yaml:"address"`
	Server  string   `yaml:"server"`
	Labels  []string `yaml:"labels"`
	Path    string   `yaml:"path"`
	// Upstream is the address the balancer sends this host's traffic to
	// (host:port), used by nginx upstream lines and exec {{.Address}};
	// default: the host's address without its SSH port.
	Upstream string  `yaml:"upstream"`
	SSH      HostSSH `yaml:"ssh"`
	// Vars are this host's template values, merged over the inventory's.
	Vars map[string]string `yaml:"vars"`
	// Env are this host's environment values, merged over the inventory's.
	Env map[string]EnvValue `yaml:"env,omitempty"`
	// Role names the host's role (roles.go); default: DefaultRole.
	Role string `yaml:"role"`
}

// HasLabel reports whether the host carries label l.
func (h Host) HasLabel(l string) bool {
	for _, x := range h.Labels {
		if x == l {
			return true
		}
	}
	return false
}

// StringList accepts a single string or a list of strings.
type StringList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "" {
			*s = nil
			return nil
		}
		*s = StringList{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = l
	return nil
}

// BatchSize is a batch of hosts: a count (2) or a share of the hosts being
// deployed ("25%").
type BatchSize struct {
	N         int
	Percent   int
	IsPercent bool
}

// String renders the size as written in the inventory.
func (b BatchSize) String() string {
	if b.IsPercent {
		return strconv.Itoa(b.Percent) + "%"
	}
	return strconv.Itoa(b.N)
}

// Of returns the number of hosts this size means out of total (at least 1).
func (b BatchSize) Of(total int) int {
	n := b.N
	if b.IsPercent {
		n = (total*b.Percent + 99) / 100
	}
	return max(n, 1)
}

// MarshalYAML implements yaml.Marshaler.
func (b BatchSize) MarshalYAML() (any, error) {
	if b.IsPercent {
		return b.String(), nil
	}
	return b.N, nil
}

// MarshalJSON renders the size as a number or a "25%" string.
func (b BatchSize) MarshalJSON() ([]byte, error) {
	if b.IsPercent {
		return []byte(strconv.Quote(b.String())), nil
	}
	return []byte(strconv.Itoa(b.N)), nil
}

// UnmarshalJSON accepts the forms MarshalJSON writes.
func (b *BatchSize) UnmarshalJSON(p []byte) error {
	s := strings.Trim(string(p), `"`)
	v, err := ParseBatchSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler. Range checks happen in
// validation so that the error can name its place.
func (b *BatchSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: batch size must be a number or a percentage such as \"25%%\"", n.Line)
	}
	v, err := ParseBatchSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseBatchSize parses "3" or "25%" without range checks.
func ParseBatchSize(s string) (BatchSize, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return BatchSize{}, fmt.Errorf("batch size %q is not a percentage such as \"25%%\"", s)
		}
		return BatchSize{Percent: n, IsPercent: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return BatchSize{}, fmt.Errorf("batch size %q is not a number or a percentage such as \"25%%\"", s)
	}
	return BatchSize{N: n}, nil
}
