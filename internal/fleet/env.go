package fleet

import (
	"maps"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Environment values.
//
// `env:` (top level, and per host, merged over it) names environment
// variables for the inventory's commands. Unlike vars they are not template
// values: they never appear in a command line. They travel to the host on
// the command's stdin, like the RELCTL_* values, and are exported for the
// command there (through sudo too, see become.go). A value is either
// written in the inventory or is a secret taken, when a run starts, from:
//
//	SHOP_DB_URL: {from_env: SHOP_DB_URL}          # relctl's own environment
//	SHOP_API_KEY: {from_file: secrets/api-key}    # a file (relative to the inventory)
//	SHOP_DB_PASS: {from_command: "pass show shop/db"}  # a command's stdout, run with sh -c
//
// Secrets are resolved when a run starts (its preflight), never when a plan
// is made: the plan names them, with their kind, and holds no value.

// EnvValue is one env: entry: a literal Value, or one secret source.
type EnvValue struct {
	Value       string `yaml:"-"`
	FromEnv     string `yaml:"from_env"`
	FromFile    string `yaml:"from_file"`
	FromCommand string `yaml:"from_command"`
}

var envValueType = reflect.TypeOf(EnvValue{})

// UnmarshalYAML accepts a scalar (a literal value) or a mapping naming a
// source; the loader's walk has checked the keys and kinds.
func (v *EnvValue) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*v = EnvValue{Value: n.Value}
		return nil
	}
	type plain EnvValue
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*v = EnvValue(p)
	return nil
}

// Secret reports whether the value comes from a source at run time.
func (v EnvValue) Secret() bool {
	return v.FromEnv != "" || v.FromFile != "" || v.FromCommand != ""
}

// Kind is the source's key (from_env, from_file, from_command), or "" for
// a literal.
func (v EnvValue) Kind() string {
	switch {
	case v.FromEnv != "":
		return "from_env"
	case v.FromFile != "":
		return "from_file"
	case v.FromCommand != "":
		return "from_command"
	}
	return ""
}

// Source names where a secret comes from, for messages: `from_env
// SHOP_DB_URL`, `from_file secrets/db`, `from_command "pass show shop/db"`.
// It never holds the value.
func (v EnvValue) Source() string {
	switch {
	case v.FromEnv != "":
		return "from_env " + v.FromEnv
	case v.FromFile != "":
		return "from_file " + v.FromFile
	case v.FromCommand != "":
		return "from_command " + strconv.Quote(v.FromCommand)
	}
	return ""
}

// sourceKey identifies a source, so that each is resolved once per run.
func (v EnvValue) sourceKey() string {
	return v.Kind() + "\x00" + v.FromEnv + v.FromFile + v.FromCommand
}

var (
	envKeyRe   = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)
	envNameRe2 = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// hostEnv is the env of host h: the inventory's, with the host's over it.
func (inv *Inventory) hostEnv(h Host) map[string]EnvValue {
	env := maps.Clone(inv.Env)
	if env == nil {
		env = map[string]EnvValue{}
	}
	maps.Copy(env, h.Env)
	return env
}

// literalEnv is h's env without its secrets: what HostValues carries.
func (inv *Inventory) literalEnv(h Host) map[string]string {
	out := map[string]string{}
	for k, v := range inv.hostEnv(h) {
		if !v.Secret() {
			out[k] = v.Value
		}
	}
	return out
}

// SecretNames lists the secret env keys of the inventory with their kind
// ("SHOP_DB_URL from_env"), sorted; for the plan, which shows no value.
func (inv *Inventory) SecretNames() []string {
	seen := map[string]bool{}
	add := func(env map[string]EnvValue) {
		for k, v := range env {
			if v.Secret() {
				seen[k+" "+v.Kind()] = true
			}
		}
	}
	add(inv.Env)
	for _, h := range inv.Hosts {
		add(h.Env)
	}
	var out []string // nil when there are none: a plan round-trips through JSON unchanged
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// validateEnv checks env keys and sources at path (env, or hosts[i].env).
func (l *loader) validateEnv(path string, env map[string]EnvValue) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := env[k]
		p := path + "." + strconv.Quote(k)
		switch {
		case !envKeyRe.MatchString(k):
			l.at(p, "env name %q must be an environment variable name: capital letters, digits and _, not starting with a digit", k)
			continue
		case strings.HasPrefix(k, "RELCTL_"):
			l.at(p, "env name %q: RELCTL_ names are relctl's own (RELCTL_VERSION, RELCTL_HOST, ...)", k)
			continue
		}
		n := 0
		for _, s := range []string{v.FromEnv, v.FromFile, v.FromCommand} {
			if s != "" {
				n++
			}
		}
		_, isMap := l.lines[p+".from_env"]
		_, isMap2 := l.lines[p+".from_file"]
		_, isMap3 := l.lines[p+".from_command"]
		given := isMap || isMap2 || isMap3
		switch {
		case n > 1:
			l.at(p, "a secret takes one source: from_env, from_file or from_command, not %d of them", n)
		case n == 0 && given:
			l.at(p, "the secret's source is empty: give from_env, from_file or from_command a value")
		case v.FromEnv != "" && !envNameRe2.MatchString(v.FromEnv):
			l.at(p+".from_env", "from_env %q is not an environment variable name", v.FromEnv)
		}
	}
}

// isEnvScalar: an env: value may be a scalar (a literal); a mapping is
// walked as EnvValue's keys (from_env, from_file, from_command).
func isEnvScalar(n *yaml.Node, t reflect.Type) bool {
	return t == envValueType && n.Kind == yaml.ScalarNode
}

// MarshalYAML writes a literal as its value and a secret as its source
// (never a resolved value: EnvValue holds none).
func (v EnvValue) MarshalYAML() (any, error) {
	if !v.Secret() {
		return v.Value, nil
	}
	type plain struct {
		FromEnv     string `yaml:"from_env,omitempty"`
		FromFile    string `yaml:"from_file,omitempty"`
		FromCommand string `yaml:"from_command,omitempty"`
	}
	return plain{v.FromEnv, v.FromFile, v.FromCommand}, nil
}
