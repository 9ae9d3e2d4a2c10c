package demoapp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func execCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

func TestBuildArtifactDeterministic(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fakebin")
	os.WriteFile(bin, []byte("#!/bin/sh\necho hi\n"), 0o755)
	o := ArtifactOptions{Version: "1.4.0", AppBinary: bin, AppConf: map[string]string{"b": "2", "a": "1"}}
	p1, s1, err := BuildArtifact(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	p2, s2, err := BuildArtifact(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 || filepath.Base(p1) != "shop-1.4.0.tar.gz" || filepath.Base(p2) != filepath.Base(p1) {
		t.Fatalf("not deterministic: %s %s / %s %s", p1, s1, p2, s2)
	}
	o.AppConf = map[string]string{ConfFailHealth: "true"}
	if _, s3, _ := BuildArtifact(t.TempDir(), o); s3 == s1 {
		t.Fatal("different app.conf, same sha")
	}
	// Real tar can unpack it, with the executable bit.
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", p1, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	v, _ := os.ReadFile(filepath.Join(dir, "VERSION"))
	conf, _ := os.ReadFile(filepath.Join(dir, "app.conf"))
	st, err := os.Stat(filepath.Join(dir, "bin", "demoapp"))
	if string(v) != "1.4.0\n" || string(conf) != "a=1\nb=2\n" || err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("VERSION %q app.conf %q bin %v %v", v, conf, st, err)
	}
}

func TestBuildArtifactErrors(t *testing.T) {
	for _, o := range []ArtifactOptions{
		{Version: "../1", AppBinary: "/bin/true"},
		{Version: "", AppBinary: "/bin/true"},
		{Version: "1.0.0"},
		{Version: "1.0.0", Wrapper: "relative/relctl demoapp"},
		{Version: "1.0.0", AppBinary: "/nonexistent"},
	} {
		if _, _, err := BuildArtifact(t.TempDir(), o); err == nil {
			t.Errorf("BuildArtifact(%+v) succeeded", o)
		}
	}
}

func TestWrapperScript(t *testing.T) {
	b, err := wrapperScript("/opt/my tools/relctl demoapp")
	if err == nil {
		// "/opt/my" is absolute; words are split on spaces by design.
		if !strings.Contains(string(b), "exec /opt/my tools/relctl demoapp \"$@\"") {
			t.Fatalf("script:\n%s", b)
		}
	}
	b, err = wrapperScript("/usr/local/bin/relctl demoapp")
	if err != nil || !strings.HasPrefix(string(b), "#!/bin/sh\n") || !strings.Contains(string(b), "exec /usr/local/bin/relctl demoapp \"$@\"") {
		t.Fatalf("script %q %v", b, err)
	}
}
