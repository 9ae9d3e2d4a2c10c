package fleet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const secBase = `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands:
  stop: {command: "systemctl stop shop", become: {method: sudo, user: root}}
  start: "start-it"
  health: {command: "check", become: {method: none}}
balancer: {kind: none}
become: {user: shop}
env:
  RAILS_ENV: production
  SHOP_DB_URL: {from_env: SHOP_DB_URL}
  SHOP_KEY: {from_file: key.txt}
hosts:
  - {name: web1, address: 10.0.0.11}
  - name: web2
    address: 10.0.0.12
    env: {SHOP_KEY: {from_command: "printf k2"}, REGION: eu}
`

func TestEnvAndBecome(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(secBase))
	if err != nil {
		t.Fatal(err)
	}
	if b := inv.BecomeFor(CmdStop); b == nil || b.User != "root" || b.Method != BecomeSudo {
		t.Errorf("stop become = %+v", b)
	}
	if b := inv.BecomeFor(CmdStart); b == nil || b.User != "shop" {
		t.Errorf("start become = %+v, want the top-level one", b)
	}
	if b := inv.BecomeFor(CmdHealth); b != nil {
		t.Errorf("health become = %+v, want none", b)
	}
	if inv.Commands.Stop != "systemctl stop shop" || inv.Template(CmdStop).String() != "systemctl stop shop" {
		t.Errorf("stop command = %q", inv.Commands.Stop)
	}
	if got := strings.Join(inv.SecretNames(), ","); got != "SHOP_DB_URL from_env,SHOP_KEY from_command,SHOP_KEY from_file" {
		t.Errorf("secret names = %s", got)
	}
	v := inv.HostValues(inv.Hosts[1], "1.0.0", "1.1.0")
	env := v.Env()
	if env["RAILS_ENV"] != "production" || env["REGION"] != "eu" || env["RELCTL_VERSION"] != "1.1.0" {
		t.Errorf("env = %v", env)
	}
	if _, ok := env["SHOP_DB_URL"]; ok {
		t.Error("an unresolved secret is in the environment")
	}

	dir := t.TempDir()
	inv.File = filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(filepath.Join(dir, "key.txt"), []byte("k1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := inv.ResolveSecrets(context.Background(), SecretSource{LookupEnv: func(k string) (string, bool) {
		return map[string]string{"SHOP_DB_URL": "postgres://canary"}[k], k == "SHOP_DB_URL"
	}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "canary") {
		t.Errorf("Secrets.String shows a value: %s", s)
	}
	for i, want := range []string{"k1", "k2"} {
		v := inv.HostValues(inv.Hosts[i], "1.0.0", "1.1.0")
		s.Fill(inv, inv.Hosts[i], &v)
		env := v.Env()
		if env["SHOP_DB_URL"] != "postgres://canary" || env["SHOP_KEY"] != want {
			t.Errorf("%s: env = %v", inv.Hosts[i].Name, env)
		}
	}
}

