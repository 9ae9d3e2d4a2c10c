package fleet

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/relctl/relctl/internal/version"
)

var (
	nameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	labelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
	varRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	// safePathRe keeps paths free of anything a shell or a human would
	// misread; they are quoted anyway.
	safePathRe = regexp.MustCompile(`^/[A-Za-z0-9._/@+-]*$`)
	// urlRe finds a URL (https://, s3://, file://...) where a local path is
	// expected: relctl does not fetch artifacts.
	urlRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
)

// Balancer kinds.
const (
	BalancerHAProxy = "haproxy"
	BalancerNginx   = "nginx"
	BalancerExec    = "exec"
	BalancerNone    = "none"
)

func (l *loader) validate(inv *Inventory) {
	if inv.App == "" {
		l.missing("", "app", "app is required")
	} else if !nameRe.MatchString(inv.App) {
		l.at("app", "app %q may hold only letters, digits and . _ -", inv.App)
	}
	l.absPath("path", inv.Path, true)
	if inv.KeepReleases < 2 {
		l.at("keep_releases", "keep_releases must be at least 2, so that the release a rollback needs is kept (got %d)", inv.KeepReleases)
	}
	l.validateSSH(inv)
	l.validateArtifact(inv)
	l.validateHosts(inv)
	l.validateCommands(inv)
	l.validateTimings(inv)
	l.validateBatches("rollout.batches", inv.Rollout.Batches)
	l.validateBatches("emergency.batches", inv.Emergency.Batches)
	switch inv.Rollout.OnFailure {
	case OnFailureRollback, OnFailurePause:
	default:
		l.at("rollout.on_failure", "on_failure must be %q or %q, not %q", OnFailureRollback, OnFailurePause, inv.Rollout.OnFailure)
	}
	if inv.Rollout.MaxFailedHosts < 0 {
		l.at("rollout.max_failed_hosts", "max_failed_hosts must not be negative (got %d)", inv.Rollout.MaxFailedHosts)
	}
	l.validateBalancer(inv)
	l.validateReleases(inv)
	l.validateAnalysis(inv)
	l.validateRoles(inv)
	l.validateHooks(inv)
	for k := range inv.Vars {
		if !varRe.MatchString(k) {
			l.at("vars."+strconv.Quote(k), "var name %q must be a template identifier (letters, digits, _)", k)
		}
	}
	l.validateEnv("env", inv.Env)
	for i, h := range inv.Hosts {
		l.validateEnv(fmt.Sprintf("hosts[%d].env", i), h.Env)
	}
	l.validateBecome(inv)
}

func (l *loader) absPath(key, p string, required bool) {
	switch {
	case p == "" && required:
		i := strings.LastIndexByte(key, '.')
		l.missing(key[:max(i, 0)], key, "%s is required", key[i+1:])
	case p == "":
	case !path.IsAbs(p):
		l.at(key, "%s must be an absolute path (got %q)", key[strings.LastIndexByte(key, '.')+1:], p)
	case !safePathRe.MatchString(p):
		l.at(key, "%s %q may hold only letters, digits and / . _ @ + -", key[strings.LastIndexByte(key, '.')+1:], p)
	}
}

func (l *loader) validateSSH(inv *Inventory) {
	s := inv.SSH
	if s.Port < 0 || s.Port > 65535 || s.Port == 0 && l.has("ssh.port") {
		l.at("ssh.port", "port must be between 1 and 65535 (got %d)", s.Port)
	}
	if s.MaxParallel < 1 {
		l.at("ssh.max_parallel", "max_parallel must be at least 1 (got %d)", s.MaxParallel)
	}
	if s.ConnectTimeout < 0 {
		l.at("ssh.connect_timeout", "connect_timeout must be positive")
	}
	if _, set := l.lines["ssh.server_alive_interval"]; set && s.ServerAliveInterval <= 0 {
		l.at("ssh.server_alive_interval", "server_alive_interval must be positive (got %s): relctl always checks that hosts answer; leave it out for ssh_config's value or 15s", s.ServerAliveInterval)
	}
	if _, set := l.lines["ssh.server_alive_count_max"]; set && s.ServerAliveCountMax < 1 {
		l.at("ssh.server_alive_count_max", "server_alive_count_max must be at least 1 (got %d); leave it out for ssh_config's value or 3", s.ServerAliveCountMax)
	}
}

