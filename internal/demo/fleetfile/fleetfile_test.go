package fleetfile

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/relctl/relctl/internal/fleet"
)

func sample() *fleet.Inventory {
	inv := Base(Fleet{User: "deploy", IdentityFile: "/d/id_ed25519", KnownHosts: "/d/known_hosts",
		ArtifactDir: "/d/dist", MigrationsLog: "/d/migrations log", // a space: must be shell-quoted
		Hosts: []Host{
			{Name: "web1", SSHAddr: "127.0.0.1:2001", AppAddr: "127.0.0.1:3001", Path: "/d/hosts/web1/srv/shop"},
			{Name: "web2", SSHAddr: "127.0.0.1:2002", AppAddr: "127.0.0.1:3002", Path: "/d/hosts/web2/srv/shop"},
		}})
	inv.Balancer = fleet.Balancer{Kind: "haproxy", Backend: "shop", DrainTimeout: 5 * time.Second,
		Endpoints: []fleet.Endpoint{{TCP: "127.0.0.1:9999"}}}
	inv.Releases = map[string]fleet.Release{
		"1.1.0":  {UpgradeFrom: ">=1.0.0", DowngradeTo: []string{"1.0.0"}},
		"2.0.0":  {UpgradeFrom: ">=1.1.0"},
		"10.0.0": {DowngradeTo: []string{"2.0.0", "1.1.0"}},
	}
	inv.Vars = map[string]string{"region": "eu: west", "n": "007"} // YAML would misread both unquoted
	inv.SSH.Port = 2222
	return inv
}

// TestRoundTrip: every value the writer is given comes back from
// fleet.Parse unchanged, whatever the field: a key added to internal/fleet
// is covered without a change here.
func TestRoundTrip(t *testing.T) {
	in := sample()
	b, err := Marshal(in, Notes{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := fleet.Parse("fleet.yaml", b)
	if err != nil {
		t.Fatalf("fleet.Parse: %v\n%s", err, b)
	}
	sameSet(t, "inventory", reflect.ValueOf(*in), reflect.ValueOf(*out), string(b))
	if !strings.Contains(in.Commands.Migrate, "'/d/migrations log'") {
		t.Errorf("migrate does not quote the log path: %s", in.Commands.Migrate)
	}
}

// sameSet fails for every exported field set (non-zero) in want that got
// does not hold the same.
func sameSet(t *testing.T, path string, want, got reflect.Value, text string) {
	t.Helper()
	if want.IsZero() {
		return
	}
	if want.Kind() == reflect.Struct {
		for i := 0; i < want.NumField(); i++ {
			f := want.Type().Field(i)
			if f.IsExported() && f.Tag.Get("yaml") != "-" {
				sameSet(t, path+"."+f.Name, want.Field(i), got.Field(i), text)
			}
		}
		return
	}
	if !reflect.DeepEqual(want.Interface(), got.Interface()) {
		t.Errorf("%s: wrote %#v, read back %#v\n%s", path, want.Interface(), got.Interface(), text)
	}
}

func TestNotes(t *testing.T) {
	b, err := Marshal(sample(), Notes{
		Head:   "first line\n\nthird line",
		Before: map[string]string{"commands": "run with sh -c", "hosts.*.vars": "per host"},
		After:  map[string]string{"ssh.user": "you", "rollout.batches": "canary first", "emergency": "downgrades", "hosts.*.address": "its SSH server"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"# first line\n#\n# third line\n",
		"# run with sh -c\ncommands:\n",
		"  user: deploy # you\n",
		"  batches: [1, 2, 50%] # canary first\n",
		"emergency: # downgrades\n",
		"    address: 127.0.0.1:2001 # its SSH server\n",
		"    address: 127.0.0.1:2002 # its SSH server\n",
		"    # per host\n    vars: {listen: '127.0.0.1:3001'}\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if _, err := fleet.Parse("fleet.yaml", b); err != nil {
		t.Fatalf("with notes: %v\n%s", err, s)
	}
	// Zero values are left out, not written as zeros.
	for _, absent := range []string{"jump", "poll_interval", "idle_check", "max_failed_hosts", "socket:"} {
		if strings.Contains(s, absent) {
			t.Errorf("output holds the empty key %s:\n%s", absent, s)
		}
	}

	for _, n := range []Notes{
		{After: map[string]string{"ssh.usr": "typo"}},
		{Before: map[string]string{"hosts.0.name": "lists are *"}},
		{After: map[string]string{"ssh.jump": "empty, so not written"}},
	} {
		if _, err := Marshal(sample(), n); err == nil || !strings.Contains(err.Error(), "no such key") {
			t.Errorf("Marshal with notes %v: %v, want a no-such-key error", n, err)
		}
	}
}
