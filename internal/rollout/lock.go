package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/relctl/relctl/internal/remote"
	"github.com/relctl/relctl/internal/shell"
)

// ErrLocked means another run holds the fleet's lock.
var ErrLocked = errors.New("fleet is locked")

// LockInfo is the content of path/.relctl/lock on the lock host.
type LockInfo struct {
	Owner       string `json:"owner"` // user@machine
	RunID       string `json:"run"`
	Fingerprint string `json:"fingerprint"`
	Started     int64  `json:"started"`     // unix seconds, host clock
	LeaseUntil  int64  `json:"lease_until"` // unix seconds, host clock
	Now         int64  `json:"-"`           // the host's clock when read
}

// Expired reports whether the lease ran out (by the lock host's clock).
func (l LockInfo) Expired() bool { return l.Now > l.LeaseUntil }

func (l LockInfo) String() string {
	s := fmt.Sprintf("held by %s (run %s) since %s", l.Owner, l.RunID, time.Unix(l.Started, 0).UTC().Format(time.RFC3339))
	if l.Expired() {
		s += fmt.Sprintf(", lease expired %s ago", time.Duration(l.Now-l.LeaseUntil)*time.Second)
	} else {
		s += fmt.Sprintf(", lease renewed until %s", time.Unix(l.LeaseUntil, 0).UTC().Format(time.RFC3339))
	}
	return s
}

// LockError is ErrLocked with the holder.
type LockError struct{ Holder LockInfo }

func (e *LockError) Error() string { return "fleet is locked: " + e.Holder.String() }

// Unwrap makes errors.Is(err, ErrLocked) hold.
func (e *LockError) Unwrap() error { return ErrLocked }

// Lock is the deploy lock on one host, under path/.relctl/lock. Creation is
// atomic (noclobber); the lease is stamped by the host's own clock so that
// clock skew between operators does not matter.
type Lock struct {
	Hosts Hosts
	Host  string
	Path  string // the app's base path on Host
	Lease time.Duration
}

func (l *Lock) file() string { return strings.TrimRight(l.Path, "/") + "/.relctl/lock" }

// lockScript: exit 0 = acquired or renewed; exit 3 = held by another run
// (its content on stdout). A run may re-acquire its own lock (resume) and
// break an expired one only when asked to.
const lockScript = `set -u
f=%[1]s; run=%[2]s; lease=%[3]d; take=%[5]s
mkdir -p "$(dirname "$f")"
now=$(date +%%s)
body=$(printf '%%s' %[4]s | sed "s/__NOW__/$now/; s/__LEASE__/$((now + lease))/")
if [ -e "$f" ]; then
  cur=$(cat "$f")
  case "$cur" in *"\"run\":\"$run\""*) take=own ;; esac
  if [ "$take" = no ]; then printf '%%s\nnow=%%s\n' "$cur" "$now"; exit 3; fi
  tmp="$f.$$"; printf '%%s\n' "$body" > "$tmp" && mv -f "$tmp" "$f"
  echo "$take"
  exit 0
fi
( set -C; printf '%%s\n' "$body" > "$f" ) 2>/dev/null || { printf '%%s\nnow=%%s\n' "$(cat "$f")" "$now"; exit 3; }
echo new
`

// Acquire takes the lock for run, or renews it if run already holds it.
func (l *Lock) Acquire(ctx context.Context, info LockInfo) error {
	return l.write(ctx, info, "no")
}

func (l *Lock) write(ctx context.Context, info LockInfo, take string) error {
	body := fmt.Sprintf(`{"owner":%q,"run":%q,"fingerprint":%q,"started":__NOW__,"lease_until":__LEASE__}`, info.Owner, info.RunID, info.Fingerprint)
	if info.Started > 0 {
		body = strings.Replace(body, "__NOW__", strconv.FormatInt(info.Started, 10), 1)
	}
	script := fmt.Sprintf(lockScript, shell.Quote(l.file()), shell.Quote(info.RunID), int(l.Lease.Seconds()), shell.Quote(body), take)
	var out strings.Builder
	_, err := l.Hosts.Run(ctx, l.Host, remote.Command{Script: script, Timeout: 30 * time.Second, Stdout: func(s string) { out.WriteString(s + "\n") }})
	var ee *remote.ExitError
	if errors.As(err, &ee) && ee.Code == 3 {
		holder, perr := parseLock(out.String())
		if perr != nil {
			return fmt.Errorf("lock on %s: held, and its content is unreadable: %v", l.Host, perr)
		}
		return &LockError{Holder: holder}
	}
	if err != nil {
		return fmt.Errorf("lock on %s: %w", l.Host, err)
	}
	return nil
}

// Renew extends run's lease; it fails if the lock is no longer run's.
func (l *Lock) Renew(ctx context.Context, info LockInfo) error {
	return l.write(ctx, info, "no")
}

// Release removes the lock if run holds it.
func (l *Lock) Release(ctx context.Context, runID string) error {
	script := fmt.Sprintf(`f=%s; [ -e "$f" ] || exit 0; if grep -qF -- %s "$f"; then rm -f "$f"; else echo "lock is held by another run: $(cat "$f")" >&2; exit 3; fi`,
		shell.Quote(l.file()), shell.Quote(`"run":`+strconv.Quote(runID)))
	if _, err := l.Hosts.Run(ctx, l.Host, remote.Command{Script: script, Timeout: 30 * time.Second}); err != nil {
		return fmt.Errorf("unlock on %s: %w", l.Host, err)
	}
	return nil
}

// Read returns the current lock, or nil when the fleet is not locked.
func (l *Lock) Read(ctx context.Context) (*LockInfo, error) {
	out, err := output(ctx, l.Hosts, l.Host, fmt.Sprintf(`f=%s; if [ -e "$f" ]; then cat "$f"; fi; echo "now=$(date +%%s)"`, shell.Quote(l.file())))
	if err != nil {
		return nil, fmt.Errorf("read lock on %s: %w", l.Host, err)
	}
	if !strings.Contains(out, "{") {
		return nil, nil
	}
	info, err := parseLock(out)
	if err != nil {
		return nil, fmt.Errorf("read lock on %s: %w", l.Host, err)
	}
	return &info, nil
}

// Break removes the lock whoever holds it; the caller checks expiry and
// audits the break.
func (l *Lock) Break(ctx context.Context) error {
	if _, err := l.Hosts.Run(ctx, l.Host, remote.Command{Script: "rm -f " + shell.Quote(l.file()), Timeout: 30 * time.Second}); err != nil {
		return fmt.Errorf("break lock on %s: %w", l.Host, err)
	}
	return nil
}

func parseLock(out string) (LockInfo, error) {
	var info LockInfo
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "{"):
			if err := json.Unmarshal([]byte(line), &info); err != nil {
				return info, err
			}
		case strings.HasPrefix(line, "now="):
			info.Now, _ = strconv.ParseInt(strings.TrimPrefix(line, "now="), 10, 64)
		}
	}
	if info.RunID == "" {
		return info, fmt.Errorf("no lock record in %q", out)
	}
	return info, nil
}
