package lb

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
)

// srv_admin_state bits from HAProxy's include/haproxy/server-t.h.
const (
	adminForcedMaint    = 0x01 // SRV_ADMF_FMAINT: "set server ... state maint"
	adminInheritedMaint = 0x02 // SRV_ADMF_IMAINT: tracked server in maint
	adminConfigMaint    = 0x04 // SRV_ADMF_CMAINT: "disabled" in the config
	adminForcedDrain    = 0x08 // SRV_ADMF_FDRAIN: "set server ... state drain"
	adminInheritedDrain = 0x10 // SRV_ADMF_IDRAIN
	adminResolverMaint  = 0x20 // SRV_ADMF_RMAINT: DNS resolution failed
	adminHostnameMaint  = 0x40 // SRV_ADMF_HMAINT
	adminMaintMask      = adminForcedMaint | adminInheritedMaint | adminConfigMaint | adminResolverMaint | adminHostnameMaint
	adminDrainMask      = adminForcedDrain | adminInheritedDrain
)

// srv_check_state bits (include/haproxy/check-t.h).
const (
	checkConfigured = 0x02
	checkEnabled    = 0x04
)

// serverAdmin is one row of `show servers state <backend>`.
type serverAdmin struct {
	Backend    string
	Server     string
	Addr       string
	OpState    int // 0 stopped, 1 starting, 2 running, 3 stopping
	AdminState int // bit set, see admin* constants
	CheckState int // bit set, see check* constants
	UWeight    int
}

// AdminStatus is MAINT, DRAIN or UP (= ready) from the admin bits alone.
func (a serverAdmin) AdminStatus() Status {
	switch {
	case a.AdminState&adminMaintMask != 0:
		return StatusMaint
	case a.AdminState&adminDrainMask != 0:
		return StatusDrain
	}
	return StatusUp
}

// HasCheck reports whether a health check is configured and enabled.
func (a serverAdmin) HasCheck() bool {
	return a.CheckState&(checkConfigured|checkEnabled) == checkConfigured|checkEnabled
}

// showStatTable opens the CSV of `show stat`: a reader past its
// `# pxname,svname,...` header, and each column's index by its name.
func showStatTable(reply string) (*csv.Reader, map[string]int, error) {
	text := strings.TrimLeft(reply, "\r\n")
	if !strings.HasPrefix(text, "# ") {
		if msg := firstLine(reply); strings.Contains(msg, "No such proxy") {
			return nil, nil, fmt.Errorf("show stat: %s: %w", msg, ErrUnknownBackend)
		}
		return nil, nil, fmt.Errorf("show stat: unexpected reply %q", firstLine(reply))
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(text, "# ")))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("show stat: header: %w", err)
	}
	col := map[string]int{}
	for i, name := range header {
		col[strings.TrimSpace(name)] = i
	}
	return r, col, nil
}

// parseShowStat parses the CSV of `show stat` and returns the server rows of
// backend (FRONTEND/BACKEND aggregate rows are skipped). Columns are found by
// the names in the `# pxname,svname,...` header, so column order and extra
// columns of other HAProxy versions do not matter.
func parseShowStat(reply, backend string) ([]ServerState, error) {
	r, col, err := showStatTable(reply)
	if err != nil {
		return nil, err
	}
	for _, need := range []string{"pxname", "svname", "scur", "status"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("show stat: header has no %q column", need)
		}
	}
	get := func(rec []string, name string) string {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return ""
		}
		return rec[i]
	}
	atoi := func(s string) int {
		n, _ := strconv.Atoi(strings.TrimSpace(s))
		return n
	}
	var out []ServerState
	for {
		rec, err := r.Read()
		if err != nil {
			break // io.EOF, or the blank line that ends the reply
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		px, sv := get(rec, "pxname"), get(rec, "svname")
		if px != backend || sv == "FRONTEND" || sv == "BACKEND" {
			continue
		}
		out = append(out, ServerState{
			Server:      sv,
			Status:      parseStatus(get(rec, "status")),
			Sessions:    atoi(get(rec, "scur")),
			Queued:      atoi(get(rec, "qcur")),
			CheckStatus: strings.TrimPrefix(get(rec, "check_status"), "* "),
			Weight:      atoi(get(rec, "weight")),
			Addr:        get(rec, "addr"),
		})
	}
	return out, nil
}

// parseServersState parses `show servers state [<backend>]`: a format
// version line, a `# be_id be_name ...` header, then space-separated rows.
func parseServersState(reply string) ([]serverAdmin, error) {
	lines := strings.Split(strings.TrimLeft(reply, "\r\n"), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "1" || !strings.HasPrefix(lines[1], "# ") {
		msg := firstLine(reply)
		if strings.Contains(msg, "Can't find backend") || strings.Contains(msg, "No such proxy") {
			return nil, fmt.Errorf("show servers state: %s: %w", msg, ErrUnknownBackend)
		}
		return nil, fmt.Errorf("show servers state: unexpected reply %q", msg)
	}
	col := map[string]int{}
	for i, name := range strings.Fields(strings.TrimPrefix(lines[1], "# ")) {
		col[name] = i
	}
	for _, need := range []string{"be_name", "srv_name", "srv_admin_state"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("show servers state: header has no %q column", need)
		}
	}
	var out []serverAdmin
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		get := func(name string) string {
			i, ok := col[name]
			if !ok || i >= len(f) {
				return ""
			}
			return f[i]
		}
		num := func(name string) (int, error) {
			s := get(name)
			if s == "" {
				return 0, nil
			}
			n, err := strconv.Atoi(s)
			if err != nil {
				return 0, fmt.Errorf("show servers state: %s of %s/%s: %q is not a number", name, get("be_name"), get("srv_name"), s)
			}
			return n, nil
		}
		a := serverAdmin{Backend: get("be_name"), Server: get("srv_name"), Addr: get("srv_addr")}
		var err error
		if a.OpState, err = num("srv_op_state"); err != nil {
			return nil, err
		}
		if a.AdminState, err = num("srv_admin_state"); err != nil {
			return nil, err
		}
		if a.CheckState, err = num("srv_check_state"); err != nil {
			return nil, err
		}
		if a.UWeight, err = num("srv_uweight"); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// parseSetReply checks the reply to `set server ...`: HAProxy answers an
// empty line on success and a sentence on failure.
func parseSetReply(reply string) error {
	msg := strings.TrimSpace(reply)
	switch {
	case msg == "":
		return nil
	case strings.Contains(msg, "No such server"):
		return fmt.Errorf("%s: %w", msg, ErrUnknownServer)
	case strings.Contains(msg, "No such backend"):
		return fmt.Errorf("%s: %w", msg, ErrUnknownBackend)
	case strings.Contains(msg, "Permission denied"):
		return fmt.Errorf("%s (the admin socket needs `level admin`)", msg)
	}
	return fmt.Errorf("haproxy answered %q", firstLine(msg))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func findState(rows []ServerState, server string) (ServerState, bool) {
	for _, r := range rows {
		if r.Server == server {
			return r, true
		}
	}
	return ServerState{}, false
}

func findAdmin(rows []serverAdmin, backend, server string) (serverAdmin, bool) {
	for _, r := range rows {
		if r.Backend == backend && r.Server == server {
			return r, true
		}
	}
	return serverAdmin{}, false
}

// validName reports whether s is safe to put in a HAProxy command: HAProxy
// proxy and server names use letters, digits and ".-_:"; anything else
// (spaces, ';', newlines) could inject another command.
func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' || r == ':') {
			return false
		}
	}
	return true
}
