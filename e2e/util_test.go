package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relctl/relctl/internal/event"
	"go.yaml.in/yaml/v3"
)

func readEvents(t testing.TB, path string) []event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []event.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

func globJournals(s *stage) []string {
	files, _ := filepath.Glob(filepath.Join(s.journalDir(), "*.jsonl"))
	return files
}

// liveProcessesMentioning lists the live (not zombie) processes whose
// command line contains s: what a demo must not leave behind.
func liveProcessesMentioning(s string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.Contains(string(cmd), s) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(d, "stat"))
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			continue
		}
		out = append(out, filepath.Base(d)+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return out
}

// editNode returns an inventory edit that parses the YAML, hands the value
// at path (mapping keys, and "0" for a sequence's first item) to edit, and
// writes the YAML back. It fails the test when the path is not there, so an
// edit never silently misses because testfleet's writer quotes differently.
func editNode(t *testing.T, edit func(*yaml.Node), path ...string) func(string) string {
	return func(inv string) string {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(inv), &doc); err != nil {
			t.Fatalf("inventory: %v", err)
		}
		n := doc.Content[0]
		for _, key := range path {
			var next *yaml.Node
			switch n.Kind {
			case yaml.MappingNode:
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == key {
						next = n.Content[i+1]
					}
				}
			case yaml.SequenceNode:
				if key == "0" && len(n.Content) > 0 {
					next = n.Content[0]
				}
			}
			if next == nil {
				t.Fatalf("inventory lacks %s:\n%s", strings.Join(path, "."), inv)
			}
			n = next
		}
		edit(n)
		out, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatalf("inventory: %v", err)
		}
		return string(out)
	}
}

// wrapCommand returns an inventory edit that puts prefix before
// commands.<name>.
func wrapCommand(t *testing.T, name, prefix string) func(string) string {
	return editNode(t, func(n *yaml.Node) {
		n.Value, n.Style = prefix+n.Value, yaml.DoubleQuotedStyle
	}, "commands", name)
}
