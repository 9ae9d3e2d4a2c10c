package fleet

import (
	"errors"
	"testing"
)

// KeyPath names the key of every problem, an unknown key's own name
// included, while Error() keeps the text operators read.
func TestKeyPathNamesUnknownKeys(t *testing.T) {
	_, err := Parse("f.yaml", []byte("app: a\npath: /srv/a\nkeep_relases: 5\nssh: {usr: x}\nhosts:\n  - {name: w1, address: h1, lables: [x]}\n"))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("%v", err)
	}
	want := map[string]string{
		"keep_relases":         `f.yaml:3: unknown key "keep_relases" (did you mean "keep_releases"?)`,
		"ssh.usr":              `f.yaml:4: ssh: unknown key "usr" (did you mean "user"?)`,
		"hosts[0] (w1).lables": `f.yaml:6: hosts[0] (w1): unknown key "lables" (did you mean "labels"?)`,
	}
	got := map[string]string{}
	for _, e := range es {
		if e.Unknown != "" {
			got[e.KeyPath()] = e.Error()
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("KeyPath %q: %q, want %q (all: %v)", k, got[k], w, got)
		}
	}
	if (&Error{Path: "health.timeout"}).KeyPath() != "health.timeout" {
		t.Error("KeyPath of a known key is its Path")
	}
}
