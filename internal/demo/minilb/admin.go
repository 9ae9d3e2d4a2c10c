package minilb

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// statColumns is the `show stat` header of HAProxy 2.6, so that anything
// parsing HAProxy's CSV by column name parses ours. Unknown columns are empty.
const statColumns = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out"

// serversStateHeader is HAProxy 2.6's `show servers state` header.
const serversStateHeader = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"

const (
	frontendName = "fe"
	frontendID   = 2
	backendID    = 3
)

const helpText = `The following commands are valid at this level:
  help                                    : full commands list
  quit                                    : disconnect
  show info                               : report information about the running process
  show servers state [<backend>]          : dump volatile server information (all or for a single backend)
  show stat [<iid|proxy> <type> <sid>]    : report counters for each proxy and server
  set server <bk>/<srv> state <st>        : ready, drain or maint
  set server <bk>/<srv> weight <w>        : change a server's weight (0..256)
`

func (l *LB) serveAdmin() {
	for {
		conn, err := l.admin.Accept()
		if err != nil {
			select {
			case <-l.stop:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.handleAdmin(conn) }()
	}
}

// handleAdmin answers one line of commands (separated by ';'), each reply
// followed by an empty line (a successful `set` is just that line), then
// closes: HAProxy's non-interactive mode.
func (l *LB) handleAdmin(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(conn, 64<<10).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	var out strings.Builder
	for _, cmd := range strings.Split(strings.TrimRight(line, "\r\n"), ";") {
		reply := l.Command(cmd)
		out.WriteString(reply)
		if reply != "" && !strings.HasSuffix(reply, "\n") {
			out.WriteString("\n")
		}
		out.WriteString("\n")
	}
	conn.Write([]byte(out.String()))
}

// Command runs one runtime API command and returns its reply (without the
// blank line that ends it on the socket). Exported for tests and the demo.
func (l *LB) Command(cmd string) string {
	f := strings.Fields(cmd)
	switch {
	case len(f) == 0:
		return ""
	case len(f) == 1 && f[0] == "help":
		return helpText
	case len(f) == 1 && f[0] == "quit":
		return ""
	case len(f) == 2 && f[0] == "show" && f[1] == "info":
		return fmt.Sprintf("Name: minilb\nVersion: relctl sandbox\nUptime_sec: %d\n", int(time.Since(l.started).Seconds()))
	case len(f) >= 2 && f[0] == "show" && f[1] == "stat":
		return l.showStat(f[2:])
	case len(f) >= 3 && f[0] == "show" && f[1] == "servers" && f[2] == "state":
		return l.showServersState(f[3:])
	case len(f) >= 2 && f[0] == "set" && f[1] == "server":
		return l.setServer(f[2:])
	}
	return "Unknown command, but maybe one of the following ones is a better match:\n" + strings.TrimPrefix(helpText, "The following commands are valid at this level:\n")
}

func (l *LB) showStat(args []string) string {
	proxy, typ, sid := "-1", -1, -1
	var filter []string
	for _, a := range args {
		switch a {
		case "typed", "json":
			return "minilb: only the CSV output of show stat is supported.\n"
		case "desc", "up", "no-maint":
		default:
			filter = append(filter, a)
		}
	}
	if len(filter) != 0 {
		if len(filter) != 3 {
			return "Usage: show stat [<iid|proxy> <type> <sid>]\n"
		}
		proxy = filter[0]
		var err1, err2 error
		typ, err1 = strconv.Atoi(filter[1])
		sid, err2 = strconv.Atoi(filter[2])
		if err1 != nil || err2 != nil {
			return "Usage: show stat [<iid|proxy> <type> <sid>]\n"
		}
	}
	wantFront, wantBack := true, true
	switch proxy {
	case "-1":
	case frontendName, strconv.Itoa(frontendID):
		wantBack = false
	case l.cfg.Backend, strconv.Itoa(backendID):
		wantFront = false
	default:
		return "No such proxy.\n"
	}
	showType := func(bit int) bool { return typ == -1 || typ&bit != 0 }

	cols := strings.Split(statColumns, ",")
	index := make(map[string]int, len(cols))
	for i, c := range cols {
		index[c] = i
	}
	var b strings.Builder
	b.WriteString("# " + statColumns + ",\n")
	row := func(vals map[string]string) {
		rec := make([]string, len(cols))
		for k, v := range vals {
			rec[index[k]] = v
		}
		b.WriteString(strings.Join(rec, ",") + ",\n")
	}
	itoa := strconv.Itoa
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }

	if wantFront && showType(1) {
		row(map[string]string{"pxname": frontendName, "svname": "FRONTEND", "scur": i64(l.feCur.Load()),
			"stot": i64(l.feTot.Load()), "status": "OPEN", "pid": "1", "iid": itoa(frontendID), "sid": "0",
			"type": "0", "mode": "http", "req_tot": i64(l.feTot.Load())})
	}
	if !wantBack {
		return b.String()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var (
		scur, stot       int64
		weight, act      int
		anyUp            bool
		lastBackendState = l.started
	)
	for _, s := range l.servers {
		scur += s.scur.Load()
		stot += s.stot.Load()
		eligible := s.up && s.admin == adminReady && s.weight > 0
		if eligible {
			weight += s.weight
			act++
			anyUp = true
		}
		if s.lastChange.After(lastBackendState) {
			lastBackendState = s.lastChange
		}
		if !showType(4) || (sid != -1 && sid != s.id) {
			continue
		}
		checkCode, checkDur := "", ""
		if s.checkStatus != "" {
			checkDur = i64(s.checkDur.Milliseconds())
			if s.checkCode != 0 {
				checkCode = itoa(s.checkCode)
			}
		}
		row(map[string]string{
			"pxname": l.cfg.Backend, "svname": s.name, "qcur": "0", "qmax": "0",
			"scur": i64(s.scur.Load()), "smax": i64(s.smax.Load()), "stot": i64(s.stot.Load()),
			"eresp": i64(s.eresp.Load()), "econ": i64(s.econ.Load()), "status": s.status(),
			"hrsp_1xx": i64(s.hrsp[0].Load()), "hrsp_2xx": i64(s.hrsp[1].Load()), "hrsp_3xx": i64(s.hrsp[2].Load()),
			"hrsp_4xx": i64(s.hrsp[3].Load()), "hrsp_5xx": i64(s.hrsp[4].Load()), "hrsp_other": i64(s.hrsp[5].Load()),
			"rtime": i64(s.rtime()), "weight": itoa(s.weight),
			"act": "1", "bck": "0", "chkfail": itoa(s.chkFail), "chkdown": itoa(s.chkDown),
			"lastchg": itoa(int(time.Since(s.lastChange).Seconds())), "pid": "1", "iid": itoa(backendID),
			"sid": itoa(s.id), "lbtot": i64(s.lbtot.Load()), "type": "2",
			"check_status": s.checkStatus, "check_code": checkCode, "check_duration": checkDur,
			"check_desc": s.checkDesc, "check_rise": itoa(l.cfg.Rise), "check_fall": itoa(l.cfg.Fall),
			"addr": s.addr, "mode": "http", "uweight": itoa(s.weight),
		})
	}
	if showType(2) {
		status := "DOWN"
		if anyUp {
			status = "UP"
		}
		row(map[string]string{"pxname": l.cfg.Backend, "svname": "BACKEND", "qcur": "0", "scur": i64(scur),
			"stot": i64(stot), "status": status, "weight": itoa(weight), "act": itoa(act), "bck": "0",
			"lastchg": itoa(int(time.Since(lastBackendState).Seconds())), "pid": "1", "iid": itoa(backendID),
			"sid": "0", "type": "1", "mode": "http", "algo": "roundrobin"})
	}
	return b.String()
}

// hchkStatus maps check results to HAProxy's enum values as seen in 2.6's
// `show servers state`.
var hchkStatus = map[string]int{"": 0, "L4TOUT": 7, "L4CON": 8, "L7OK": 15, "L7STS": 17}

func (l *LB) showServersState(args []string) string {
	if len(args) > 1 {
		return "Usage: show servers state [<backend>]\n"
	}
	if len(args) == 1 && args[0] != l.cfg.Backend && args[0] != strconv.Itoa(backendID) {
		return "Can't find backend.\n"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	b.WriteString("1\n" + serversStateHeader + "\n")
	for _, s := range l.servers {
		host, port, _ := net.SplitHostPort(s.addr)
		op := 0
		if s.up {
			op = 2
		}
		admin := 0
		switch s.admin {
		case adminDrain:
			admin = 0x08
		case adminMaint:
			admin = 0x01
		}
		checkState := 0x02 | 0x04 // configured, enabled
		if s.admin == adminMaint {
			checkState |= 0x08 // paused
		}
		result, health := 2, 0 // CHK_RES_FAILED
		if s.checkStatus == "L7OK" {
			result = 3 // CHK_RES_PASSED
		}
		if s.up {
			health = l.cfg.Rise + l.cfg.Fall - 1
		}
		fmt.Fprintf(&b, "%d %s %d %s %s %d %d %d %d %d %d %d %d %d 0 0 0 - %s - 0 0 - - 0\n",
			backendID, l.cfg.Backend, s.id, s.name, host, op, admin, s.weight, 1,
			int(time.Since(s.lastChange).Seconds()), hchkStatus[s.checkStatus], result, health, checkState, port)
	}
	return b.String()
}

func (l *LB) setServer(args []string) string {
	if len(args) < 1 {
		return "Require 'backend/server'.\n"
	}
	be, name, ok := strings.Cut(args[0], "/")
	if !ok {
		return "Require 'backend/server'.\n"
	}
	if be != l.cfg.Backend && be != strconv.Itoa(backendID) {
		return "No such backend.\n"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.find(name)
	if s == nil {
		return "No such server.\n"
	}
	if len(args) < 2 {
		return "'set server <srv>' only supports 'state' and 'weight' here.\n"
	}
	switch args[1] {
	case "state":
		if len(args) != 3 {
			return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n"
		}
		switch args[2] {
		case "ready":
			l.setAdmin(s, adminReady)
		case "drain":
			l.setAdmin(s, adminDrain)
		case "maint":
			l.setAdmin(s, adminMaint)
		default:
			return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n"
		}
		return ""
	case "weight":
		if len(args) != 3 {
			return "Require <weight>.\n"
		}
		w, err := strconv.Atoi(args[2])
		if err != nil || w < 0 || w > 256 {
			return "Weight must be an integer between 0 and 256 (minilb has no relative weights).\n"
		}
		s.weight = w
		return ""
	}
	return "'set server <srv>' only supports 'state' and 'weight' here.\n"
}
