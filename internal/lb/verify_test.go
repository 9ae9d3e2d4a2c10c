package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStates is a Balancer whose States answers from a table, for the
// shared Verify/EnsureOut logic. Drain records the call and answers drain.
type fakeStates struct {
	states    []ServerState
	statesErr error
	drain     DrainResult
	drainErr  error
	drains    []string
}

var _ Balancer = (*fakeStates)(nil)

func (f *fakeStates) Kind() string                                        { return "fake" }
func (f *fakeStates) Describe() string                                    { return "fake" }
func (f *fakeStates) Preflight(context.Context, []string, bool) error     { return nil }
func (f *fakeStates) Enable(context.Context, string, time.Duration) error { return nil }
func (f *fakeStates) Restore(context.Context, []string) error             { return nil }
func (f *fakeStates) CanVerify() bool                                     { return true }
func (f *fakeStates) States(context.Context) ([]ServerState, error) {
	return f.states, f.statesErr
}
func (f *fakeStates) Drain(_ context.Context, server string) (DrainResult, error) {
	f.drains = append(f.drains, server)
	return f.drain, f.drainErr
}
func (f *fakeStates) Verify(ctx context.Context, server string) error {
	return verifyUp(ctx, f, fakeEndpoints, server)
}
func (f *fakeStates) EnsureOut(ctx context.Context, server string) (string, error) {
	return ensureOut(ctx, f, fakeEndpoints, server)
}

// Two endpoints, as an HA pair: "lb1:/run/a.sock" and "10.0.0.3:9999".
var fakeEndpoints = []Endpoint{{SSH: "lb1", Socket: "/run/a.sock"}, {TCP: "10.0.0.3:9999"}}

const ep1, ep2 = "lb1:/run/a.sock", "10.0.0.3:9999"

// row is web1 (or other) on an endpoint.
func row(server, ep string, st Status, sessions int) ServerState {
	return ServerState{Server: server, Endpoint: ep, Status: st, Sessions: sessions, CheckStatus: "L7OK"}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name      string
		states    []ServerState
		statesErr error
		wantErr   []string // substrings; nil = success
		wantIs    error
	}{
		{name: "UP everywhere",
			states: []ServerState{row("web1", ep1, StatusUp, 3), row("web2", ep1, StatusDrain, 0), row("web1", ep2, StatusUp, 0)}},
		{name: "missing on one endpoint",
			states:  []ServerState{row("web1", ep1, StatusUp, 0), row("web2", ep2, StatusUp, 0)},
			wantErr: []string{"verify web1", "not reported by " + ep2}},
		{name: "DRAIN on one endpoint",
			states:  []ServerState{row("web1", ep1, StatusUp, 0), row("web1", ep2, StatusDrain, 0)},
			wantErr: []string{"verify web1", ep2 + ": DRAIN, check L7OK"}, wantIs: ErrNotUp},
		{name: "DOWN and MAINT name both endpoints",
			states: []ServerState{
				{Server: "web1", Endpoint: ep1, Status: StatusDown, CheckStatus: "L4CON"},
				{Server: "web1", Endpoint: ep2, Status: StatusMaint}},
			wantErr: []string{ep1 + ": DOWN, check L4CON", ep2 + ": MAINT, check none"}, wantIs: ErrNotUp},
		{name: "states fail",
			statesErr: ErrUnreachable,
			wantErr:   []string{"verify web1"}, wantIs: ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeStates{states: tt.states, statesErr: tt.statesErr}
			err := f.Verify(context.Background(), "web1")
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify = nil, want an error containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Verify = %q, want it to contain %q", err, w)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Verify = %v, want errors.Is %v", err, tt.wantIs)
			}
			if len(f.drains) != 0 {
				t.Errorf("Verify drained %v: it must only read", f.drains)
			}
		})
	}
}

