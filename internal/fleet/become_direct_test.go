package fleet

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestSimpleCommandAccepts(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   []string
	}{
		{"systemctl stop shop", []string{"systemctl", "stop", "shop"}},
		{"  systemctl   restart  shop@1.service ", []string{"systemctl", "restart", "shop@1.service"}},
		{"/srv/shop/current/bin/shop start --dir /srv/shop --listen 127.0.0.1:8080", []string{"/srv/shop/current/bin/shop", "start", "--dir", "/srv/shop", "--listen", "127.0.0.1:8080"}},
		{"curl -fsS http://127.0.0.1:8080/health?x", nil}, // ? is a glob: refused below
		{"docker compose --env-file=/etc/shop.env up -d", []string{"docker", "compose", "--env-file=/etc/shop.env", "up", "-d"}},
		{"svc a,b 50% +1 user@host", []string{"svc", "a,b", "50%", "+1", "user@host"}},
		{"kill -TERM 12", []string{"kill", "-TERM", "12"}}, // a builtin in sh, a program for sudo (resolved in PATH)
	} {
		got, err := SimpleCommand(tc.script)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q: accepted as %q", tc.script, got)
			}
			continue
		}
		if err != nil || strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
			t.Errorf("%q: got %q, %v; want %q", tc.script, got, err, tc.want)
		}
	}
}

