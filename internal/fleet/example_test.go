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

// TestExampleCommentedKeysParse uncomments the keys fleet.example.yaml shows
// only in comments (the nginx and exec balancer keys, every key of a host)
// and loads the result: what the example shows must be a valid inventory.
func TestExampleCommentedKeysParse(t *testing.T) {
	data, err := os.ReadFile("../../fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	haproxyEndpoints := regexp.MustCompile(`(?m)^  endpoints: .*\n(    - .*\n)+`)
	if !haproxyEndpoints.MatchString(src) {
		t.Fatal("the example's balancer endpoints moved; update this test")
	}
	// uncomment turns "  #   key: v" (and deeper "  #     key: v") of the
	// given keys into YAML at the indentation the comment shows.
	uncomment := func(s string, keys ...string) string {
		re := regexp.MustCompile(`(?m)^  #   (\s*)(` + strings.Join(keys, "|") + `):`)
		return re.ReplaceAllString(s, "  $1$2:")
	}
	t.Run("nginx", func(t *testing.T) {
		s := strings.Replace(src, "  kind: haproxy ", "  kind: nginx   ", 1)
		s = haproxyEndpoints.ReplaceAllString(s, "  endpoints: [{ssh: lb1.example.com}]\n")
		s = uncomment(s, "upstream_file", "nginx", "idle_check")
		inv, err := Parse("fleet.example.yaml", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		b := inv.Balancer
		if b.Kind != BalancerNginx || b.UpstreamFile != "/etc/nginx/conf.d/shop-upstream.conf" || b.Nginx != "sudo nginx" || !strings.Contains(b.IdleCheck, "{{.Address}}") {
			t.Errorf("nginx keys: %+v", b)
		}
	})
	t.Run("exec", func(t *testing.T) {
		s := strings.Replace(src, "  kind: haproxy ", "  kind: exec    ", 1)
		s = haproxyEndpoints.ReplaceAllString(s, "")
		s = uncomment(s, "commands", "drain", "enable", "state")
		inv, err := Parse("fleet.example.yaml", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if c := inv.Balancer.Commands; c.Drain == "" || c.Enable == "" || c.State == "" {
			t.Errorf("exec commands: %+v", c)
		}
	})
	t.Run("every key of a host", func(t *testing.T) {
		i := strings.Index(src, "  # Every key of a host:")
		if i < 0 {
			t.Fatal("the example's host block moved; update this test")
		}
		block := strings.Replace(src[i:], "  #   name:", "  - name:", 1)
		block = regexp.MustCompile(`(?m)^  #   `).ReplaceAllString(block, "    ")
		inv, err := Parse("fleet.example.yaml", []byte(src[:i]+block))
		if err != nil {
			t.Fatal(err)
		}
		h := inv.Hosts[len(inv.Hosts)-1]
		if h.Name != "web6" || h.Upstream != "10.0.0.16:8080" || h.SSH.Port != 2222 || h.SSH.Jump == "" || len(h.SSH.KnownHosts) != 2 || h.Vars["port"] != "8081" || !h.HasLabel("canary") {
			t.Errorf("host keys: %+v", h)
		}
	})
}
