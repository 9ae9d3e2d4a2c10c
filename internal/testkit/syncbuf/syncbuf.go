// Package syncbuf is a buffer a child process (or another goroutine) writes
// while a test reads it. It is for tests only and never touches a fleet.
package syncbuf

import (
	"strings"
	"sync"
)

// Buffer is an io.Writer whose String may be called while writes go on.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
