package lb

import "testing"

func TestParseStateLines(t *testing.T) {
	sts, counted, err := parseStateLines("# server status sessions\nweb1 UP 3\n\nweb2 drain 0\nweb3 MAINT 0\n", "lb1")
	if err != nil || !counted || len(sts) != 3 {
		t.Fatalf("sts=%+v counted=%v err=%v", sts, counted, err)
	}
	want := []ServerState{
		{Server: "web1", Status: StatusUp, Sessions: 3, Endpoint: "lb1"},
		{Server: "web2", Status: StatusDrain, Endpoint: "lb1"},
		{Server: "web3", Status: StatusMaint, Endpoint: "lb1"},
	}
	for i := range want {
		if sts[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, sts[i], want[i])
		}
	}
	if _, counted, _ := parseStateLines("web1 UP\nweb2 UP 0\n", ""); counted {
		t.Error("a line without sessions must make the count unknown")
	}
	for _, bad := range []string{"web1\n", "web1 UP many\n", "web1 UP -1\n"} {
		if _, _, err := parseStateLines(bad, ""); err == nil {
			t.Errorf("parseStateLines(%q) = nil error", bad)
		}
	}
}
