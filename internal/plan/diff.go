package plan

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// Diff compares a plan read from a file (a) with the plan its inputs give
// (b) and describes the first difference, or returns "" when they are the
// same plan: the same kind, versions, hops, settings, actions, skipped
// hosts and steps (every field of each, in order). Notes are words, not
// part of what runs, and are not compared.
func Diff(a, b *Plan) string {
	head := []struct {
		name string
		x, y any
	}{
		{"kind", a.Kind, b.Kind}, {"app", a.App, b.App}, {"environment", a.Environment, b.Environment}, {"from", a.From, b.From}, {"to", a.To, b.To},
		{"hops", a.Hops, b.Hops}, {"reason", a.Reason, b.Reason}, {"ticket", a.Ticket, b.Ticket}, {"settings", a.Settings, b.Settings},
		{"actions", a.Actions, b.Actions}, {"skipped", a.Skipped, b.Skipped},
		{"roles", a.Roles, b.Roles}, {"roles_together", a.RolesTogether, b.RolesTogether}, {"selection", a.Selection, b.Selection},
	}
	for _, f := range head {
		if !same(f.x, f.y) {
			return fmt.Sprintf("%s is %s in the file, %s when rebuilt", f.name, js(f.x), js(f.y))
		}
	}
	for i := 0; i < max(len(a.Steps), len(b.Steps)); i++ {
		switch {
		case i >= len(a.Steps):
			return fmt.Sprintf("step %d (%s) is missing from the file", i+1, b.Steps[i])
		case i >= len(b.Steps):
			return fmt.Sprintf("step %d (%s) of the file is not in the rebuilt plan", i+1, a.Steps[i])
		case !same(a.Steps[i], b.Steps[i]):
			if a.Steps[i].ID != b.Steps[i].ID {
				return fmt.Sprintf("step %d is %q (%s) in the file, %q (%s) when rebuilt", i+1, a.Steps[i].ID, a.Steps[i], b.Steps[i].ID, b.Steps[i])
			}
			return fmt.Sprintf("step %d (%s) differs: %s in the file, %s when rebuilt", i+1, a.Steps[i].ID, js(a.Steps[i]), js(b.Steps[i]))
		}
	}
	return ""
}

// same compares two values by their JSON form, which is what a file holds
// (nil and empty slices read back alike).
func same(x, y any) bool {
	return reflect.DeepEqual(norm(x), norm(y))
}

func norm(x any) any {
	b, _ := json.Marshal(x)
	var v any
	_ = json.Unmarshal(b, &v)
	if v == nil {
		return []any{}
	}
	if s, ok := v.([]any); ok && len(s) == 0 {
		return []any{}
	}
	return v
}

func js(x any) string {
	b, _ := json.Marshal(x)
	return string(b)
}
