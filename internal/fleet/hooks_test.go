package fleet

import (
	"strings"
	"testing"
	"time"
)

func TestHooksForms(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(base+`hooks:
  timeout: 12s
  before_run:
    - ./check-ticket.sh
    - {command: "curl -fsS --data-binary @- \"$CHANGES_URL\"", timeout: 3s}
  after_run: [notify]
`))
	if err != nil {
		t.Fatal(err)
	}
	br := inv.Hooks.List(HookBeforeRun)
	if len(br) != 2 || br[0].Command != "./check-ticket.sh" || br[0].Timeout != 12*time.Second ||
		!strings.HasPrefix(br[1].Command, "curl -fsS") || br[1].Timeout != 3*time.Second {
		t.Errorf("before_run = %+v", br)
	}
	if ar := inv.Hooks.List(HookAfterRun); len(ar) != 1 || ar[0].Command != "notify" || ar[0].Timeout != 12*time.Second {
		t.Errorf("after_run = %+v", ar)
	}
	if l := inv.Hooks.List(HookOnRollback); len(l) != 0 {
		t.Errorf("on_rollback = %+v, want none", l)
	}
	if !inv.Hooks.Any() {
		t.Error("Any() = false")
	}
}

func TestHooksDefaultTimeout(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(base+"hooks: {on_failure: [page-someone]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Hooks.Timeout != DefaultHookTimeout || inv.Hooks.List(HookOnFailure)[0].Timeout != DefaultHookTimeout {
		t.Errorf("timeout = %s / %+v", inv.Hooks.Timeout, inv.Hooks.List(HookOnFailure))
	}
	none, err := Parse("fleet.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if none.Hooks.Any() {
		t.Error("an inventory without hooks has some")
	}
}

// Every bad hook is named by its place: file, line and key path.
func TestHooksErrors(t *testing.T) {
	src := base + `hooks:
  timeout: -1s
  before_run:
    - ""
    - {command: x, timeout: -2s}
    - {comand: x}
  after_canry: [x]
  after_run: {command: x}
  on_failure:
    - {command: x, timeout: soon}
`
	_, err := Parse("fleet.yaml", []byte(src))
	if err == nil {
		t.Fatal("bad hooks accepted")
	}
	got := err.Error()
	if n := strings.Count(got, "timeout must be positive"); n != 2 {
		t.Errorf("%d timeout errors, want 2 (hooks.timeout, before_run[1]):\n%s", n, got)
	}
	for _, want := range []string{
		"fleet.yaml:15: hooks.timeout: timeout must be positive",
		"fleet.yaml:17: hooks.before_run[0]: a hook needs a command",
		"fleet.yaml:18: hooks.before_run[1].timeout: timeout must be positive",
		`fleet.yaml:19: hooks.before_run[2]: unknown key "comand" (did you mean "command"?)`,
		`fleet.yaml:20: hooks: unknown key "after_canry" (did you mean "after_canary"?)`,
		"fleet.yaml:21: hooks.after_run: hooks.after_run must be a list, not a mapping",
		`fleet.yaml:23: hooks.on_failure[0].timeout: "soon" is not a duration`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}
