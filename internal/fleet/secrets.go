package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/relctl/relctl/internal/localexec"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrSecret is wrapped by every secret that cannot be resolved.
var ErrSecret = errors.New("secret not available")

// SecretTimeout bounds one from_command.
const SecretTimeout = 30 * time.Second

// Secrets are the resolved values of an inventory's secret env entries, by
// source, held in memory for one run only. Their String never shows a
// value.
type Secrets struct {
	vals map[string]string // sourceKey → value
}

// String hides the values.
func (s *Secrets) String() string {
	if s == nil {
		return "no secrets"
	}
	return fmt.Sprintf("%d secret(s) resolved", len(s.vals))
}

// GoString hides the values from %#v as well.
func (s *Secrets) GoString() string { return s.String() }

// SecretSource is where secrets are read from; nil fields are the real
// thing (the process environment, files, sh -c).
type SecretSource struct {
	LookupEnv func(string) (string, bool)
	ReadFile  func(string) ([]byte, error)
	// Command runs script and returns its stdout, and stderr for errors.
	Command func(ctx context.Context, dir, script string) (stdout, stderr []byte, err error)
}

// ResolveSecrets reads every secret of the inventory (each source once) and
// returns them, or an error naming each missing one by key, place and
// source, never with a value. Files are relative to the inventory's
// directory, and commands run there; one final newline is trimmed from a
// file or a command's output. An empty secret is an error.
func (inv *Inventory) ResolveSecrets(ctx context.Context, src SecretSource) (*Secrets, error) {
	type ref struct {
		where string // env.KEY or hosts[i] (name).env.KEY
		v     EnvValue
	}
	var refs []ref
	add := func(prefix string, env map[string]EnvValue) {
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if env[k].Secret() {
				refs = append(refs, ref{prefix + "env." + k, env[k]})
			}
		}
	}
	add("", inv.Env)
	for i, h := range inv.Hosts {
		add(fmt.Sprintf("hosts[%d] (%s).", i, h.Name), h.Env)
	}
	s := &Secrets{vals: map[string]string{}}
	failed := map[string]error{}
	var errs []error
	dir := filepath.Dir(inv.File)
	for _, r := range refs {
		key := r.v.sourceKey()
		if _, ok := s.vals[key]; ok {
			continue
		}
		err, seen := failed[key]
		if !seen {
			var val string
			val, err = resolveOne(ctx, src, dir, r.v)
			if err == nil && val == "" {
				err = errors.New("it is empty")
			}
			if err == nil {
				s.vals[key] = val
				continue
			}
			failed[key] = err
		}
		errs = append(errs, fmt.Errorf("%w: %s (%s): %v", ErrSecret, r.where, r.v.Source(), err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func resolveOne(ctx context.Context, src SecretSource, dir string, v EnvValue) (string, error) {
	switch {
	case v.FromEnv != "":
		look := src.LookupEnv
		if look == nil {
			look = os.LookupEnv
		}
		val, ok := look(v.FromEnv)
		if !ok {
			return "", fmt.Errorf("%s is not set in relctl's environment", v.FromEnv)
		}
		return val, nil
	case v.FromFile != "":
		read := src.ReadFile
		if read == nil {
			read = os.ReadFile
		}
		p := expandHome(v.FromFile)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		b, err := read(p)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("cannot read %s: %v", p, err)
		}
		return trimNewline(string(b)), nil
	case v.FromCommand != "":
		run := src.Command
		if run == nil {
			run = runSecretCommand
		}
		cctx, cancel := context.WithTimeout(ctx, SecretTimeout)
		defer cancel()
		out, errOut, err := run(cctx, dir, v.FromCommand)
		if err != nil {
			if cctx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("no answer within %s", SecretTimeout)
			}
			msg := err.Error()
			if tail := lastLine(redact(string(errOut), string(out))); tail != "" {
				msg += ": " + tail
			}
			return "", errors.New(msg)
		}
		return trimNewline(string(out)), nil
	}
	return "", errors.New("no source")
}

func runSecretCommand(ctx context.Context, dir, script string) ([]byte, []byte, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// Its own process group, killed whole at the timeout and with relctl:
	// a child the command forked must not outlive either.
	localexec.Group(cmd, 2*time.Second)
	err := localexec.Run(cmd)
	return out.Bytes(), errOut.Bytes(), err
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, rest)
		}
	}
	return p
}

func trimNewline(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// redact removes from text every line of secret (what a failing command
// printed on stdout) that is long enough to matter, so an error message
// cannot carry it.
func redact(text, secret string) string {
	for _, l := range strings.Split(secret, "\n") {
		if l = strings.TrimSpace(l); len(l) >= 4 {
			text = strings.ReplaceAll(text, l, "[redacted]")
		}
	}
	return text
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return l
}

// Fill adds h's secrets to v.EnvVars (s nil: none). Keys whose secret s
// does not hold are left out.
func (s *Secrets) Fill(inv *Inventory, h Host, v *Values) {
	if s == nil {
		return
	}
	for k, e := range inv.hostEnv(h) {
		if !e.Secret() {
			continue
		}
		if val, ok := s.vals[e.sourceKey()]; ok {
			if v.EnvVars == nil {
				v.EnvVars = map[string]string{}
			}
			v.EnvVars[k] = val
		}
	}
}

// HasSecrets reports whether the inventory has any secret env value.
func (inv *Inventory) HasSecrets() bool { return len(inv.SecretNames()) > 0 }
