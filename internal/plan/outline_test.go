package plan

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestOutlineIsWhatRenderTextShows: the outline a view lays out itself
// holds the same entries as the rendered text.
func TestOutlineIsWhatRenderTextShows(t *testing.T) {
	inv := inventory(t, 5, "")
	p, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	o := p.Outline()
	text := RenderText(p)
	if o.Empty || !strings.Contains(text, o.Title) || len(o.Entries) == 0 {
		t.Fatalf("outline %+v", o)
	}
	var hops, noRet, gates int
	for i, e := range o.Entries {
		if !strings.Contains(text, e.Text) {
			t.Errorf("entry %d %q is not in the text", i+1, e.Text)
		}
		if e.Hop != "" {
			hops++
		}
		if e.PointOfNoReturn {
			noRet++
		}
		if e.Gate {
			gates++
		}
	}
	if hops != 2 || noRet != 2 || gates != 2 {
		t.Errorf("hops %d, points of no return %d, gates %d; want 2 each", hops, noRet, gates)
	}
	if len(o.Undo) == 0 || o.PerHost == "" || len(o.Facts) < 3 {
		t.Errorf("undo %v per host %q facts %v", o.Undo, o.PerHost, o.Facts)
	}
	inv1 := inventory(t, 2, "")
	empty, err := Build(inv1, Assume(inv1, "1.4.0"), Options{To: "1.4.0"})
	if err != nil {
		t.Fatal(err)
	}
	if eo := empty.Outline(); !eo.Empty || len(eo.Entries) != 0 {
		t.Errorf("empty plan outline %+v", eo)
	}
}

// TestRollbackNowAgreesWithRollback: at each point of a two-hop run,
// RollbackNow says what Rollback plans or refuses.
func TestRollbackNowAgreesWithRollback(t *testing.T) {
	inv := inventory(t, 3, "")
	p, err := Build(inv, Assume(inv, "1.3.2"), Options{To: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	prog := Progress{Started: map[string]bool{}, Finished: map[string]bool{}}
	var checked int
	for _, s := range p.Steps {
		prog.Started[s.ID] = true
		to, hosts, err := RollbackNow(p, prog)
		rb, rerr := Rollback(inv, p, prog)
		switch {
		case (err == nil) != (rerr == nil):
			t.Fatalf("after %s: RollbackNow %v, Rollback %v", s.ID, err, rerr)
		case err != nil:
			if !errors.Is(err, ErrPastPointOfNoReturn) || err.Error() != rerr.Error() {
				t.Fatalf("after %s: %v vs %v", s.ID, err, rerr)
			}
		default:
			if to != rb.To || !slices.Equal(hosts, rb.DeployHosts()) {
				t.Fatalf("after %s: %s %v vs %s %v", s.ID, to, hosts, rb.To, rb.DeployHosts())
			}
		}
		checked++
		prog.Finished[s.ID] = true
		if s.ID == "deploy/web1@2.0.0" {
			// Between the two post-migrates: back to 1.4.0.
			if err != nil || to != "1.4.0" || !slices.Equal(hosts, []string{"web1"}) {
				t.Fatalf("at gate 2: %s %v %v", to, hosts, err)
			}
		}
		if s.ID == "post-migrate@2.0.0" && err == nil {
			t.Fatal("rollback offered after the last post-migrate")
		}
	}
	if checked != len(p.Steps) {
		t.Fatal("not every step checked")
	}
}
