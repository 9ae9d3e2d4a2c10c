package sshserver

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestWriteKeyPair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	for round := 0; round < 2; round++ { // the second replaces the first
		pub, err := WriteKeyPair(path, "me@here")
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("private key: %v, mode %v, want 0600", err, st.Mode().Perm())
		}
		pem, _ := os.ReadFile(path)
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
			t.Fatal("the private key does not match the returned public key")
		}
		line, _ := os.ReadFile(path + ".pub")
		k, comment, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil || comment != "me@here" || !bytes.Equal(k.Marshal(), pub.Marshal()) {
			t.Fatalf(".pub %q: %v, comment %q", line, err, comment)
		}
	}
	if _, err := WriteKeyPair(filepath.Join(t.TempDir(), "no", "such", "dir"), "x"); err == nil {
		t.Fatal("WriteKeyPair into a missing directory succeeded")
	}
}

func TestKnownHostsLine(t *testing.T) {
	s, err := NewEd25519Signer()
	if err != nil {
		t.Fatal(err)
	}
	k := s.PublicKey()
	for addr, host := range map[string]string{"127.0.0.1:2222": "[127.0.0.1]:2222", "127.0.0.1:22": "127.0.0.1", "web1": "web1"} {
		line := KnownHostsLine(addr, k)
		_, hosts, got, _, _, err := ssh.ParseKnownHosts([]byte(line))
		if err != nil || len(hosts) != 1 || hosts[0] != host || !bytes.Equal(got.Marshal(), k.Marshal()) {
			t.Errorf("KnownHostsLine(%q) = %q: hosts %v, %v", addr, line, hosts, err)
		}
		if !strings.HasSuffix(line, "\n") {
			t.Errorf("KnownHostsLine(%q) = %q: no newline", addr, line)
		}
	}
}
