package fleet

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads, checks and defaults the inventory at path.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse checks and defaults an inventory held in memory; file names it in
// errors. Every problem found is returned at once, as Errors.
func Parse(file string, data []byte) (*Inventory, error) {
	l := &loader{file: file, files: []string{file}, lines: map[string]int{}, reported: map[string]bool{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{l.syntaxError(err)}
	}
	if len(bytes.TrimSpace(data)) == 0 || root.Kind == 0 {
		return nil, Errors{{File: file, Line: 1, Msg: "inventory is empty"}}
	}
	return l.parse(root.Content[0], "")
}

// parse checks, decodes, defaults and validates doc, the inventory's
// document (its layers merged; see layers.go), with environment env (""
// for none) merged over it.
func (l *loader) parse(doc *yaml.Node, env string) (*Inventory, error) {
	if err := l.environments(doc, env); err != nil {
		return nil, err
	}
	l.hostNames = hostNames(doc)
	become := l.liftBecome(doc, "")
	// One pass reports everything: the walk records structural problems
	// (unknown keys, wrong kinds, bad scalars) and cuts the offending keys
	// out of the tree, so that the rest still decodes and is validated.
	// Validation then stays quiet about a key the walk already reported.
	if !l.walk(doc, reflect.TypeOf(Inventory{}), "") {
		return nil, l.sorted()
	}
	inv := &Inventory{}
	if err := doc.Decode(inv); err != nil {
		// The walk checks every kind and scalar; this is a safety net.
		l.errs = append(l.errs, l.syntaxError(err))
		return nil, l.sorted()
	}
	inv.File, inv.Files, inv.Environment = l.files[0], l.files, env
	inv.commandBecome = become
	applyDefaults(inv, func(p string) bool { _, ok := l.lines[p]; return ok })
	l.validate(inv)
	if len(l.errs) > 0 {
		return nil, l.sorted()
	}
	return inv, nil
}

type loader struct {
	file      string
	files     []string       // every layer's file, in merge order (layers.go)
	overlay   bool           // checking an environment's overlay on its own: keys may be partial
	lines     map[string]int // key path → line, for validation errors
	hostNames []string
	errs      Errors
	// reported holds the key paths the walk found wrong (and cut out):
	// validation says nothing more at or under them.
	reported map[string]bool
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)

func (l *loader) syntaxError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		f, n := l.place(n)
		return &Error{File: f, Line: n, Msg: "YAML: " + m[2]}
	}
	return &Error{File: l.file, Msg: "YAML: " + msg}
}

// sorted puts the problems in file order: by line, then by key path (with
// list indexes in number order, so batches[2] comes before batches[10]).
func (l *loader) sorted() Errors {
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i], l.errs[j]
		if fa, fb := l.fileIndex(a.File), l.fileIndex(b.File); fa != fb {
			return fa < fb // layered files: each file's problems together, in merge order
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return pathLess(a.Path, b.Path)
	})
	return l.errs
}

// pathLess orders key paths as text, except that runs of digits compare as
// numbers.
func pathLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) int {
	n := 0
	for n < len(s) && n < 9 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// add records a problem at path (a raw path such as "hosts[2].address").
func (l *loader) add(line int, path, format string, args ...any) {
	f, line := l.place(line)
	l.errs = append(l.errs, &Error{File: f, Line: line, Path: l.pretty(path), Msg: fmt.Sprintf(format, args...)})
}

// at records a validation problem whose line is looked up from its key
// path, unless the walk already reported that key or one above it.
func (l *loader) at(path, format string, args ...any) {
	if l.covered(path) {
		return
	}
	l.add(l.line(path), path, format, args...)
}

// missing records that key (a full key path) is required, at path (where the
// key should be), unless the walk already reported key: a value of the wrong
// kind, or a misspelt key that was most likely meant to be it.
func (l *loader) missing(path, key, format string, args ...any) {
	if l.covered(key) {
		return
	}
	l.at(path, format, args...)
}

// covered reports whether the walk reported path or one of its ancestors.
func (l *loader) covered(path string) bool {
	for p := path; ; {
		if l.reported[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return l.reported[""]
		}
		p = p[:i]
	}
}

// line finds the line of path, or of its nearest ancestor that has one.
func (l *loader) line(path string) int {
	for p := path; ; {
		if n, ok := l.lines[p]; ok {
			return n
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return l.lines[""]
		}
		p = p[:i]
	}
}

var hostIdxRe = regexp.MustCompile(`^hosts\[(\d+)\]`)

// pretty names the host in a path: hosts[2].ssh → hosts[2] (web3).ssh.
func (l *loader) pretty(path string) string {
	m := hostIdxRe.FindStringSubmatchIndex(path)
	if m == nil {
		return path
	}
	i, _ := strconv.Atoi(path[m[2]:m[3]])
	if i >= len(l.hostNames) || l.hostNames[i] == "" {
		return path
	}
	return path[:m[1]] + " (" + l.hostNames[i] + ")" + path[m[1]:]
}

func hostNames(doc *yaml.Node) []string {
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "hosts" || doc.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		var names []string
		for _, h := range doc.Content[i+1].Content {
			name := ""
			if h.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(h.Content); j += 2 {
					if h.Content[j].Value == "name" {
						name = h.Content[j+1].Value
					}
				}
			}
			names = append(names, name)
		}
		return names
	}
	return nil
}