func (l *loader) validateArtifact(inv *Inventory) {
	src := inv.Artifact.Source
	if src == "" {
		l.missing("artifact", "artifact.source", "artifact.source is required: a path template such as ./dist/%s-{{.Version}}.tar.gz", inv.App)
		return
	}
	if urlRe.MatchString(strings.TrimSpace(src)) {
		l.at("artifact.source", "URLs are not fetched yet; give a local path template such as ./dist/%s-{{.Version}}.tar.gz (got %q)", inv.App, src)
		return
	}
	t, err := template.New("artifact").Option("missingkey=error").Parse(src)
	if err != nil {
		l.at("artifact.source", "template does not parse: %s", strings.TrimPrefix(err.Error(), "template: "))
		return
	}
	inv.artifact = t
	if !strings.Contains(src, ".Version") {
		l.at("artifact.source", "source must contain {{.Version}}, or every version would be the same file")
		return
	}
	if p, err := inv.ArtifactPath("1.0.0"); err != nil {
		l.at("artifact.source", "%s (only {{.Version}} and {{.App}} are known here)", strings.TrimPrefix(err.Error(), "artifact.source: "))
	} else if urlRe.MatchString(strings.TrimSpace(p)) {
		l.at("artifact.source", "URLs are not fetched yet; give a local path template such as ./dist/%s-{{.Version}}.tar.gz (it renders to %q)", inv.App, p)
	}
}

func (l *loader) validateHosts(inv *Inventory) {
	if len(inv.Hosts) == 0 {
		l.missing("", "hosts", "hosts: at least one host is required")
		return
	}
	names := map[string]int{}
	addrs := map[string]int{}
	servers := map[string]int{}
	for i, h := range inv.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if h.Name == "" {
			l.missing(p, p+".name", "name is required")
		} else if !nameRe.MatchString(h.Name) {
			l.at(p+".name", "name %q may hold only letters, digits and . _ -", h.Name)
		} else if j, dup := names[h.Name]; dup {
			l.at(p+".name", "name %q is already used by hosts[%d]", h.Name, j)
		} else {
			names[h.Name] = i
		}
		if h.Address == "" {
			l.missing(p, p+".address", "address is required")
		} else if key, err := addrKey(h, inv.SSH.Port); err != nil {
			l.at(p+".address", "%v", err)
		} else if j, dup := addrs[key]; dup {
			l.at(p+".address", "address %q is already used by hosts[%d] (%s)", h.Address, j, inv.Hosts[j].Name)
		} else {
			addrs[key] = i
		}
		if h.Role != "" && !nameRe.MatchString(h.Role) {
			l.at(p+".role", "role %q may hold only letters, digits and . _ -", h.Role)
		}
		if h.Server != "" && !nameRe.MatchString(h.Server) {
			l.at(p+".server", "server %q may hold only letters, digits and . _ - (it is sent to the balancer's admin API)", h.Server)
		} else if h.Server != "" {
			if j, dup := servers[h.Server]; dup {
				l.at(p+".server", "balancer server %q is already used by hosts[%d] (%s)", h.Server, j, inv.Hosts[j].Name)
			} else {
				servers[h.Server] = i
			}
		}
		l.absPath(p+".path", h.Path, false)
		for j, lb := range h.Labels {
			if !labelRe.MatchString(lb) {
				l.at(fmt.Sprintf("%s.labels[%d]", p, j), "label %q may hold only letters, digits and . _ / -", lb)
			}
		}
		if h.SSH.Port < 0 || h.SSH.Port > 65535 {
			l.at(p+".ssh.port", "port must be between 1 and 65535 (got %d)", h.SSH.Port)
		}
		for k := range h.Vars {
			if !varRe.MatchString(k) {
				l.at(p+".vars."+strconv.Quote(k), "var name %q must be a template identifier (letters, digits, _)", k)
			}
		}
	}
	if m := inv.Migrations.Host; m != "" {
		if _, ok := names[m]; !ok {
			l.at("migrations.host", "migrations.host %q is not one of the hosts", m)
		}
	}
}

