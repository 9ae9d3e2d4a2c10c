package testfleet

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relctl/relctl/internal/demo/proc"
	"github.com/relctl/relctl/internal/demo/sshserver"
	"golang.org/x/crypto/ssh"
)

// sshdConfig is the configuration of one host's sshd.
func sshdConfig(h Host, dir, authKeys string) string {
	return strings.Join([]string{
		"# written by relctl's testfleet",
		"ListenAddress " + h.SSHAddr,
		"HostKey " + h.HostKeyFile,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authKeys,
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"MaxStartups 100",
		"Subsystem sftp internal-sftp",
		"LogLevel INFO",
		"",
	}, "\n")
}

func (f *Fleet) startSSHD(i int) error {
	h := f.Hosts[i]
	dir := f.hostDir(i)
	p, err := proc.Start(proc.Spec{Name: "sshd " + h.Name, Log: filepath.Join(dir, "sshd.log"),
		Argv: []string{SSHDPath, "-D", "-e", "-f", filepath.Join(dir, "sshd_config")}})
	if err != nil {
		return err
	}
	if err := proc.WaitListening(context.Background(), p, 10*time.Second, "SSH-2.0-", h.SSHAddr); err != nil {
		_ = p.Stop(time.Second)
		return err
	}
	f.mu.Lock()
	f.sshd[i] = p
	f.mu.Unlock()
	return nil
}

// StopSSHD takes host i off the network for SSH: its sshd stops listening and its
// existing SSH connections are cut (their sshd processes are killed), as if the host
// became unreachable. The app keeps running.
func (f *Fleet) StopSSHD(i int) {
	f.t.Helper()
	f.mu.Lock()
	p := f.sshd[i]
	f.sshd[i] = nil
	f.mu.Unlock()
	if p == nil || p.Exited() {
		return
	}
	conns := proc.Descendants(p.PID(), "sshd")
	_ = p.Stop(5 * time.Second)
	for _, pid := range conns {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// StartSSHD starts host i's sshd again (after StopSSHD or RotateHostKey).
func (f *Fleet) StartSSHD(i int) {
	f.t.Helper()
	f.mu.Lock()
	running := f.sshd[i] != nil && !f.sshd[i].Exited()
	f.mu.Unlock()
	if running {
		return
	}
	if err := f.startSSHD(i); err != nil {
		f.t.Fatalf("testfleet: %v", err)
	}
}

// RotateHostKey gives host i a new host key and restarts its sshd, leaving
// KnownHostsFile as it was: clients that verify host keys must now refuse the host.
// WriteKnownHosts trusts the new key.
func (f *Fleet) RotateHostKey(i int) {
	f.t.Helper()
	f.StopSSHD(i)
	if _, err := sshserver.WriteKeyPair(f.Hosts[i].HostKeyFile, "root@"+f.Hosts[i].Name); err != nil {
		f.t.Fatalf("testfleet: rotate host key: %v", err)
	}
	f.StartSSHD(i)
}

// WriteKnownHosts (re)writes KnownHostsFile with every host's current key.
func (f *Fleet) WriteKnownHosts() error {
	var b strings.Builder
	for _, h := range f.Hosts {
		pubBytes, err := os.ReadFile(h.HostKeyFile + ".pub")
		if err != nil {
			return err
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(pubBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", h.HostKeyFile, err)
		}
		b.WriteString(sshserver.KnownHostsLine(net.JoinHostPort(h.IP, strconv.Itoa(f.SSHPort)), k))
	}
	return os.WriteFile(f.KnownHostsFile, []byte(b.String()), 0o644)
}

// SSHArgs returns the arguments for the real OpenSSH client to run a command on
// host i as the fleet user with strict host key checking:
// exec.Command("ssh", append(f.SSHArgs(0), "cat", "/x")...).
func (f *Fleet) SSHArgs(i int) []string {
	h := f.Hosts[i]
	return []string{
		"-i", f.IdentityFile,
		"-o", "UserKnownHostsFile=" + f.KnownHostsFile,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=5",
		"-F", "/dev/null",
		"-p", fmt.Sprint(f.SSHPort),
		f.User + "@" + h.IP,
	}
}
