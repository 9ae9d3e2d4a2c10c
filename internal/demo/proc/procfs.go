package proc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// stat is what this package reads from /proc/<pid>/stat.
type stat struct {
	comm      string // the command name, without brackets
	state     byte   // R, S, D, Z, X, ...
	ppid      int
	startTime uint64 // clock ticks after boot: with the pid, names one process for good
}

// readStat parses /proc/<pid>/stat. The command name is bracketed and may
// hold spaces and brackets itself, so fields are counted after the last ')'.
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return stat{}, errors.New("proc: malformed stat of pid " + strconv.Itoa(pid))
	}
	f := bytes.Fields(b[end+1:])
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, errors.New("proc: short stat of pid " + strconv.Itoa(pid))
	}
	s := stat{comm: string(b[open+1 : end]), state: f[0][0]}
	s.ppid, _ = strconv.Atoi(string(f[1]))
	s.startTime, _ = strconv.ParseUint(string(f[19]), 10, 64)
	return s, nil
}

// Alive reports whether pid exists and is not a zombie (an exited process
// nobody reaped yet, common when a daemon's parent is an init that never
// waits).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	s, err := readStat(pid)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // no /proc: trust kill(0)
	}
	return s.state != 'Z' && s.state != 'X'
}

// Parent returns pid's parent pid, 0 when it cannot be read.
func Parent(pid int) int {
	s, err := readStat(pid)
	if err != nil {
		return 0
	}
	return s.ppid
}

// Descendants returns the pids below pid whose command name is comm (sshd's
// connection processes below its listener, say), read from /proc.
func Descendants(pid int, comm string) []int {
	all := table()
	var out []int
	for p, s := range all {
		if s.comm != comm {
			continue
		}
		for a, hops := s.ppid, 0; a > 1 && hops < 64; a, hops = all[a].ppid, hops+1 {
			if a == pid {
				out = append(out, p)
				break
			}
		}
	}
	sort.Ints(out)
	return out
}

// table reads the stat of every process.
func table() map[int]stat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	all := map[int]stat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil {
			all[pid] = s
		}
	}
	return all
}

// Matching returns the live processes (not zombies) whose command line
// contains needle, in pid order. This process and its ancestors are never
// listed, so a test whose own command line names a directory can ask.
func Matching(needle string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	skip := map[int]bool{}
	for p := os.Getpid(); p > 1 && !skip[p]; p = Parent(p) {
		skip[p] = true
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(needle)) {
			continue
		}
		if Alive(pid) {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}
