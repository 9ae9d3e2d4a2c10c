package rollout

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The operator's reason and ticket ride in the lock as data: whatever they
// hold (quotes, the scripts' own placeholders, shell syntax, another run's
// identity), the lock is taken, renewed and released as usual and reads
// back exactly.
func TestLockCarriesReasonAndTicket(t *testing.T) {
	hosts, app := sshHosts(t)
	ctx := testCtx(t)
	canary := filepath.Join(t.TempDir(), "pwned")
	reason := `checkout 500s "started":5 __STARTED__ __LEASE__ $(touch ` + canary + `) '; rm -rf / ` + "`id`" + ` \ "run":"run-b","proc":{}`
	ticket := `CHG-42 & "x"`
	l := &Lock{Hosts: hosts, Host: "lockhost", Path: app, Lease: time.Minute}
	a := LockInfo{Owner: "alice@box", RunID: "run-a", Fingerprint: "fp", Reason: reason, Ticket: ticket}
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	info, err := l.Read(ctx)
	if err != nil || info == nil {
		t.Fatalf("Read = %+v, %v", info, err)
	}
	if info.Reason != reason || info.Ticket != ticket || info.RunID != "run-a" || info.LeaseUntil-info.Started != 60 {
		t.Fatalf("lock = %+v, want reason %q ticket %q and a 60s lease", info, reason, ticket)
	}
	if s := info.String(); !strings.Contains(s, "ticket "+ticket) || !strings.Contains(s, "reason ") {
		t.Errorf("String() = %q names no ticket or reason", s)
	}
	if err := l.Renew(ctx, a); err != nil {
		t.Fatal(err)
	}
	if info, err = l.Read(ctx); err != nil || info.Reason != reason || info.Ticket != ticket {
		t.Fatalf("after renew: %+v, %v", info, err)
	}
	// Another run whose identity the reason spells out is still refused.
	if err := l.Acquire(ctx, LockInfo{Owner: "bob@box", RunID: "run-b"}); err == nil {
		t.Fatal("run-b took a lock held by run-a")
	}
	if err := l.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	if info, err = l.Read(ctx); err != nil || info != nil {
		t.Fatalf("after release: %+v, %v", info, err)
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("the reason's text ran as a command on the lock host")
	}
}
