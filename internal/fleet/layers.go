package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Layers: one inventory from several files and an environment.
//
// An inventory may be several files (-f base.yaml -f site.yaml), merged in
// order, and may define environments:
//
//	environments:
//	  staging:    {ssh: {user: deploy-stg}, hosts: [...]}
//	  production: {rollout: {batches: [1, "25%"]}}
//
// whose selected entry (--env, or $RELCTL_ENV) is merged over the files;
// without --env the files alone are the inventory (the base).
// Merging is key by key on the YAML nodes, before anything is decoded:
// mappings merge (a later layer's key replaces or adds that key, and keys
// it does not name stay), while scalars and lists are replaced whole (a
// later hosts: list is the whole host list). A key set to null (`key: ~`)
// is removed, so its default applies again. Because the nodes keep their
// positions, every error names the file and line of the value that is
// wrong, whichever layer it came from.

// ErrUnknownEnvironment means --env named an environment the inventory does
// not define. It wraps
// ErrInvalid, so it is a usage error (exit 2).
var ErrUnknownEnvironment = fmt.Errorf("%w: unknown environment", ErrInvalid)

// ErrEnvironmentRequired means the inventory sets require_environment and
// no environment was chosen. It wraps ErrInvalid (exit 2).
var ErrEnvironmentRequired = fmt.Errorf("%w: environment required", ErrInvalid)

// layerLines separates the layers' line numbers: the nodes of layer i carry
// line+i*layerLines from parsing to the error message, which place turns
// back into a file and a line. A file of 16 million lines is not an
// inventory.
const layerLines = 1 << 24

var reflectInventory = reflect.TypeOf(Inventory{})

var envNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// place turns a line as carried in the merged nodes back into the file it
// came from and its line there.
func (l *loader) place(line int) (string, int) {
	i := line / layerLines
	if line <= 0 || i >= len(l.files) {
		return l.file, line
	}
	return l.files[i], line % layerLines
}

// fileIndex is f's place in the merge order (0 when it is not a layer).
func (l *loader) fileIndex(f string) int {
	for i, x := range l.files {
		if x == f {
			return i
		}
	}
	return 0
}

// LoadFiles reads the inventory files in order, merges them key by key
// (later wins), merges environment env over them ("" for none), then
// checks and defaults the result like Load. With a single file and no
// environment it is Load.
func LoadFiles(files []string, env string) (*Inventory, error) {
	if len(files) == 0 {
		return nil, errors.New("read inventory: no file given")
	}
	data := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read inventory: %w", err)
		}
		data[i] = b
	}
	return ParseFiles(files, data, env)
}

// ParseFiles is LoadFiles on files held in memory: data[i] is files[i].
func ParseFiles(files []string, data [][]byte, env string) (*Inventory, error) {
	if len(files) != len(data) || len(files) == 0 {
		return nil, errors.New("parse inventory: one content per file is needed")
	}
	l := &loader{file: files[0], files: slices.Clone(files), lines: map[string]int{}, reported: map[string]bool{}}
	var doc *yaml.Node
	var errs Errors
	for i, f := range files {
		var root yaml.Node
		if err := yaml.Unmarshal(data[i], &root); err != nil {
			errs = append(errs, (&loader{file: f}).syntaxError(err))
			continue
		}
		if len(bytes.TrimSpace(data[i])) == 0 || root.Kind == 0 {
			if i == 0 {
				errs = append(errs, &Error{File: f, Line: 1, Msg: "inventory is empty"})
			}
			continue // an empty overlay changes nothing
		}
		d := root.Content[0]
		if d.Kind != yaml.MappingNode {
			errs = append(errs, &Error{File: f, Line: d.Line, Msg: "the document must be a mapping of keys, not " + kindName(d)})
			continue
		}
		shiftLines(d, i*layerLines)
		if doc == nil {
			doc = d
			continue
		}
		doc = mergeNodes(doc, d)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if doc == nil {
		return nil, Errors{{File: files[0], Line: 1, Msg: "inventory is empty"}}
	}
	return l.parse(doc, env)
}

// shiftLines adds d to the line of every node under n (each once: an alias
// points at a node seen elsewhere in the same tree).
func shiftLines(n *yaml.Node, d int) {
	if d == 0 {
		return
	}
	seen := map[*yaml.Node]bool{}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		n.Line += d
		for _, c := range n.Content {
			walk(c)
		}
		walk(n.Alias)
	}
	walk(n)
}

// mergeNodes merges over onto base and returns the result: two mappings
// merge key by key (recursively); anything else is replaced by over. A key
// over sets to null is removed. base's nodes are not changed in place (an
// alias elsewhere may share them).
func mergeNodes(base, over *yaml.Node) *yaml.Node {
	if over.Kind == yaml.AliasNode && over.Alias != nil {
		over = over.Alias
	}
	b := base
	if b.Kind == yaml.AliasNode && b.Alias != nil {
		b = b.Alias
	}
	if b.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := *b
	out.Content = slices.Clone(b.Content)
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		j := mapIndex(&out, k.Value)
		null := v.Kind == yaml.ScalarNode && v.Tag == "!!null"
		switch {
		case j < 0 && null:
		case j < 0:
			out.Content = append(out.Content, k, v)
		case null:
			out.Content = slices.Delete(out.Content, j, j+2)
		default:
			// The key keeps the later layer's position: an error about
			// it names the layer that set it.
			out.Content[j], out.Content[j+1] = k, mergeNodes(out.Content[j+1], v)
		}
	}
	return &out
}

