package fleet

import "time"

// Defaults, applied to keys the inventory leaves out.
const (
	DefaultKeepReleases   = 5
	DefaultSSHPort        = 22
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxParallel    = 20
	DefaultHealthTimeout  = 60 * time.Second
	DefaultHealthInterval = time.Second
	DefaultStableFor      = 2 * time.Second
	DefaultDrainTimeout   = 30 * time.Second
	DefaultEmergencyDrain = 5 * time.Second
	DefaultPollInterval   = 20 * time.Millisecond
	DefaultKnownHosts     = "~/.ssh/known_hosts"

	DefaultStopTimeout        = 2 * time.Minute
	DefaultStartTimeout       = 2 * time.Minute
	DefaultSwitchTimeout      = 30 * time.Second
	DefaultHealthCheckTimeout = 30 * time.Second
	DefaultVersionTimeout     = 15 * time.Second
	DefaultMigrateTimeout     = 30 * time.Minute
	DefaultPostMigrateTimeout = 30 * time.Minute
	DefaultLockTimeout        = 15 * time.Second
	DefaultUploadTimeout      = 15 * time.Minute
	DefaultObserveTimeout     = 20 * time.Second

	OnFailureRollback = "rollback"
	OnFailurePause    = "pause"
)

// applyDefaults fills in what the inventory leaves out; set reports whether
// a key path was written (so an explicit 0, such as stable_for: 0s, stays).
func applyDefaults(inv *Inventory, set func(path string) bool) {
	if !set("keep_releases") {
		inv.KeepReleases = DefaultKeepReleases
	}
	s := &inv.SSH
	// ssh.port is left 0 when absent: the SSH side consults ssh_config's
	// Port first, then uses DefaultSSHPort.
	if len(s.KnownHosts) == 0 {
		s.KnownHosts = StringList{DefaultKnownHosts}
	}
	if s.UseSSHConfig == nil {
		t := true
		s.UseSSHConfig = &t
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = DefaultConnectTimeout
	}
	if !set("ssh.max_parallel") {
		s.MaxParallel = DefaultMaxParallel
	}
	// ssh.server_alive_interval and ssh.server_alive_count_max stay zero
	// when left out: the transport then reads ssh_config (when
	// use_ssh_config is on) before its own defaults, 15s × 3.
	h := &inv.Health
	if h.Timeout == 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if !set("health.stable_for") {
		h.StableFor = DefaultStableFor
	}
	r := &inv.Rollout
	if len(r.Batches) == 0 {
		r.Batches = []BatchSize{{N: 1}, {Percent: 25, IsPercent: true}}
	}
	if r.PauseAfterCanary == nil {
		t := true
		r.PauseAfterCanary = &t
	}
	if r.OnFailure == "" {
		r.OnFailure = OnFailureRollback
	}
	e := &inv.Emergency
	if len(e.Batches) == 0 {
		e.Batches = []BatchSize{{Percent: 50, IsPercent: true}}
	}
	if e.DrainTimeout == 0 {
		e.DrainTimeout = DefaultEmergencyDrain
	}
	if inv.Balancer.DrainTimeout == 0 {
		inv.Balancer.DrainTimeout = DefaultDrainTimeout
	}
	if inv.Balancer.PollInterval == 0 {
		inv.Balancer.PollInterval = DefaultPollInterval
	}
	t := &inv.Timeouts
	for _, d := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{
		{"stop", &t.Stop, DefaultStopTimeout}, {"start", &t.Start, DefaultStartTimeout}, {"switch", &t.Switch, DefaultSwitchTimeout},
		{"health_check", &t.HealthCheck, DefaultHealthCheckTimeout}, {"version", &t.Version, DefaultVersionTimeout},
		{"migrate", &t.Migrate, DefaultMigrateTimeout}, {"post_migrate", &t.PostMigrate, DefaultPostMigrateTimeout},
		{"lock", &t.Lock, DefaultLockTimeout}, {"upload", &t.Upload, DefaultUploadTimeout}, {"observe", &t.Observe, DefaultObserveTimeout},
	} {
		if !set("timeouts." + d.key) {
			*d.v = d.def
		}
	}
	for i := range inv.Hosts {
		hh := &inv.Hosts[i]
		if hh.Server == "" {
			hh.Server = hh.Name
		}
	}
	defaultAnalysis(&inv.Analysis, set)
	defaultHooks(&inv.Hooks)
	if inv.Migrations.Host == "" && len(inv.Hosts) > 0 {
		inv.Migrations.Host = inv.Hosts[0].Name
	}
}
