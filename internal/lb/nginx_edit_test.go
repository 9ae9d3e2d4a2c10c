package lb

import (
	"errors"
	"strings"
	"testing"
)

const upstreamConf = `# shop upstream, managed by hand and by relctl
upstream other {
    server 10.0.0.11:8080;   # same address, other upstream: untouched
}

upstream shop {
    zone shop 64k;
    server 10.0.0.11:8080 weight=5 max_fails=3;   # web1
    server 10.0.0.12:8080;
    # server 10.0.0.13:8080;  commented out: not a server
    server 10.0.0.14:8080 down;
    server "10.0.0.15:8080"
        backup;
    server unix:/run/shop.sock;
    keepalive 16;
}
`

func TestEditUpstream(t *testing.T) {
	tests := []struct {
		name    string
		refs    []serverRef
		down    bool
		want    string // "" = unchanged
		wantErr error
	}{
		{
			name: "down with params and comment",
			refs: []serverRef{{Name: "10.0.0.11:8080"}}, down: true,
			want: replace(upstreamConf, "    server 10.0.0.11:8080 weight=5 max_fails=3;   # web1", "    server 10.0.0.11:8080 weight=5 max_fails=3 down;   # web1"),
		},
		{
			name: "down plain by inventory name via address",
			refs: []serverRef{{Name: "web2", Addr: "10.0.0.12:8080"}}, down: true,
			want: replace(upstreamConf, "server 10.0.0.12:8080;", "server 10.0.0.12:8080 down;"),
		},
		{
			name: "already down is unchanged",
			refs: []serverRef{{Name: "10.0.0.14:8080"}}, down: true,
		},
		{
			name: "enable removes down",
			refs: []serverRef{{Name: "10.0.0.14:8080"}}, down: false,
			want: replace(upstreamConf, "server 10.0.0.14:8080 down;", "server 10.0.0.14:8080;"),
		},
		{
			name: "enable when not down is unchanged",
			refs: []serverRef{{Name: "10.0.0.12:8080"}}, down: false,
		},
		{
			name: "quoted address spanning lines",
			refs: []serverRef{{Name: "10.0.0.15:8080"}}, down: true,
			want: replace(upstreamConf, "        backup;", "        backup down;"),
		},
		{
			name: "unix socket server",
			refs: []serverRef{{Name: "unix:/run/shop.sock"}}, down: true,
			want: replace(upstreamConf, "server unix:/run/shop.sock;", "server unix:/run/shop.sock down;"),
		},
		{
			name: "several at once",
			refs: []serverRef{{Name: "10.0.0.12:8080"}, {Name: "10.0.0.11:8080"}}, down: true,
			want: replace(replace(upstreamConf, "server 10.0.0.12:8080;", "server 10.0.0.12:8080 down;"),
				"max_fails=3;", "max_fails=3 down;"),
		},
		{
			name: "commented-out server is missing",
			refs: []serverRef{{Name: "10.0.0.13:8080"}}, down: true, wantErr: ErrUnknownServer,
		},
		{
			name: "port matters",
			refs: []serverRef{{Name: "10.0.0.12:9090"}}, down: true, wantErr: ErrUnknownServer,
		},
		{
			name: "host without port does not match",
			refs: []serverRef{{Name: "10.0.0.12"}}, down: true, wantErr: ErrUnknownServer,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := editUpstream(upstreamConf, "shop", tt.refs, tt.down)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = upstreamConf
			}
			if changed != (tt.want != "") {
				t.Errorf("changed = %v, want %v", changed, tt.want != "")
			}
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			// Round trip: undoing the edit gives back the original bytes.
			if tt.want != "" {
				back, _, err := editUpstream(got, "shop", tt.refs, !tt.down)
				if err != nil {
					t.Fatal(err)
				}
				if back != upstreamConf {
					t.Errorf("round trip changed the file:\n%s", back)
				}
			}
		})
	}
}

func TestEditUpstreamNested(t *testing.T) {
	src := "http {\n\tupstream shop {\n\t\tserver a:1;\n\t\tserver b:1;\n\t}\n\tserver {\n\t\tlisten 80;\n\t\tlocation / { proxy_pass http://shop; }\n\t}\n}\n"
	got, changed, err := editUpstream(src, "shop", []serverRef{{Name: "b:1"}}, true)
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	if want := replace(src, "server b:1;", "server b:1 down;"); got != want {
		t.Errorf("got %q", got)
	}
	// `server {` blocks and `listen` are not upstream servers.
	servers, found, err := findUpstream(src, "shop")
	if err != nil || !found || len(servers) != 2 {
		t.Fatalf("servers=%+v found=%v err=%v", servers, found, err)
	}
}

func TestEditUpstreamErrors(t *testing.T) {
	for name, src := range map[string]string{
		"missing upstream": "upstream other { server a:1; }\n",
		"unbalanced":       "upstream shop { server a:1;\n",
		"extra close":      "upstream shop { server a:1; } }\n",
		"unterminated":     "upstream shop { server \"a:1; }\n",
	} {
		if _, _, err := editUpstream(src, "shop", []serverRef{{Name: "a:1"}}, true); err == nil {
			t.Errorf("%s: nil error", name)
		}
	}
	_, _, err := editUpstream("upstream other { server a:1; }\n", "shop", []serverRef{{Name: "a:1"}}, true)
	if !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("missing upstream: %v, want ErrUnknownBackend", err)
	}
}

func TestFindUpstream(t *testing.T) {
	servers, found, err := findUpstream(upstreamConf, "shop")
	if err != nil || !found {
		t.Fatal(found, err)
	}
	type row struct {
		addr         string
		down, backup bool
		weight       int
	}
	want := []row{
		{"10.0.0.11:8080", false, false, 5},
		{"10.0.0.12:8080", false, false, 1},
		{"10.0.0.14:8080", true, false, 1},
		{"10.0.0.15:8080", false, true, 1},
		{"unix:/run/shop.sock", false, false, 1},
	}
	if len(servers) != len(want) {
		t.Fatalf("got %d servers: %+v", len(servers), servers)
	}
	for i, s := range servers {
		if got := (row{s.Addr, s.Down, s.Backup, s.Weight}); got != want[i] {
			t.Errorf("server %d = %+v, want %+v", i, got, want[i])
		}
	}
}

func replace(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("not found: " + old)
	}
	return strings.Replace(s, old, new, 1)
}