// mapIndex is the index of key k in mapping m's Content, or -1.
func mapIndex(m *yaml.Node, k string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return i
		}
	}
	return -1
}

// environments takes the environments key out of doc, checks every
// environment's overlay (the ones not selected too: a mistake in
// production is found while deploying staging), and merges the selected
// one over doc. Without one chosen, doc stays the base inventory.
func (l *loader) environments(doc *yaml.Node, env string) error {
	var envs *yaml.Node
	keyLine := 0
	if doc.Kind == yaml.MappingNode {
		if j := mapIndex(doc, "environments"); j >= 0 {
			keyLine = doc.Content[j].Line
			envs = doc.Content[j+1]
			if envs.Kind == yaml.AliasNode && envs.Alias != nil {
				envs = envs.Alias
			}
			doc.Content = slices.Delete(doc.Content, j, j+2)
		}
	}
	if envs != nil && envs.Kind == yaml.ScalarNode && envs.Tag == "!!null" {
		envs = nil
	}
	if envs == nil {
		if env != "" {
			f, _ := l.place(doc.Line)
			return Errors{{File: f, Kind: ErrUnknownEnvironment, Msg: fmt.Sprintf("unknown environment %q: the inventory defines no environments (add `environments: {%s: {...}}`, or leave out --env and $RELCTL_ENV)", env, env)}}
		}
		if j := mapIndex(doc, "require_environment"); j >= 0 && doc.Content[j+1].Value == "true" {
			l.add(doc.Content[j].Line, "require_environment", "require_environment is true but the inventory defines no environments (add `environments:`, or remove this key)")
		}
		return nil
	}
	if envs.Kind != yaml.MappingNode {
		l.add(envs.Line, "environments", "environments must be a mapping of environment names to overlays, not %s", kindName(envs))
		return l.sorted()
	}
	var names []string
	var selected *yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(envs.Content); i += 2 {
		k, v := envs.Content[i], envs.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		path := "environments." + k.Value
		if prev, dup := seen[k.Value]; dup {
			_, pl := l.place(prev)
			l.add(k.Line, path, "duplicate environment (first at line %d)", pl)
			continue
		}
		seen[k.Value] = k.Line
		if !envNameRe.MatchString(k.Value) {
			l.add(k.Line, path, "environment name %q may hold only letters, digits and . _ -", k.Value)
			continue
		}
		names = append(names, k.Value)
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: v.Line}
		}
		if v.Kind != yaml.MappingNode {
			l.add(v.Line, path, "an environment must be a mapping of inventory keys, not %s", kindName(v))
			continue
		}
		if j := mapIndex(v, "environments"); j >= 0 {
			l.add(v.Content[j].Line, path, "an environment cannot define environments")
			continue
		}
		if k.Value == env {
			selected = v
			continue
		}
		// Not selected: check its keys and kinds on a copy, as they
		// would be checked if it were.
		cl := &loader{file: l.file, files: l.files, overlay: true, lines: map[string]int{}, reported: map[string]bool{}, hostNames: hostNames(v)}
		c := copyNode(v)
		cl.liftBecome(c, path)
		cl.walk(c, reflectInventory, path)
		l.errs = append(l.errs, cl.errs...)
	}
	if len(l.errs) > 0 {
		return l.sorted()
	}
	sort.Strings(names)
	switch {
	case env == "":
		if j := mapIndex(doc, "require_environment"); j >= 0 && doc.Content[j+1].Kind == yaml.ScalarNode && doc.Content[j+1].Value == "true" {
			f, n := l.place(doc.Content[j].Line)
			return Errors{{File: f, Line: n, Path: "require_environment", Kind: ErrEnvironmentRequired,
				Msg: fmt.Sprintf("this inventory deploys only to a named environment: choose one with --env/-e NAME or $RELCTL_ENV (it defines %s)", strings.Join(names, ", "))}}
		}
		return nil // the files as they are: the base inventory
	case selected == nil:
		f, n := l.place(keyLine)
		return Errors{{File: f, Line: n, Path: "environments", Kind: ErrUnknownEnvironment, Msg: fmt.Sprintf("unknown environment %q: the inventory defines %s", env, strings.Join(names, ", "))}}
	}
	merged := mergeNodes(doc, selected)
	*doc = *merged
	return nil
}

// copyNode is a deep copy of n (aliases resolved to copies of their
// targets, once each).
func copyNode(n *yaml.Node) *yaml.Node {
	seen := map[*yaml.Node]*yaml.Node{}
	var cp func(*yaml.Node) *yaml.Node
	cp = func(n *yaml.Node) *yaml.Node {
		if n == nil {
			return nil
		}
		if c, ok := seen[n]; ok {
			return c
		}
		c := *n
		seen[n] = &c
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, x := range n.Content {
			c.Content[i] = cp(x)
		}
		c.Alias = cp(n.Alias)
		return &c
	}
	return cp(n)
}

// EnvironmentNames are the environments the files define (every layer's
// environments: keys, sorted), read without checking anything else; nil
// when a file cannot be read or parsed (LoadFiles then says why).
func EnvironmentNames(files []string) []string {
	seen := map[string]bool{}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil
		}
		var root yaml.Node
		if yaml.Unmarshal(b, &root) != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
			continue
		}
		j := mapIndex(root.Content[0], "environments")
		if j < 0 || root.Content[0].Content[j+1].Kind != yaml.MappingNode {
			continue
		}
		envs := root.Content[0].Content[j+1]
		for i := 0; i+1 < len(envs.Content); i += 2 {
			if n := envs.Content[i].Value; !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names
}
