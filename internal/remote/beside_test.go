package remote

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A Beside command does not wait behind a long command on the persistent
// shell: it runs in a session of its own while the shell is busy, and
// through the shell (no new session) when the shell is free.
func TestBesideRunsWhileShellBusy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{})
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Output(testCtx(t), "true"); err != nil {
		t.Fatal(err)
	}
	if n := c.Sessions(); n != 1 {
		t.Fatalf("%d sessions after the first command, want 1 (the shell)", n)
	}
	// Through the free shell: no new session.
	if _, err := c.Run(testCtx(t), Command{Script: "echo beside", Beside: true}); err != nil {
		t.Fatal(err)
	}
	if n := c.Sessions(); n != 1 {
		t.Fatalf("a Beside command on a free shell opened a session: %d", n)
	}
	marker := filepath.Join(f.dir, "busy")
	release := filepath.Join(f.dir, "release")
	long := make(chan error, 1)
	go func() {
		_, err := c.Run(context.Background(), Command{Script: ": >" + marker + "; while [ ! -e " + release + " ]; do sleep 0.05; done", Timeout: 60 * time.Second})
		long <- err
	}()
	if !eventually(30*time.Second, func() bool { return fileExists(marker) }) {
		t.Fatal("the long command never started")
	}
	var got []string
	if _, err := c.Run(testCtx(t), Command{Script: "echo beside", Beside: true, Stdout: func(l string) { got = append(got, l) }}); err != nil || len(got) != 1 || got[0] != "beside" {
		t.Fatalf("Beside while busy: %q, %v", got, err)
	}
	select {
	case err := <-long:
		t.Fatalf("the long command ended (%v) before the Beside one was answered", err)
	default:
	}
	if n := c.Sessions(); n != 2 {
		t.Errorf("%d sessions, want 2 (the shell and one beside it)", n)
	}
	writeFile(t, release, "")
	select {
	case err := <-long:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long command never ended")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