func TestEnsureOut(t *testing.T) {
	idle := DrainResult{Idle: true, Waited: 120 * time.Millisecond}
	tests := []struct {
		name      string
		states    []ServerState
		statesErr error
		drain     DrainResult
		drainErr  error
		wantDrain bool
		wantNote  []string // substrings of the note ("" entries skipped); nil = empty note
		wantErr   []string // nil = success
		wantIs    error
	}{
		{name: "drained and idle everywhere",
			states: []ServerState{row("web1", ep1, StatusDrain, 0), row("web1", ep2, StatusDrain, 0), row("web2", ep1, StatusUp, 5)}},
		{name: "maint counts as out",
			states: []ServerState{row("web1", ep1, StatusMaint, 0), row("web1", ep2, StatusDrain, 0)}},
		{name: "drained with its app already stopped (HAProxy shows DOWN)",
			states: []ServerState{
				{Server: "web1", Endpoint: ep1, Status: StatusDown, Admin: StatusDrain, CheckStatus: "L4CON"},
				row("web1", ep2, StatusDrain, 0)}},
		{name: "missing on one endpoint",
			states:  []ServerState{row("web1", ep1, StatusDrain, 0)},
			wantErr: []string{"re-check web1 before stop", "not reported by " + ep2}},
		{name: "UP everywhere is re-drained",
			states:    []ServerState{row("web1", ep1, StatusUp, 2), row("web1", ep2, StatusUp, 0)},
			drain:     idle,
			wantDrain: true,
			wantNote:  []string{"web1 was back in rotation on " + ep1 + " (UP), " + ep2 + " (UP): drained again, idle after 120ms"}},
		{name: "back in rotation after a reload on one endpoint",
			states:    []ServerState{row("web1", ep1, StatusDrain, 0), row("web1", ep2, StatusUp, 4)},
			drain:     DrainResult{Idle: true, Waited: 80 * time.Millisecond, Note: "haproxy 10.0.0.3:9999 reloaded (pid 1 → 2); relctl held no server out of rotation there"},
			wantDrain: true,
			wantNote: []string{"haproxy 10.0.0.3:9999 reloaded (pid 1 → 2)",
				"; web1 was back in rotation on " + ep2 + " (UP): drained again, idle after 80ms"}},
		{name: "DOWN without an admin drain is drained too",
			states:    []ServerState{{Server: "web1", Endpoint: ep1, Status: StatusDown, Admin: StatusUp}, row("web1", ep2, StatusDrain, 0)},
			drain:     idle,
			wantDrain: true,
			wantNote:  []string{"web1 was not drained on " + ep1 + " (DOWN): drained again"}},
		{name: "still busy waits for idle",
			states:    []ServerState{row("web1", ep1, StatusDrain, 2), {Server: "web1", Endpoint: ep2, Status: StatusDrain, Queued: 1}},
			drain:     DrainResult{Idle: true, Waited: 1500 * time.Millisecond},
			wantDrain: true,
			wantNote:  []string{"web1 was still busy on " + ep1 + " (2 sessions), " + ep2 + " (1 sessions): drained again, idle after 1.5s"}},
		{name: "idle assumed when the balancer cannot count",
			states:    []ServerState{row("web1", ep1, StatusUp, 0), row("web1", ep2, StatusDrain, 0)},
			drain:     DrainResult{Idle: true, Assumed: true, Waited: 2 * time.Second},
			wantDrain: true,
			wantNote:  []string{"drained again, waited 2s (sessions not counted)"}},
		{name: "re-drain fails",
			states:    []ServerState{row("web1", ep1, StatusUp, 0), row("web1", ep2, StatusDrain, 0)},
			drainErr:  errors.New("drain web1 on haproxy lb1:/run/a.sock: balancer unreachable"),
			wantDrain: true,
			wantErr:   []string{"web1 was back in rotation on " + ep1 + " (UP); re-drain before stop: drain web1 on haproxy lb1:/run/a.sock"}},
		{name: "re-drain times out with sessions left",
			states:    []ServerState{row("web1", ep1, StatusDrain, 3), row("web1", ep2, StatusDrain, 0)},
			drain:     DrainResult{Idle: false, Remaining: 2, Waited: 30 * time.Second},
			wantDrain: true,
			wantErr:   []string{"web1 was still busy", "2 session(s) remain after 30s"}, wantIs: ErrNotIdle},
		{name: "states fail",
			statesErr: ErrUnreachable,
			wantErr:   []string{"re-check web1 before stop"}, wantIs: ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeStates{states: tt.states, statesErr: tt.statesErr, drain: tt.drain, drainErr: tt.drainErr}
			note, err := f.EnsureOut(context.Background(), "web1")
			if got := len(f.drains) > 0; got != tt.wantDrain {
				t.Errorf("drained = %v (%v), want %v", got, f.drains, tt.wantDrain)
			}
			if len(f.drains) > 1 || (len(f.drains) == 1 && f.drains[0] != "web1") {
				t.Errorf("drains = %v, want web1 once", f.drains)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("EnsureOut = %q, nil; want an error containing %q", note, tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("EnsureOut error = %q, want it to contain %q", err, w)
					}
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("EnsureOut error = %v, want errors.Is %v", err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureOut: %v", err)
			}
			if tt.wantNote == nil && note != "" {
				t.Errorf("note = %q, want none", note)
			}
			for _, w := range tt.wantNote {
				if !strings.Contains(note, w) {
					t.Errorf("note = %q, want it to contain %q", note, w)
				}
			}
		})
	}
}

