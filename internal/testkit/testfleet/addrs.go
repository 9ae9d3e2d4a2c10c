package testfleet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// portFree reports whether addr can be bound right now.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// ipLocks holds flocks on loopback addresses so that fleets in concurrently
// running test binaries (go test runs packages in parallel) never share one.
type ipLocks struct{ files []*os.File }

func lockDir() string { return filepath.Join(os.TempDir(), "relctl-testfleet-locks") }

// tryLockIPs locks 127.0.0.<first..last> without blocking, all or nothing.
func tryLockIPs(first, last int) (*ipLocks, error) {
	if err := os.MkdirAll(lockDir(), 0o755); err != nil {
		return nil, err
	}
	l := &ipLocks{}
	for i := first; i <= last; i++ {
		f, err := os.OpenFile(filepath.Join(lockDir(), fmt.Sprintf("127.0.0.%d.lock", i)), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			l.release()
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			l.release()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errBusy
			}
			return nil, err
		}
		l.files = append(l.files, f)
	}
	return l, nil
}

var errBusy = errors.New("addresses in use by another fleet")

func (l *ipLocks) release() {
	if l == nil {
		return
	}
	for _, f := range l.files {
		f.Close()
	}
	l.files = nil
}
