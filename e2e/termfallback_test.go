package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTUIRefusesDumbTerminal: in a terminal the full-screen TUI cannot
// draw in (TERM=dumb), relctl says why and falls back to plain output, as
// README.md says: the demo runs its plain upgrade to the end, and relctl
// with no command prints its commands instead of opening the TUI.
func TestTUIRefusesDumbTerminal(t *testing.T) {
	const note = "TERM=dumb: this terminal cannot draw the full-screen TUI"
	t.Run("demo", func(t *testing.T) {
		tmp := t.TempDir()
		tm := newTerm(t, []string{"TERM=dumb", "TMPDIR=" + tmp}, tmp, "demo", "--hosts", "2", "--balancer", "builtin", "--to", "1.1.0")
		if code := tm.exitCode(3 * time.Minute); code != "0" {
			t.Fatalf("demo in a dumb terminal: exit %s\n%s", code, tm.screen())
		}
		// The note comes first, so the plain run's lines push it off the
		// screen (how soon depends on the machine's load): read the pane
		// with what scrolled off.
		if all := tm.tmux("capture-pane", "-p", "-S", "-", "-t", "e2e"); !strings.Contains(all, note) {
			t.Errorf("the demo in a dumb terminal never said why it runs plain:\n%s", all)
		}
		// The plain demo's last line: its traffic figures, none failed.
		if s := tm.screen(); !strings.Contains(s, "traffic:") || !strings.Contains(s, " 0 failed") {
			t.Errorf("the plain demo's end is not on the screen:\n%s", s)
		}
		if left, _ := filepath.Glob(filepath.Join(tmp, "relctl-demo-*")); len(left) != 0 {
			t.Errorf("the demo left %v behind", left)
		}
	})
	t.Run("relctl with no command", func(t *testing.T) {
		dir := t.TempDir()
		fleet := filepath.Join(dir, "fleet.yaml")
		if err := os.WriteFile(fleet, []byte("app: shop\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tm := newTerm(t, []string{"TERM=dumb"}, dir, "-f", fleet)
		if code := tm.exitCode(30 * time.Second); code != "0" {
			t.Fatalf("relctl in a dumb terminal: exit %s\n%s", code, tm.screen())
		}
		s := tm.tmux("capture-pane", "-p", "-S", "-", "-t", "e2e") // with what scrolled off
		if !strings.Contains(s, note) || !strings.Contains(s, "Available Commands:") {
			t.Errorf("relctl in a dumb terminal did not say why and list the commands:\n%s", s)
		}
	})
}