// scriptConn answers RunOn from a func; it cannot dial.
type scriptConn func(script string) (string, error)

func (f scriptConn) DialVia(context.Context, string, string, string) (net.Conn, error) {
	return nil, errors.New("scriptConn cannot dial")
}
func (f scriptConn) RunOn(_ context.Context, _, script string) (string, error) { return f(script) }

// nginx cannot count sessions: a server marked down must also pass the
// idle_check before EnsureOut lets its app stop.
func TestNginxEnsureOutRunsIdleCheck(t *testing.T) {
	var mu sync.Mutex
	fails := 3
	conn := scriptConn(func(script string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(script, "cat -- "):
			return "upstream shop {\n  server 10.0.0.11:80 down;\n  server 10.0.0.12:80;\n}\n", nil
		case strings.HasPrefix(script, "idle "):
			if fails > 0 {
				fails--
				return "", errors.New("exit status 1")
			}
			return "", nil
		}
		return "", fmt.Errorf("unexpected script %q", script)
	})
	b, err := New(Config{Kind: KindNginx, Backend: "shop", UpstreamFile: "/etc/nginx/up.conf", IdleCheck: "idle {{.Address}}",
		DrainTimeout: 5 * time.Second, PollInterval: time.Millisecond, Endpoints: []Endpoint{{SSH: "lb1"}},
		Addresses: map[string]string{"web1": "10.0.0.11:80", "web2": "10.0.0.12:80"}}, conn)
	if err != nil {
		t.Fatal(err)
	}
	note, err := b.EnsureOut(context.Background(), "web1")
	if err != nil || !strings.Contains(note, "web1 was still busy on lb1 (idle_check failed): waited, idle after") {
		t.Fatalf("EnsureOut = %q, %v", note, err)
	}
	if note, err := b.EnsureOut(context.Background(), "web1"); note != "" || err != nil {
		t.Fatalf("EnsureOut once idle = %q, %v", note, err)
	}
	if err := b.Verify(context.Background(), "web2"); err != nil {
		t.Fatalf("Verify web2 = %v", err)
	}
	if err := b.Verify(context.Background(), "web1"); !errors.Is(err, ErrNotUp) || !strings.Contains(err.Error(), "lb1: DRAIN") {
		t.Fatalf("Verify web1 = %v", err)
	}
}
