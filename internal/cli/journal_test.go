package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A journal that cannot be read stops apply with the file and line named:
// it may be the unfinished run, so starting a new one over it is refused.
func TestApplyStopsOnUnreadableJournal(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	dir := filepath.Join(state, "relctl", "shop")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "20260101T000000Z-00000000000000aa.jsonl")
	if err := os.WriteFile(bad, []byte(`{"v":1,"type":"run_sta{"v":1,"type":"step_started","step":"lock"}`+"\n"+`{"v":1,"type":"step_started","step":"deploy/web1"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "apply", "-f", example, "--to", "2.0.0", "--yes", "--plain")
	if code == ExitOK || !strings.Contains(errs, bad+":1:") {
		t.Fatalf("exit %d, stderr %q; want a failure naming %s:1", code, errs, bad)
	}
	if strings.Contains(out+errs, "preflight") {
		t.Errorf("apply went on past the journal check:\n%s%s", out, errs)
	}
}