// addrKey normalises a host's address to host:port for duplicate checks.
func addrKey(h Host, defPort int) (string, error) {
	a := h.Address
	if strings.ContainsAny(a, " \t\n'\"`$;&|<>()\\") {
		return "", fmt.Errorf("address %q holds characters an address cannot have", a)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		host, port = strings.Trim(a, "[]"), ""
	}
	if port == "" {
		p := defPort
		if h.SSH.Port != 0 {
			p = h.SSH.Port
		}
		if p == 0 {
			p = DefaultSSHPort
		}
		port = strconv.Itoa(p)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("address %q has a bad port", a)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

func (l *loader) validateCommands(inv *Inventory) {
	inv.templates = map[string]*Template{}
	c := inv.Commands
	for _, cmd := range []struct {
		name, src string
		required  bool
	}{
		{CmdStop, c.Stop, true},
		{CmdStart, c.Start, true},
		{CmdHealth, c.Health, true},
		{CmdVersion, c.Version, false},
		{CmdMigrate, c.Migrate, false},
		{CmdPostMigrate, c.PostMigrate, false},
	} {
		key := "commands." + cmd.name
		if cmd.src == "" {
			if cmd.required {
				l.missing("commands", key, "%s is required", key)
			}
			continue
		}
		t, err := ParseTemplate(cmd.name, cmd.src)
		if err != nil {
			l.at(key, "%v", err)
			continue
		}
		// Render once for every host, so that an unknown field or a var
		// missing on one host is found now and not mid-rollout.
		for i, h := range inv.Hosts {
			if _, err := t.Render(inv.HostValues(h, "1.0.0", "1.0.1")); err != nil {
				l.at(key, "%v (for hosts[%d] %s)", err, i, h.Name)
				break
			}
		}
		inv.templates[cmd.name] = t
	}
}

func (l *loader) validateTimings(inv *Inventory) {
	h := inv.Health
	if h.Timeout <= 0 {
		l.at("health.timeout", "timeout must be positive")
	}
	if h.Interval <= 0 {
		l.at("health.interval", "interval must be positive")
	} else if h.Interval > h.Timeout {
		l.at("health.interval", "interval %s is longer than timeout %s", h.Interval, h.Timeout)
	}
	if h.StableFor < 0 {
		l.at("health.stable_for", "stable_for must not be negative")
	} else if h.StableFor >= h.Timeout {
		l.at("health.stable_for", "stable_for %s must be shorter than timeout %s", h.StableFor, h.Timeout)
	}
	if inv.Rollout.WaitBetweenBatches < 0 {
		l.at("rollout.wait_between_batches", "wait_between_batches must not be negative")
	}
	if inv.Balancer.PollInterval < 0 {
		l.at("balancer.poll_interval", "poll_interval must be positive")
	}
	if inv.Balancer.DrainTimeout < 0 {
		l.at("balancer.drain_timeout", "drain_timeout must not be negative")
	}
	if inv.Emergency.DrainTimeout < 0 {
		l.at("emergency.drain_timeout", "drain_timeout must not be negative")
	}
	l.validateTimeouts(inv)
}

// validateTimeouts checks every timeouts key: positive (an explicit 0 would
// mean "no deadline", which relctl does not offer) and no longer than a day,
// which would mean "forever" to an operator on call.
func (l *loader) validateTimeouts(inv *Inventory) {
	t := inv.Timeouts
	for _, k := range []struct {
		key string
		v   time.Duration
	}{
		{"stop", t.Stop}, {"start", t.Start}, {"switch", t.Switch}, {"health_check", t.HealthCheck},
		{"version", t.Version}, {"migrate", t.Migrate}, {"post_migrate", t.PostMigrate},
		{"lock", t.Lock}, {"upload", t.Upload}, {"observe", t.Observe},
	} {
		switch {
		case k.v <= 0:
			l.at("timeouts."+k.key, "%s must be positive (got %s): every remote command needs a deadline", k.key, k.v)
		case k.v > 24*time.Hour:
			l.at("timeouts."+k.key, "%s %s is longer than 24h: a run must never wait that long on a host", k.key, k.v)
		}
	}
	if t.HealthCheck > 0 && inv.Health.Timeout > 0 && t.HealthCheck > inv.Health.Timeout+time.Minute {
		l.at("timeouts.health_check", "health_check %s is far longer than health.timeout %s, which bounds all the checks of a host", t.HealthCheck, inv.Health.Timeout)
	}
}

func (l *loader) validateBatches(key string, bs []BatchSize) {
	for i, b := range bs {
		p := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case b.IsPercent && (b.Percent <= 0 || b.Percent > 100):
			l.at(p, "batch size %s must be between 1%% and 100%%", b)
		case !b.IsPercent && b.N <= 0:
			l.at(p, "batch size must be at least 1 (got %d)", b.N)
		}
	}
}

func (l *loader) validateBalancer(inv *Inventory) {
	b := inv.Balancer
	switch b.Kind {
	case "":
		l.missing("balancer", "balancer.kind", "balancer.kind is required: haproxy, nginx, exec or none (none sends traffic to hosts while they restart)")
		return
	case BalancerHAProxy, BalancerNginx, BalancerExec, BalancerNone:
	default:
		l.at("balancer.kind", "unknown balancer kind %q: use haproxy, nginx, exec or none", b.Kind)
		return
	}
	if b.Kind == BalancerNone {
		return
	}
	if b.Backend == "" && b.Kind != BalancerExec {
		l.missing("balancer", "balancer.backend", "balancer.backend is required for kind %s", b.Kind)
	} else if b.Backend != "" && !nameRe.MatchString(b.Backend) {
		l.at("balancer.backend", "backend %q may hold only letters, digits and . _ - (it is sent to the balancer's admin API)", b.Backend)
	}
	if len(b.Endpoints) == 0 && b.Kind != BalancerExec {
		l.missing("balancer", "balancer.endpoints", "balancer.endpoints: at least one endpoint is required for kind %s", b.Kind)
	}
	for i, e := range b.Endpoints {
		p := fmt.Sprintf("balancer.endpoints[%d]", i)
		switch b.Kind {
		case BalancerHAProxy:
			if (e.Socket == "") == (e.TCP == "") {
				l.at(p, "an haproxy endpoint needs exactly one of socket or tcp")
			}
			if e.TCP != "" {
				if _, _, err := net.SplitHostPort(e.TCP); err != nil {
					l.at(p+".tcp", "tcp %q is not host:port", e.TCP)
				}
			}
			if e.Socket != "" {
				l.absPath(p+".socket", e.Socket, false)
			}
		case BalancerNginx:
			if e.Socket != "" || e.TCP != "" {
				l.at(p, "an nginx endpoint has only ssh (the host whose upstream file is edited), or nothing for this machine")
			}
		}
	}
	switch b.Kind {
	case BalancerNginx:
		l.absPath("balancer.upstream_file", b.UpstreamFile, true)
	case BalancerExec:
		for _, c := range []struct{ name, src string }{{"drain", b.Commands.Drain}, {"enable", b.Commands.Enable}, {"state", b.Commands.State}} {
			key := "balancer.commands." + c.name
			if c.src == "" {
				if c.name != "state" {
					l.missing("balancer", key, "%s is required for kind exec", key)
				}
				continue
			}
			t, err := template.New(c.name).Option("missingkey=error").Parse(c.src)
			if err != nil {
				l.at(key, "template does not parse: %s", strings.TrimPrefix(err.Error(), "template: "))
				continue
			}
			var sb strings.Builder
			if err := t.Execute(&sb, struct{ Server, Backend, Address string }{"s", "b", "a"}); err != nil {
				l.at(key, "template: %s (known: {{.Server}}, {{.Backend}}, {{.Address}})", cleanExecErr(err))
			}
		}
	}
}

func (l *loader) validateReleases(inv *Inventory) {
	for v, r := range inv.Releases {
		p := "releases." + strconv.Quote(v)
		if err := version.Valid(v); err != nil {
			l.at(p, "%v", err)
			continue
		}
		if r.UpgradeFrom != "" {
			if _, err := version.ParseConstraint(r.UpgradeFrom); err != nil {
				l.at(p+".upgrade_from", "%v", err)
			}
		}
		for i, d := range r.DowngradeTo {
			if err := version.Valid(d); err != nil {
				l.at(fmt.Sprintf("%s.downgrade_to[%d]", p, i), "%v", err)
			}
		}
	}
}

// has reports whether the inventory wrote key path p.
func (l *loader) has(p string) bool { _, ok := l.lines[p]; return ok }