func TestSecretMissing(t *testing.T) {
	inv, err := Parse(filepath.Join(t.TempDir(), "fleet.yaml"), []byte(strings.Replace(secBase, `"printf k2"`, `"echo oops >&2; exit 3"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = inv.ResolveSecrets(context.Background(), SecretSource{LookupEnv: func(string) (string, bool) { return "", false }})
	if !errors.Is(err, ErrSecret) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{
		"env.SHOP_DB_URL (from_env SHOP_DB_URL): SHOP_DB_URL is not set in relctl's environment",
		"env.SHOP_KEY (from_file key.txt): cannot read ",
		`hosts[1] (web2).env.SHOP_KEY (from_command "echo oops >&2; exit 3"): exit status 3: oops`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\nlacks %s", err, want)
		}
	}
	// An empty secret is missing, and a failing command's stdout (a value)
	// never reaches the message.
	inv2, err := Parse("fleet.yaml", []byte(strings.Replace(secBase, `"printf k2"`, `"printf %s%s s3cr3t value; printf %s%s s3cr3t value >&2; exit 1"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = inv2.ResolveSecrets(context.Background(), SecretSource{
		LookupEnv: func(string) (string, bool) { return "", true },
		ReadFile:  func(string) ([]byte, error) { return []byte("x"), nil },
	})
	if err == nil || !strings.Contains(err.Error(), "env.SHOP_DB_URL (from_env SHOP_DB_URL): it is empty") || strings.Contains(err.Error(), "s3cr3tvalue") {
		t.Errorf("err = %v", err)
	}
}

func TestBecomeWrap(t *testing.T) {
	b := &Become{Method: BecomeSudo, User: "root"}
	script, env := b.Wrap("systemctl stop 'shop'", map[string]string{"A": "x'y", "B": "2"})
	if !strings.HasPrefix(script, `printf '%s\n' "${RELCTL_BECOME_ENV-}" | sudo -n -u root -- /bin/sh -c `) ||
		!strings.HasSuffix(script, ` relctl-become 'systemctl stop '\''shop'\'''`) {
		t.Errorf("script = %s", script)
	}
	if env["A"] != "x'y" || env[BecomeEnvVar] != "export A='x'\\''y'\nexport B=2\n" {
		t.Errorf("env = %q", env)
	}
	if s, e := (*Become)(nil).Wrap("x", nil); s != "x" || e != nil {
		t.Error("nil become changed the command")
	}
	if ResolveBecome(&Become{Method: BecomeNone}, b) != nil || ResolveBecome(nil, b) != b || ResolveBecome(nil, nil) != nil {
		t.Error("ResolveBecome order")
	}
}

// TestEnvBecomeMistakes: every mistake in env: and become names its place.
func TestEnvBecomeMistakes(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"lower-case env name", "  RAILS_ENV: production", "  rails_env: production", `fleet.yaml:11: env."rails_env": env name "rails_env" must be an environment variable name`},
		{"reserved env name", "  RAILS_ENV: production", "  RELCTL_X: production", `fleet.yaml:11: env."RELCTL_X": env name "RELCTL_X": RELCTL_ names are relctl's own`},
		{"two sources", "{from_env: SHOP_DB_URL}", "{from_env: SHOP_DB_URL, from_file: x}", `fleet.yaml:12: env."SHOP_DB_URL": a secret takes one source: from_env, from_file or from_command, not 2 of them`},
		{"unknown source", "{from_env: SHOP_DB_URL}", "{from_vault: x}", `fleet.yaml:12: env."SHOP_DB_URL": unknown key "from_vault"`},
		{"misspelt source", "{from_env: SHOP_DB_URL}", "{from_evn: X}", `fleet.yaml:12: env."SHOP_DB_URL": unknown key "from_evn" (did you mean "from_env"?)`},
		{"empty source", "{from_env: SHOP_DB_URL}", "{from_env: \"\"}", `fleet.yaml:12: env."SHOP_DB_URL": the secret's source is empty`},
		{"bad from_env name", "{from_env: SHOP_DB_URL}", "{from_env: \"A-B\"}", `fleet.yaml:12: env."SHOP_DB_URL".from_env: from_env "A-B" is not an environment variable name`},
		{"env value a list", "{from_env: SHOP_DB_URL}", "[a, b]", `fleet.yaml:12: env."SHOP_DB_URL": env."SHOP_DB_URL" must be a mapping of keys, not a list`},
		{"host env name", "REGION: eu}", "region: eu}", `fleet.yaml:18: hosts[1] (web2).env."region": env name "region" must be`},
		{"become method", "become: {user: shop}", "become: {method: su, user: shop}", `fleet.yaml:9: become.method: become method must be "sudo" or "none", not "su"`},
		{"become user", "become: {user: shop}", "become: {user: \"a b\"}", `fleet.yaml:9: become.user: become user "a b" may hold only letters`},
		{"become unknown key", "become: {user: shop}", "become: {usr: shop}", `fleet.yaml:9: become: unknown key "usr" (did you mean "user"?)`},
		{"become none with a user", "become: {method: none}}", "become: {method: none, user: x}}", `fleet.yaml:7: commands.health.become.user: become method none runs as the SSH user`},
		{"command become method", "become: {method: sudo, user: root}}", "become: {method: doas}}", `fleet.yaml:5: commands.stop.become.method: become method must be "sudo" or "none", not "doas"`},
		{"command mapping unknown key", `{command: "systemctl stop shop", become`, `{cmd: "systemctl stop shop", become`, `fleet.yaml:5: commands.stop: unknown key "cmd": a command is a string, or {command: ..., become: {method: sudo, user: ...}}`},
		{"command mapping without command", `{command: "systemctl stop shop", become`, `{become`, `fleet.yaml:5: commands.stop: command is required when stop is a mapping`},
		{"command become not a mapping", "become: {method: sudo, user: root}}", "become: root}", `fleet.yaml:5: commands.stop.become: commands.stop.become must be a mapping of keys, not the value "root"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(secBase, tc.from, tc.to, 1)
			if src == secBase {
				t.Fatalf("%q not in the base", tc.from)
			}
			_, err := Parse("fleet.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Errorf("error\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
}

// A command written as a mapping works in an environment overlay too, and
// an overlay may set only a command's become.
func TestBecomeInEnvironment(t *testing.T) {
	src := secBase + `environments:
  staging:
    commands: {stop: {become: {user: stg}}, start: {become: {user: stg}}}
  production:
    commands: {start: {command: x, become: {method: none}}}
`
	inv, err := Parse("fleet.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if b := inv.BecomeFor(CmdStart); b == nil || b.User != "shop" {
		t.Errorf("base start become = %+v", b)
	}
	inv, err = ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte(src)}, "production")
	if err != nil {
		t.Fatal(err)
	}
	if b := inv.BecomeFor(CmdStart); b != nil || inv.Commands.Start != "x" {
		t.Errorf("production start: become %+v command %q", b, inv.Commands.Start)
	}
	// staging's stop merges over the base's mapping (its become only);
	// its start is a mapping without command over a string, which it
	// replaces: command is missing.
	_, err = ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte(src)}, "staging")
	if err == nil || !strings.Contains(err.Error(), "fleet.yaml:21: commands.start: command is required") || strings.Contains(err.Error(), "commands.stop") {
		t.Errorf("staging: %v", err)
	}
	src = strings.Replace(src, "start: {become: {user: stg}}", "start: {command: s}", 1)
	inv, err = ParseFiles([]string{"fleet.yaml"}, [][]byte{[]byte(src)}, "staging")
	if err != nil {
		t.Fatal(err)
	}
	if b := inv.BecomeFor(CmdStop); b == nil || b.User != "stg" || inv.Commands.Stop != "systemctl stop shop" {
		t.Errorf("staging stop: become %+v command %q", b, inv.Commands.Stop)
	}
}

// TestExampleSecretsParse: the secrets fleet.example.yaml shows in comments
// under env: are valid as written, and its environments load.
func TestExampleSecretsParse(t *testing.T) {
	data, err := os.ReadFile("../../fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	var lines []string
	for _, l := range strings.Split(src, "\n") {
		if strings.HasPrefix(l, "#   SHOP_") && strings.Contains(l, "{from_") {
			lines = append(lines, "  "+strings.TrimPrefix(l, "#   "))
		}
	}
	if len(lines) != 3 {
		t.Fatalf("the example's secret lines moved: %q", lines)
	}
	src = strings.Replace(src, "env:\n  RAILS_ENV: production\n", "env:\n  RAILS_ENV: production\n"+strings.Join(lines, "\n")+"\n", 1)
	inv, err := Parse("fleet.example.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(inv.SecretNames(), ", "); got != "SHOP_API_KEY from_file, SHOP_DB_PASS from_command, SHOP_DB_URL from_env" {
		t.Errorf("secrets: %s", got)
	}
	for _, env := range []string{"staging", "production"} {
		inv, err := LoadFiles([]string{"../../fleet.example.yaml"}, env)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		if inv.Environment != env || inv.BecomeFor(CmdStop) == nil || inv.BecomeFor(CmdHealth) != nil {
			t.Errorf("%s: environment %q, become stop %v health %v", env, inv.Environment, inv.BecomeFor(CmdStop), inv.BecomeFor(CmdHealth))
		}
	}
}

// TestSecretCommandGroupKilled: a from_command that forks and hangs is
// cut when its context ends, with everything it started. The context ends
// once the child's pid is written: a fixed 500ms deadline could end before
// the shell had forked on a busy machine, leaving no child to check (and
// an empty pid file would have read as pid 0, whose "kill" is this test's
// own process group).
func TestSecretCommandGroupKilled(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pidc := make(chan int, 1)
	go func() {
		defer cancel()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			b, _ := os.ReadFile(pidFile)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && strings.HasSuffix(string(b), "\n") {
				pidc <- pid
				return
			}
		}
		pidc <- 0
	}()
	_, _, err := runSecretCommand(ctx, dir, "sleep 300 & echo $! > child.pid; sleep 300")
	if err == nil {
		t.Fatal("a hung command returned no error")
	}
	pid := <-pidc
	if pid <= 0 {
		t.Fatalf("the command never started its child: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command's child %d outlived its deadline", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