var (
	durationType   = reflect.TypeOf(time.Duration(0))
	stringListType = reflect.TypeOf(StringList{})
	batchSizeType  = reflect.TypeOf(BatchSize{})
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// walk checks node against the Go type t: unknown and duplicate keys, node
// kinds and scalar syntax, recording the line of every key path on the way.
// It reports false when n itself is wrong (its parent then drops it, so that
// the rest decodes); keys that are wrong inside n are cut out of n here.
func (l *loader) walk(n *yaml.Node, t reflect.Type, path string) bool {
	ok := l.check(n, t, path)
	if !ok {
		l.reported[path] = true
	}
	return ok
}

func (l *loader) check(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, ok := l.lines[path]; !ok {
		l.lines[path] = n.Line
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true // an empty value: defaults or "is required" apply
	}
	if isEnvScalar(n, t) {
		return true // env: KEY: value (a mapping is walked as a struct)
	}
	where := path
	if where == "" {
		where = "the document"
	}
	switch {
	case t == hookType && n.Kind == yaml.ScalarNode:
		return true // a hook written as its command (hooks.go)
	case t == durationType:
		if !l.scalar(n, path) {
			return false
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			l.add(n.Line, path, "%q is not a duration (such as 500ms, 30s or 2m)", n.Value)
			return false
		}
	case t == stringListType:
		if n.Kind != yaml.SequenceNode {
			return l.scalar(n, path)
		}
		l.list(n, reflect.TypeOf(""), path)
	case t == batchSizeType:
		if !l.scalar(n, path) {
			return false
		}
		if _, err := ParseBatchSize(n.Value); err != nil {
			l.add(n.Line, path, "%v", err)
			return false
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			l.add(n.Line, path, "%s must be a mapping of keys, not %s", where, kindName(n))
			return false
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		given := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			given[n.Content[i].Value] = true
		}
		seen := map[string]int{}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			if prev, dup := seen[k.Value]; dup {
				l.add(k.Line, kp, "duplicate key (first at line %d)", prev)
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("unknown key %q", k.Value)
				if s := suggest(k.Value, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
					if !given[s] {
						l.reported[join(path, s)] = true // no "s is required" on top
					}
				}
				l.add(k.Line, path, "%s", msg)
				l.errs[len(l.errs)-1].Unknown = k.Value
				l.reported[kp] = true
				continue
			}
			l.lines[kp] = k.Line
			if l.walk(v, ft, kp) {
				kept = append(kept, k, v)
			} else {
				delete(l.lines, kp) // as if left out: defaults apply
			}
		}
		n.Content = kept
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			l.add(n.Line, path, "%s must be a mapping, not %s", where, kindName(n))
			return false
		}
		seen := map[string]int{}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := join(path, strconv.Quote(k.Value))
			if prev, dup := seen[k.Value]; dup {
				l.add(k.Line, kp, "duplicate key (first at line %d)", prev)
				continue
			}
			seen[k.Value] = k.Line
			l.lines[kp] = k.Line
			if l.walk(v, t.Elem(), kp) {
				kept = append(kept, k, v)
			}
		}
		n.Content = kept
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			l.add(n.Line, path, "%s must be a list, not %s", where, kindName(n))
			return false
		}
		l.list(n, t.Elem(), path)
	case t.Kind() == reflect.Int:
		if !l.scalar(n, path) {
			return false
		}
		if _, err := strconv.Atoi(n.Value); err != nil {
			l.add(n.Line, path, "%q is not a whole number", n.Value)
			return false
		}
	case t.Kind() == reflect.Float64:
		if !l.scalar(n, path) {
			return false
		}
		if _, err := strconv.ParseFloat(n.Value, 64); err != nil {
			l.add(n.Line, path, "%q is not a number", n.Value)
			return false
		}
	case t.Kind() == reflect.Bool:
		if !l.scalar(n, path) {
			return false
		}
		if _, err := strconv.ParseBool(n.Value); err != nil {
			l.add(n.Line, path, "%q is not true or false", n.Value)
			return false
		}
	case t.Kind() == reflect.String:
		return l.scalar(n, path)
	}
	return true
}

// list walks the items of a sequence. A wrong item is replaced by the zero
// value of its type (not removed, and not null, which the decoder would
// skip), so that the items after it keep their index in every later message.
func (l *loader) list(n *yaml.Node, elem reflect.Type, path string) {
	for i, c := range n.Content {
		if !l.walk(c, elem, fmt.Sprintf("%s[%d]", path, i)) {
			zero := &yaml.Node{}
			if err := zero.Encode(reflect.Zero(elem).Interface()); err != nil {
				zero = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
			}
			n.Content[i] = zero
		}
	}
}

func (l *loader) scalar(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode {
		l.add(n.Line, path, "must be a single value, not %s", kindName(n))
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "that"
}

// suggest returns the known key closest to k, when it is close enough to be
// a typo.
func suggest(k string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(k, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
