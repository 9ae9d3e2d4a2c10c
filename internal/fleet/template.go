package fleet

import (
	"fmt"
	"maps"
	"strings"
	"text/template"

	"github.com/relctl/relctl/internal/shell"
)

// Values are what a command template may use. Every value is shell-quoted
// when it is put into a command, and exported as a RELCTL_* variable.
type Values struct {
	App     string
	Version string // the version this step takes the host to
	From    string // the version the host runs before this step
	Release string // the release directory of Version
	Path    string // the app's base path on the host
	Host    string // the host's inventory name
	Address string // the host's address as written in the inventory
	Vars    map[string]string
	// EnvVars are the inventory's env: values for the host (secrets only
	// once a run resolved them, see Secrets): exported by Env, never
	// template values.
	EnvVars map[string]string
}

// Env returns the values as RELCTL_* environment variables.
func (v Values) Env() map[string]string {
	env := maps.Clone(v.EnvVars)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, map[string]string{
		"RELCTL_APP":     v.App,
		"RELCTL_VERSION": v.Version,
		"RELCTL_FROM":    v.From,
		"RELCTL_RELEASE": v.Release,
		"RELCTL_PATH":    v.Path,
		"RELCTL_HOST":    v.Host,
		"RELCTL_ADDRESS": v.Address,
	})
	return env
}

// quoted is what templates see: the same fields, already shell-quoted.
type quoted struct {
	App, Version, From, Release, Path, Host, Address string
	Vars                                             map[string]string
}

func (v Values) quoted() quoted {
	q := quoted{
		App: shell.Quote(v.App), Version: shell.Quote(v.Version), From: shell.Quote(v.From),
		Release: shell.Quote(v.Release), Path: shell.Quote(v.Path), Host: shell.Quote(v.Host),
		Address: shell.Quote(v.Address), Vars: make(map[string]string, len(v.Vars)),
	}
	for k, x := range v.Vars {
		q.Vars[k] = shell.Quote(x)
	}
	return q
}

// Template is a parsed command template.
type Template struct {
	src string
	t   *template.Template
}

// ParseTemplate parses a command template; unknown fields and missing vars
// are errors when it is rendered.
func ParseTemplate(name, src string) (*Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("template does not parse: %s", strings.TrimPrefix(err.Error(), "template: "))
	}
	return &Template{src: src, t: t}, nil
}

// String returns the template as written.
func (t *Template) String() string { return t.src }

// Render fills in the template with shell-quoted values.
func (t *Template) Render(v Values) (string, error) {
	var b strings.Builder
	if err := t.t.Execute(&b, v.quoted()); err != nil {
		return "", fmt.Errorf("template: %s", cleanExecErr(err))
	}
	return b.String(), nil
}

func cleanExecErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "template: ") {
		// "template: start:1:10: executing "start" at <.Foo>: can't evaluate field Foo in type ..."
		s = s[i+2:]
		if j := strings.Index(s, " in type"); j >= 0 {
			s = s[:j]
		}
	}
	return s
}

// Command names, in the order they are checked.
const (
	CmdStop        = "stop"
	CmdStart       = "start"
	CmdHealth      = "health"
	CmdVersion     = "version"
	CmdMigrate     = "migrate"
	CmdPostMigrate = "post_migrate"
)

// Template returns the parsed command template called name (stop, start,
// health, version, migrate, post_migrate), or nil when the inventory does not
// define it.
func (inv *Inventory) Template(name string) *Template {
	return inv.templates[name]
}

// HostValues returns the template values of host h for a step that takes it
// from version from to version to.
func (inv *Inventory) HostValues(h Host, from, to string) Values {
	vars := maps.Clone(inv.Vars)
	if vars == nil {
		vars = map[string]string{}
	}
	maps.Copy(vars, h.Vars)
	p := inv.HostPath(h)
	return Values{
		App: inv.App, Version: to, From: from, Release: ReleaseDir(p, to),
		Path: p, Host: h.Name, Address: h.Address, Vars: vars, EnvVars: inv.literalEnv(h),
	}
}

// HostPath is the app's base path on h.
func (inv *Inventory) HostPath(h Host) string {
	if h.Path != "" {
		return h.Path
	}
	return inv.Path
}

// ReleaseDir is where version v is unpacked under base path p.
func ReleaseDir(p, v string) string {
	return strings.TrimRight(p, "/") + "/releases/" + v
}

// ArtifactPath renders the artifact source template for version v. The
// result is relative to the inventory file's directory unless absolute.
func (inv *Inventory) ArtifactPath(v string) (string, error) {
	var b strings.Builder
	if err := inv.artifact.Execute(&b, struct{ Version, App string }{v, inv.App}); err != nil {
		return "", fmt.Errorf("artifact.source: %s", cleanExecErr(err))
	}
	return b.String(), nil
}
