package sshserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// WriteKeyPair writes a fresh unencrypted OpenSSH ed25519 private key (0600)
// to path and its public key ("type base64 comment") to path.pub, and
// returns the public key. The private key is replaced atomically, so a
// running sshd never reads half a key.
func WriteKeyPair(path, comment string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // a leftover tmp file keeps its mode
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment + "\n"
	if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
		return nil, err
	}
	return sshPub, nil
}

// KnownHostsLine is the known_hosts entry for key at addr: "[host]:port"
// unless the port is 22.
func KnownHostsLine(addr string, key ssh.PublicKey) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && port != "22" {
		host = "[" + host + "]:" + port
	} else if err != nil {
		host = addr
	}
	return host + " " + string(ssh.MarshalAuthorizedKey(key))
}