func TestSimpleCommandRefuses(t *testing.T) {
	for _, tc := range []struct{ script, why string }{
		{"systemctl stop shop;id", `";"`},
		{"systemctl stop shop; id", `";"`},
		{"systemctl stop shop && id", `"&"`},
		{"systemctl stop shop || id", `"|"`},
		{"systemctl stop shop | tee x", `"|"`},
		{"systemctl stop shop &", `"&"`},
		{"systemctl stop $(id)", `"$"`},
		{"systemctl stop $SHOP", `"$"`},
		{"systemctl stop ${SHOP}", `"$"`},
		{"systemctl stop `id`", "\"`\""},
		{"systemctl stop 'shop'", "a quote (')"},
		{`systemctl stop "shop"`, `a quote (")`},
		{`systemctl stop sh\op`, "a backslash"},
		{"systemctl stop shop\nid", "a newline"},
		{"systemctl stop shop\rid", "0x0d"},
		{"systemctl\tstop shop", "a tab"},
		{"systemctl stop shop > /tmp/x", `">"`},
		{"systemctl stop shop 2>&1", `">"`},
		{"systemctl stop < /etc/passwd", `"<"`},
		{"rm -rf /srv/shop/*", `"*"`},
		{"ls /srv/shop/releases/1.?", `"?"`},
		{"ls /srv/[ab]", `"["`},
		{"cat ~/x", `"~"`},
		{"(id)", `"("`},
		{"{ id; }", `"{"`},
		{"! false", `"!"`},
		{"echo a#b", `"#"`},
		{"systemctl stop shöp", "byte 0x"},
		{"systemctl stop shop\x00", "byte 0x00"},
		{"FOO=1 systemctl stop shop", "assignment"},
		{"cd /srv/shop", "keyword or builtin"},
		{"exec systemctl stop shop", "keyword or builtin"},
		{"if", "keyword or builtin"},
		{"eval id", "keyword or builtin"},
		{". /etc/profile", "keyword or builtin"},
		{"./bin/shop migrate", "relative path"},
		{"bin/shop migrate", "relative path"},
		{"-x foo", "not a program"},
		{"/srv/shop/ x", "directory"},
		{"", "empty"},
		{"   ", "empty"},
	} {
		got, err := SimpleCommand(tc.script)
		if err == nil {
			t.Errorf("%q: accepted as %q", tc.script, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%q: %v; want it to say %s", tc.script, err, tc.why)
		}
	}
}

func TestBecomeWrapDirect(t *testing.T) {
	b := &Become{Method: BecomeSudo, User: "root"}
	rel := map[string]string{"RELCTL_VERSION": "1.1.0", "RELCTL_HOST": "web1"}

	// An absolute program: sudo runs it as written, with no environment.
	script, env := b.Wrap("/usr/bin/systemctl stop shop", rel)
	if script != "exec sudo -n -u root -- /usr/bin/systemctl stop shop" || env != nil {
		t.Errorf("absolute: %q %v", script, env)
	}
	// A program name: resolved on the host first.
	script, env = b.Wrap("systemctl stop shop", rel)
	if !strings.HasSuffix(script, `exec sudo -n -u root -- "$relctl_c" stop shop`) || !strings.Contains(script, "relctl_find systemctl") || env != nil {
		t.Errorf("name: %q %v", script, env)
	}
	// env: values to deliver: /bin/sh.
	withEnv := map[string]string{"RELCTL_VERSION": "1.1.0", "RAILS_ENV": "production"}
	script, env = b.Wrap("systemctl stop shop", withEnv)
	if !strings.Contains(script, "/bin/sh -c") || env["RAILS_ENV"] != "production" || env[BecomeEnvVar] == "" {
		t.Errorf("env: %q %v", script, env)
	}
	// ...unless become says env: false.
	no := false
	b2 := &Become{Method: BecomeSudo, User: "shop", Env: &no}
	script, env = b2.Wrap("systemctl stop shop", withEnv)
	if !strings.Contains(script, "exec sudo -n -u shop --") || env != nil {
		t.Errorf("env false: %q %v", script, env)
	}
	// Shell text with env false: /bin/sh, and no env: values.
	script, env = b2.Wrap("cd /srv && ./x", withEnv)
	if !strings.Contains(script, "/bin/sh -c") || env["RAILS_ENV"] != "" || env["RELCTL_VERSION"] != "1.1.0" || strings.Contains(env[BecomeEnvVar], "RAILS_ENV") {
		t.Errorf("shell text, env false: %q %v", script, env)
	}
}

// The host-side scripts run: the program is resolved as the SSH user's
// shell finds it, a builtin name included, and a missing one says so.
func TestDirectScriptsRun(t *testing.T) {
	b := &Become{Method: BecomeSudo}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"sleep", "1"}, "sleep"},
		{[]string{"kill", "-0", "1"}, "kill"}, // a dash builtin: found in PATH instead
	} {
		check := b.DirectCheck(tc.words, "P:")
		// No sudo call here: stop right after the path line.
		check = strings.Replace(check, `if o=$(sudo`, `exit 0; if o=$(sudo`, 1)
		out, err := exec.Command("/bin/sh", "-c", check).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "P:path /") || !strings.HasSuffix(strings.TrimSpace(string(out)), "/"+tc.want) {
			t.Errorf("%v: %q %v", tc.words, out, err)
		}
	}
	out, _ := exec.Command("/bin/sh", "-c", b.DirectCheck([]string{"relctl-no-such-program", "x"}, "P:")).CombinedOutput()
	if strings.TrimSpace(string(out)) != "P:notfound" {
		t.Errorf("missing program: %q", out)
	}
	// An absolute program not there yet (a release unpacked later): absent,
	// and sudo is not asked (it would say "command not found").
	out, _ = exec.Command("/bin/sh", "-c", b.DirectCheck([]string{t.TempDir() + "/releases/1.1.0/bin/shop", "migrate"}, "P:")).CombinedOutput()
	if strings.TrimSpace(string(out)) != "P:absent" {
		t.Errorf("absent program: %q", out)
	}
	check := strings.Replace(b.DirectCheck([]string{"/bin/sh", "-c", "x"}, "P:"), `if o=$(sudo`, `exit 0; if o=$(sudo`, 1)
	out, _ = exec.Command("/bin/sh", "-c", check).CombinedOutput()
	if strings.TrimSpace(string(out)) != "P:path /bin/sh" {
		t.Errorf("absolute program: %q", out)
	}
	cmd := exec.Command("/bin/sh", "-c", b.DirectScript([]string{"relctl-no-such-program", "x"}))
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 127 || !strings.Contains(string(out), "relctl: relctl-no-such-program: not found in PATH=") {
		t.Errorf("run a missing program: %q %v", out, err)
	}
}

