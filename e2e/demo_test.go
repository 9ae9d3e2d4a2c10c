package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoPlain is the newcomer's first command, in CI: the demo fleet is
// upgraded to 2.0.0 through the required stop 1.1.0 under traffic, with no
// failed request, and everything it started is gone afterwards.
func TestDemoPlain(t *testing.T) {
	tmp := t.TempDir()
	c := exec.Command(relctlBin, "demo", "--plain", "--hosts", "4", "--balancer", "builtin")
	c.Env = append(os.Environ(), "TMPDIR="+tmp)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("relctl demo --plain: %v\n%s\n%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"outcome:\tsucceeded", "on 2.0.0:\tweb1, web2, web3, web4", " 0 failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "migrate 1.1.0 on web1") || !strings.Contains(errb.String(), "migrate 2.0.0 on web1") {
		t.Errorf("the demo did not go through 1.1.0:\n%s", errb.String())
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "relctl-demo-*"))
	if len(left) != 0 {
		t.Errorf("the demo left %v behind", left)
	}
	if ps := liveProcessesMentioning(filepath.Join(tmp, "relctl-demo-")); len(ps) != 0 {
		t.Errorf("the demo left processes running:\n%s", strings.Join(ps, "\n"))
	}
	t.Logf("%s", out.String())
}
