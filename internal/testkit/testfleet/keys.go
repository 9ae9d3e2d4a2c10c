package testfleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"

	"golang.org/x/crypto/ssh"
)

// writeKeyPair writes an unencrypted OpenSSH ed25519 private key (0600) to path
// and its public key to path.pub, and returns the public key.
func writeKeyPair(path, comment string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	// Replace atomically so a running sshd never reads half a key.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := fmt.Sprintf("%s %s\n", sshPub.Type(), encode(sshPub, comment))
	if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
		return nil, err
	}
	return sshPub, nil
}

// encode returns the base64 part of an authorized_keys line (plus comment).
func encode(k ssh.PublicKey, comment string) string {
	s := string(ssh.MarshalAuthorizedKey(k)) // "type base64\n"
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			s = s[i+1:]
			break
		}
	}
	if n := len(s); n > 0 && s[n-1] == '\n' {
		s = s[:n-1]
	}
	if comment != "" {
		s += " " + comment
	}
	return s
}

// knownHostsLine is the known_hosts entry for a host key at ip:port.
func knownHostsLine(ip string, port int, k ssh.PublicKey) string {
	host := ip
	if port != 22 {
		host = fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s %s %s\n", host, k.Type(), encode(k, ""))
}
