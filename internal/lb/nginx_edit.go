package lb

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// nginx configuration is edited with a small tokenizer rather than regular
// expressions so that comments, quoting, nesting (`http { upstream ... }`)
// and statements spread over lines are handled, and every byte outside the
// edited `server` statement stays as it was.

type tokKind int

const (
	tokWord tokKind = iota
	tokSemi
	tokOpen
	tokClose
)

type token struct {
	kind       tokKind
	text       string // unquoted value for words
	start, end int    // byte offsets in the source
}

func tokenize(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';':
			toks = append(toks, token{tokSemi, ";", i, i + 1})
			i++
		case c == '{':
			toks = append(toks, token{tokOpen, "{", i, i + 1})
			i++
		case c == '}':
			toks = append(toks, token{tokClose, "}", i, i + 1})
			i++
		case c == '"' || c == '\'':
			start := i
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, fmt.Errorf("unterminated quoted string at byte %d", start)
				}
				if src[i] == '\\' && i+1 < len(src) {
					b.WriteByte(src[i+1])
					i += 2
					continue
				}
				if src[i] == c {
					i++
					break
				}
				b.WriteByte(src[i])
				i++
			}
			toks = append(toks, token{tokWord, b.String(), start, i})
		default:
			start := i
			for i < len(src) && !strings.ContainsRune(" \t\r\n;{}", rune(src[i])) {
				if src[i] == '\\' && i+1 < len(src) {
					i++
				}
				i++
			}
			toks = append(toks, token{tokWord, src[start:i], start, i})
		}
	}
	return toks, nil
}

// upstreamServer is one `server` statement of an upstream block.
type upstreamServer struct {
	Addr   string
	Down   bool
	Backup bool
	Weight int
	words  []token // "server", addr, params...
	semi   token
}

// findUpstream returns the server statements of every `upstream <name> {}`
// block in src, and whether such a block exists.
func findUpstream(src, name string) ([]upstreamServer, bool, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, false, err
	}
	var (
		stmt    []token // words of the statement being read
		depth   int
		inDepth = -1 // depth inside the matching upstream block, or -1
		found   bool
		servers []upstreamServer
	)
	for _, tk := range toks {
		switch tk.kind {
		case tokWord:
			stmt = append(stmt, tk)
		case tokSemi:
			if depth == inDepth && len(stmt) >= 2 && stmt[0].text == "server" {
				s := upstreamServer{Addr: stmt[1].text, Weight: 1, words: stmt, semi: tk}
				for _, p := range stmt[2:] {
					switch {
					case p.text == "down":
						s.Down = true
					case p.text == "backup":
						s.Backup = true
					case strings.HasPrefix(p.text, "weight="):
						if w, err := strconv.Atoi(strings.TrimPrefix(p.text, "weight=")); err == nil {
							s.Weight = w
						}
					}
				}
				servers = append(servers, s)
			}
			stmt = nil
		case tokOpen:
			depth++
			if inDepth < 0 && len(stmt) == 2 && stmt[0].text == "upstream" && stmt[1].text == name {
				inDepth = depth
				found = true
			}
			stmt = nil
		case tokClose:
			if depth == 0 {
				return nil, false, fmt.Errorf("unbalanced '}' at byte %d", tk.start)
			}
			if depth == inDepth {
				inDepth = -1
			}
			depth--
			stmt = nil
		}
	}
	if depth != 0 {
		return nil, false, fmt.Errorf("unbalanced '{': %d block(s) not closed", depth)
	}
	return servers, found, nil
}

// serverRef names a server to edit: a line matches when its address equals
// Name or (when set) Addr.
type serverRef struct{ Name, Addr string }

func (r serverRef) matches(addr string) bool {
	return addr == r.Name || (r.Addr != "" && addr == r.Addr)
}

// editUpstream marks the `server` lines of upstream that match refs as
// `down` (down=true) or removes their `down` flag (down=false), leaving every
// other byte of src untouched. It returns the new text and whether anything
// changed. A missing upstream wraps ErrUnknownBackend; a ref with no
// matching line wraps ErrUnknownServer.
func editUpstream(src, upstream string, refs []serverRef, down bool) (string, bool, error) {
	servers, found, err := findUpstream(src, upstream)
	if err != nil {
		return "", false, err
	}
	if !found {
		return "", false, fmt.Errorf("no `upstream %s {}` block: %w", upstream, ErrUnknownBackend)
	}
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	for _, ref := range refs {
		matched := false
		for _, s := range servers {
			if !ref.matches(s.Addr) {
				continue
			}
			matched = true
			switch {
			case down && !s.Down:
				edits = append(edits, edit{s.semi.start, s.semi.start, " down"})
			case !down && s.Down:
				for i := 2; i < len(s.words); i++ {
					if s.words[i].text == "down" {
						// Drop the word and the blank before it.
						edits = append(edits, edit{s.words[i-1].end, s.words[i].end, ""})
					}
				}
			}
		}
		if !matched {
			return "", false, fmt.Errorf("upstream %s has no `server %s`: %w", upstream, refLabel(ref), ErrUnknownServer)
		}
	}
	if len(edits) == 0 {
		return src, false, nil
	}
	slices.SortFunc(edits, func(a, b edit) int { return b.start - a.start })
	edits = slices.CompactFunc(edits, func(a, b edit) bool { return a.start == b.start })
	out := src
	for _, e := range edits {
		out = out[:e.start] + e.text + out[e.end:]
	}
	return out, true, nil
}

func refLabel(r serverRef) string {
	if r.Addr != "" && r.Addr != r.Name {
		return r.Name + " (" + r.Addr + ")"
	}
	return r.Name
}
