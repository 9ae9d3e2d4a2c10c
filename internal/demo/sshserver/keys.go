package sshserver

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"

	"golang.org/x/crypto/ssh"
)

// NewEd25519Signer returns a fresh ed25519 key, for host or user keys.
func NewEd25519Signer() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// NewECDSASigner returns a fresh ECDSA P-256 key.
func NewECDSASigner() (ssh.Signer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// NewRSASigner returns a fresh 2048-bit RSA key (slow to generate: tests
// should make one and share it).
func NewRSASigner() (ssh.Signer, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}
