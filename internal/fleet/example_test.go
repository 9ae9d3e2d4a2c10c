package fleet

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestExampleExplainsEveryKey walks the inventory's types and checks that
// every YAML key appears in fleet.example.yaml: as a key (key:) inside the
// section of its top-level key, in real YAML or in a comment there, and that
// every top-level key is a real key of the example. A key added to types.go
// without a word in the example fails here.
func TestExampleExplainsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sections := exampleSections(string(data))
	top := reflect.TypeOf(Inventory{})
	for i := range top.NumField() {
		f := top.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		sec, ok := sections[key]
		if !ok {
			t.Errorf("%s: no top-level key in fleet.example.yaml", key)
			continue
		}
		for _, p := range keyPaths(f.Type, key) {
			k := p[strings.LastIndexAny(p, ".]")+1:]
			if !regexp.MustCompile(`(^|[\s{,#-])` + regexp.QuoteMeta(k) + `:`).MatchString(sec) {
				t.Errorf("%s: key %q is not explained in the %s section of fleet.example.yaml", p, k, key)
			}
		}
	}
	// The guard must be able to fail: a key that is not there is found missing.
	if regexp.MustCompile(`(^|[\s{,#-])upstream_fil:`).MatchString(sections["balancer"]) {
		t.Error("the key matcher matches anything")
	}
}

// exampleSections splits the example by top-level key; a comment block at
// column 0 goes with the key that follows it.
func exampleSections(s string) map[string]string {
	out := map[string]string{}
	topRe := regexp.MustCompile(`^([a-z_]+):`)
	var pending []string
	cur := ""
	for _, line := range strings.Split(s, "\n") {
		if m := topRe.FindStringSubmatch(line); m != nil {
			cur = m[1]
			out[cur] += strings.Join(pending, "\n") + "\n"
			pending = nil
		}
		if strings.HasPrefix(line, "#") {
			pending = append(pending, line)
			continue
		}
		if cur != "" {
			out[cur] += line + "\n"
		}
	}
	return out
}

// keyPaths lists the YAML key paths under a value of type t at path.
func keyPaths(t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		if t == stringListType {
			return nil
		}
		t = t.Elem()
		path += "[]"
	}
	if t.Kind() != reflect.Struct || t == batchSizeType {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		p := path + "." + key
		out = append(out, p)
		out = append(out, keyPaths(f.Type, p)...)
	}
	return out
}

func yamlKey(f reflect.StructField) string {
	k := strings.Split(f.Tag.Get("yaml"), ",")[0]
	if k == "-" || !f.IsExported() {
		return ""
	}
	return k
}

func TestKeyPathsCoversNested(t *testing.T) {
	got := strings.Join(keyPaths(reflect.TypeOf(Inventory{}.Hosts), "hosts"), " ")
	for _, want := range []string{"hosts[].upstream", "hosts[].ssh.jump", "hosts[].vars"} {
		if !strings.Contains(got, want) {
			t.Errorf("keyPaths misses %s: %s", want, got)
		}
	}
	got = strings.Join(keyPaths(reflect.TypeOf(Inventory{}.Balancer), "balancer"), " ")
	for _, want := range []string{"balancer.nginx", "balancer.commands.state", "balancer.endpoints[].tcp"} {
		if !strings.Contains(got, want) {
			t.Errorf("keyPaths misses %s: %s", want, got)
		}
	}
}
