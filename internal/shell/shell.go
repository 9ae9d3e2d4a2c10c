// Package shell owns the quoting of values that are put into POSIX shell
// command lines run on remote hosts. It never runs anything itself.
package shell

import "strings"

// Quote returns s as a single POSIX shell word that sh reads back as
// exactly s. Words made only of safe characters (letters, digits and
// -_./,:@+%) are returned as they are; anything else is wrapped in single
// quotes, with each single quote inside written as close-quote,
// backslash-quote, reopen-quote:
//
//	it's  ->  'it'\''s'
//	(empty) -> ''
//
// Nothing inside single quotes is special to sh, so $(), backquotes, $VAR,
// globs, spaces and newlines are all preserved literally.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isSafe reports whether s consists only of characters that sh never
// treats specially, so it needs no quoting (keeps commands readable).
func isSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '/' || c == ',' || c == ':' || c == '@' || c == '+' || c == '%':
		default:
			return false
		}
	}
	// A leading '-' is safe for the shell but not for the program reading
	// it; that is the caller's business ("--"), not quoting's.
	return true
}
