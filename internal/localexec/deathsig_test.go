package localexec

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/testkit/deathtest"
)

// TestHelperRunsCommand is not a test: run as TestGroupDiesWithParent's
// helper process, it runs deathtest.Script through Group and Run and
// blocks until killed.
func TestHelperRunsCommand(t *testing.T) {
	if deathtest.Dir() == "" {
		t.Skip("helper process for TestGroupDiesWithParent")
	}
	cmd := exec.CommandContext(context.Background(), "sh", "-c", deathtest.Script)
	Group(cmd, time.Second)
	_ = Run(cmd)
	os.Exit(3) // the command ended by itself: the parent test then fails
}

// When the process that ran a command is SIGKILLed, the command and the
// grandchild it forked both die: the group's leader gets the parent-death
// signal and kills its group.
func TestGroupDiesWithParent(t *testing.T) {
	h, pids := deathtest.Start(t, "TestHelperRunsCommand")
	deathtest.KillAndWaitGone(t, h, pids)
}

// The supervisor is invisible to the command: stdin, arguments, the exit
// status and the group kill on the context's end all reach it as before.
func TestGroupPassesStdinArgsAndStatus(t *testing.T) {
	cmd := exec.CommandContext(context.Background(), "sh", "-c", `read line; echo "$1:$line"; exit 7`, "sh", "arg one")
	Group(cmd, time.Second)
	cmd.Stdin = strings.NewReader("from stdin\n")
	var out strings.Builder
	cmd.Stdout = &out
	err := Run(cmd)
	if got := strings.TrimSpace(out.String()); got != "arg one:from stdin" {
		t.Fatalf("output = %q", got)
	}
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 7 || err == nil {
		t.Fatalf("Run = %v, state %v: want exit status 7", err, cmd.ProcessState)
	}
}
