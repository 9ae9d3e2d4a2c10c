package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/ops"
	"github.com/relctl/relctl/internal/rollout"
)

// The machine-readable shapes of status, history and lock (docs/json.md).
// They are written from these structs only, never from the domain types,
// so that a renamed Go field cannot change what scripts read. Every key is
// snake_case (TestJSONKeysAreSnakeCase walks every output).
//
// The version fields follow the plan's and the events': a JSON document
// carries "schema", a JSON-lines record "v" on every line. They change when
// a field changes meaning or disappears; added fields keep them.
const (
	StatusSchema  = 1 // relctl status --json
	LockSchema    = 1 // relctl lock --json, relctl lock break --json
	HistoryFormat = 1 // "v" of every relctl history --json line
)

// outputFlags are the output flags of the commands that print a report
// (status, history, lock, plan).
type outputFlags struct {
	plain, json bool
}

// addOutputFlags gives cmd --plain and --json, the same on every command
// that prints; they exclude each other (checkFlagValues).
func addOutputFlags(cmd *cobra.Command, of *outputFlags, plainHelp, jsonHelp string) {
	cmd.Flags().BoolVar(&of.plain, "plain", false, plainHelp)
	cmd.Flags().BoolVar(&of.json, "json", false, jsonHelp)
}

// writeJSON writes v as one line of JSON lines.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// writeDoc writes v as one indented JSON document, as plan's is.
func writeDoc(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// statusJSON is relctl status --json.
type statusJSON struct {
	Schema        int                `json:"schema"`
	App           string             `json:"app"`
	Hosts         []statusHostJSON   `json:"hosts"`
	Balancer      []statusServerJSON `json:"balancer"`
	BalancerError string             `json:"balancer_error,omitempty"`
	Lock          *lockJSON          `json:"lock"`
	LockError     string             `json:"lock_error,omitempty"`
	Unfinished    *unfinishedJSON    `json:"unfinished_run,omitempty"`
	JournalError  string             `json:"journal_error,omitempty"`
}

type statusHostJSON struct {
	Name      string   `json:"name"`
	Server    string   `json:"server"`
	Reachable bool     `json:"reachable"`
	Error     string   `json:"error,omitempty"`
	Version   string   `json:"version"`
	Current   string   `json:"current,omitempty"`
	Releases  []string `json:"releases"`
	Health    string   `json:"health"`
	HealthOK  bool     `json:"health_ok"`
}

type statusServerJSON struct {
	Server      string `json:"server"`
	Status      string `json:"status"`
	Admin       string `json:"admin,omitempty"`
	Sessions    int    `json:"sessions"`
	Queued      int    `json:"queued"`
	CheckStatus string `json:"check_status,omitempty"`
	Weight      int    `json:"weight"`
	Addr        string `json:"addr,omitempty"`
	Endpoint    string `json:"endpoint,omitempty"`
}

// lockJSON is a lock's holder.
type lockJSON struct {
	Owner      string `json:"owner"`
	Run        string `json:"run"`
	PID        int    `json:"pid,omitempty"`
	Machine    string `json:"machine,omitempty"`
	Started    string `json:"started"`
	LeaseUntil string `json:"lease_until"`
	Expired    bool   `json:"expired"`
	TakenFrom  string `json:"taken_from,omitempty"`
	Ticket     string `json:"ticket,omitempty"` // the run's --ticket
	Reason     string `json:"reason,omitempty"` // the run's --reason (a downgrade's)
	// Environment is the inventory environment of the run (--env).
	Environment string `json:"environment,omitempty"`
}

type unfinishedJSON struct {
	Run   string `json:"run"`
	Owner string `json:"owner"`
	Kind  string `json:"kind"`
	From  string `json:"from"`
	To    string `json:"to"`
	// Alive: the run's process still runs (it holds the lock).
	Alive bool   `json:"alive"`
	Why   string `json:"why,omitempty"`
}

func unixRFC3339(s int64) string {
	if s == 0 {
		return ""
	}
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}

func lockDTO(l *rollout.LockInfo) *lockJSON {
	if l == nil {
		return nil
	}
	return &lockJSON{Owner: l.Owner, Run: l.RunID, PID: l.Proc.PID, Machine: l.Proc.Machine,
		Started: unixRFC3339(l.Started), LeaseUntil: unixRFC3339(l.LeaseUntil), Expired: l.Expired(), TakenFrom: l.TakenFrom,
		Ticket: l.Ticket, Reason: l.Reason, Environment: l.Environment}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// statusDoc is st as relctl status --json writes it.
func statusDoc(inv *fleet.Inventory, st ops.Status) statusJSON {
	d := statusJSON{Schema: StatusSchema, App: inv.App, Hosts: []statusHostJSON{}, Balancer: []statusServerJSON{},
		BalancerError: errString(st.LBErr), Lock: lockDTO(st.Lock), LockError: errString(st.LockErr), JournalError: errString(st.JournalErr)}
	for i, h := range st.Hosts {
		x := statusHostJSON{Name: h.Name, Reachable: h.Reachable, Error: h.Error, Version: h.Version, Current: h.Current,
			Releases: h.Releases, Health: h.Health, HealthOK: h.HealthOK}
		if i < len(inv.Hosts) {
			x.Server = inv.Hosts[i].Server
		}
		if x.Releases == nil {
			x.Releases = []string{}
		}
		d.Hosts = append(d.Hosts, x)
	}
	for _, s := range st.Balancer {
		d.Balancer = append(d.Balancer, statusServerJSON{Server: s.Server, Status: string(s.Status), Admin: string(s.Admin),
			Sessions: s.Sessions, Queued: s.Queued, CheckStatus: s.CheckStatus, Weight: s.Weight, Addr: s.Addr, Endpoint: s.Endpoint})
	}
	if r := st.Unfinished; r != nil && st.JournalErr == nil {
		u := &unfinishedJSON{Run: r.ID, Owner: r.Owner}
		if r.Plan != nil {
			u.Kind, u.From, u.To = string(r.Plan.Kind), r.Plan.From, r.Plan.To
		}
		if st.Alive != nil {
			u.Alive, u.Why = st.Alive.Alive, st.Alive.Why
		}
		d.Unfinished = u
	}
	return d
}

// lockDocJSON is relctl lock --json: the lock as read now. lock break
// --json writes the same shape with Broken set to the lock it broke.
type lockDocJSON struct {
	Schema int       `json:"schema"`
	Host   string    `json:"host"`
	Held   bool      `json:"held"`
	Lock   *lockJSON `json:"lock"`
	Broken bool      `json:"broken,omitempty"`
}

// historyJSON is one line of relctl history --json.
type historyJSON struct {
	V         int    `json:"v"`
	Time      string `json:"time"`
	Run       string `json:"run"`
	Owner     string `json:"owner"`
	Kind      string `json:"kind"`
	From      string `json:"from"`
	To        string `json:"to"`
	Host      string `json:"host"`
	Result    string `json:"result"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
	Ticket    string `json:"ticket,omitempty"`
	PrevRun   string `json:"prev_run,omitempty"`
	PrevOwner string `json:"prev_owner,omitempty"`
}

func historyDTO(r rollout.HistoryRecord) historyJSON {
	return historyJSON{V: HistoryFormat, Time: r.Time.UTC().Format(time.RFC3339Nano), Run: r.RunID, Owner: r.Owner, Kind: r.Kind,
		From: r.From, To: r.To, Host: r.Host, Result: r.Result, Outcome: r.Outcome, Reason: r.Reason, Ticket: r.Ticket, PrevRun: r.PrevRun, PrevOwner: r.PrevOwner}
}

// showLock prints the lock on host as read (info nil: free), or, after a
// break, the lock that was broken (nil: there was none).
func showLock(ios *IO, host string, info *rollout.LockInfo, broke bool, of outputFlags) error {
	if of.json {
		d := lockDocJSON{Schema: LockSchema, Host: host, Held: info != nil && !broke, Lock: lockDTO(info), Broken: broke && info != nil}
		return writeDoc(ios.Out, d)
	}
	switch {
	case broke && info == nil:
		fmt.Fprintln(ios.Out, "the fleet is not locked")
	case broke:
		fmt.Fprintf(ios.Out, "broke the lock %s (audited in .relctl/history.jsonl on %s)\n", info, host)
	case info == nil:
		fmt.Fprintf(ios.Out, "free (on %s)\n", host)
	default:
		fmt.Fprintf(ios.Out, "%s (on %s)\n", info, host)
	}
	return nil
}
