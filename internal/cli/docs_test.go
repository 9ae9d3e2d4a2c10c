package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// jsonPaths adds to out every key path a value of type t can have in JSON
// ("hosts[].health_ok"), from its json tags.
func jsonPaths(t reflect.Type, prefix string, out map[string]bool) {
	switch t.Kind() {
	case reflect.Pointer:
		jsonPaths(t.Elem(), prefix, out)
	case reflect.Slice:
		jsonPaths(t.Elem(), prefix+"[]", out)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			out[p] = true
			jsonPaths(f.Type, p, out)
		}
	}
}

// valuePaths adds every key path of a decoded JSON value.
func valuePaths(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			valuePaths(e, p, out)
		}
	case []any:
		for _, e := range x {
			valuePaths(e, prefix+"[]", out)
		}
	}
}

// docSection is docs/json.md from the heading that starts with title to
// the next heading of the same level, and its first ```json block.
func docSection(t *testing.T, title string) (text, example string) {
	t.Helper()
	b, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## "+title)
	if i < 0 {
		t.Fatalf("docs/json.md has no section %q", title)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	a := strings.Index(s, "```json\n")
	if a < 0 {
		t.Fatalf("docs/json.md %q has no example", title)
	}
	ex := s[a+len("```json\n"):]
	ex = ex[:strings.Index(ex, "```")]
	return s, ex
}

// Every --json output agrees with docs/json.md: each key of the documented
// example is one the output can have, and each key the output can have is
// named in its section.
func TestJSONDocsMatchOutput(t *testing.T) {
	for _, c := range []struct {
		title string
		typ   reflect.Type
	}{
		{"Status (`relctl status --json`)", reflect.TypeOf(statusJSON{})},
		{"Lock (`relctl lock --json`", reflect.TypeOf(lockDocJSON{})},
		{"History (`relctl history --json`)", reflect.TypeOf(historyJSON{})},
	} {
		t.Run(c.title, func(t *testing.T) {
			text, ex := docSection(t, c.title)
			can := map[string]bool{}
			jsonPaths(c.typ, "", can)
			dec := json.NewDecoder(bytes.NewReader([]byte(ex)))
			n := 0
			for dec.More() {
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatalf("the example is not JSON: %v\n%s", err, ex)
				}
				n++
				got := map[string]bool{}
				valuePaths(v, "", got)
				for p := range got {
					if !can[p] {
						t.Errorf("the example has %q, which the output never has", p)
					}
				}
			}
			if n == 0 {
				t.Fatal("empty example")
			}
			var missing []string
			for p := range can {
				leaf := p[strings.LastIndex(p, ".")+1:]
				leaf = strings.TrimSuffix(leaf, "[]")
				if !strings.Contains(text, "`"+leaf+"`") {
					missing = append(missing, p)
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Errorf("keys the output has that its section of docs/json.md does not name: %v", missing)
			}
		})
	}
}