func TestSudoersLine(t *testing.T) {
	b := &Become{Method: BecomeSudo}
	got := b.SudoersLine("deploy", []string{"/srv/shop/bin/shop", "start", "--listen", "127.0.0.1:8080", "--opt=a,b"})
	want := `deploy ALL=(root) NOPASSWD: /srv/shop/bin/shop start --listen 127.0.0.1\:8080 --opt\=a\,b`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// visudo reads it back, where it is installed.
	if _, err := exec.LookPath("visudo"); err == nil {
		f := t.TempDir() + "/rule"
		if err := os.WriteFile(f, []byte(got+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("visudo", "-cf", f).CombinedOutput(); err != nil {
			t.Errorf("visudo: %v %s", err, out)
		}
	}
}

func TestBecomeShellNotes(t *testing.T) {
	src := `app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands:
  stop: systemctl stop shop
  start: "systemctl start shop && systemctl is-active shop"
  health: {command: "curl -fsS localhost:8080/health", become: {method: none}}
  migrate: cd {{.Release}} && ./bin/shop migrate
balancer: {kind: none}
become: {method: sudo, user: root}
hosts:
  - {name: web1, address: 10.0.0.11}
  - {name: web2, address: 10.0.0.12, env: {REGION: eu}}
`
	inv, err := Parse("fleet.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(inv.BecomeShellNotes("1.0.0", "1.1.0"), "\n")
	for _, want := range []string{
		`commands.stop (systemctl stop shop) runs as root through /bin/sh under sudo because env: values must reach it, and only /bin/sh carries them across sudo (become: {env: false} sends none); sudoers must allow /bin/sh as root for it, which lets the SSH user run anything as root (on web2)`,
		`commands.start (systemctl start shop && systemctl is-active shop) runs as root through /bin/sh under sudo because it is shell text: it holds "&", which only a shell reads;`,
		`commands.migrate (cd /srv/shop/releases/1.1.0 && ./bin/shop migrate) runs as root through /bin/sh under sudo because it is shell text`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("notes\n%s\nlack\n%s", got, want)
		}
	}
	if strings.Contains(got, "health") || strings.Count(got, "commands.start") != 1 || strings.Count(got, "commands.stop") != 1 {
		t.Errorf("notes:\n%s", got)
	}
}

func TestBecomeEnvKey(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(strings.Replace(secBase, "become: {user: shop}", "become: {user: shop, env: false}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if b := inv.BecomeFor(CmdStart); b.SendsEnv() {
		t.Errorf("start become %+v sends env", b)
	}
	if b := inv.BecomeFor(CmdStop); !b.SendsEnv() {
		t.Errorf("stop's own become %+v does not send env", b)
	}
	_, err = Parse("fleet.yaml", []byte(strings.Replace(secBase, "become: {user: shop}", "become: {user: shop, env: sometimes}", 1)))
	if err == nil || !strings.Contains(err.Error(), "fleet.yaml:9: become.env") {
		t.Errorf("env: sometimes: %v", err)
	}
}

// Status reads versions without env values: a host with env: still gets
// the /bin/sh form there, the one its run (and preflight) uses.
func TestWrapHostCommandFollowsTheRun(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(`app: shop
path: /srv/shop
artifact: {source: "./dist/shop-{{.Version}}.tar.gz"}
commands: {stop: x, start: y, health: z, version: cat /srv/shop/current/VERSION}
balancer: {kind: none}
become: {method: sudo, user: root}
hosts:
  - {name: web1, address: 10.0.0.11}
  - {name: web2, address: 10.0.0.12, env: {REGION: eu}}
`))
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := inv.WrapHostCommand(inv.Hosts[0], CmdVersion, "cat /srv/shop/current/VERSION", nil)
	s2, _ := inv.WrapHostCommand(inv.Hosts[1], CmdVersion, "cat /srv/shop/current/VERSION", nil)
	if !strings.Contains(s1, `exec sudo -n -u root -- "$relctl_c" /srv/shop/current/VERSION`) || !strings.Contains(s2, "/bin/sh -c") {
		t.Errorf("web1 %q\nweb2 %q", s1, s2)
	}
}
