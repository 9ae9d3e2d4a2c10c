package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"time"

	"github.com/pkg/sftp"
	"github.com/relctl/relctl/internal/shell"
)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Upload copies localPath to remotePath on the host unless remotePath
// already holds exactly that content (skipped=true; checked on the host
// with sha256sum). Otherwise it creates the parent directories, writes
// remotePath+".part" over SFTP, renames it into place (posix-rename, else
// remove+rename), and checks the result with sha256sum -c on the host; on
// a mismatch the file is removed and an error returned. The local file is
// hashed first: if it does not match sha256hex nothing is uploaded.
// Relative remote paths are relative to the login directory.
func (c *Client) Upload(ctx context.Context, localPath, remotePath, sha256hex string) (skipped bool, err error) {
	if !sha256Hex.MatchString(sha256hex) {
		return false, fmt.Errorf("%s: upload %s: sha256 %q is not 64 lowercase hex digits", c.host, localPath, sha256hex)
	}
	if remotePath == "" || remotePath[len(remotePath)-1] == '/' {
		return false, fmt.Errorf("%s: upload %s: bad remote path %q", c.host, localPath, remotePath)
	}
	sumCheck := func(p string) string {
		return fmt.Sprintf("printf '%%s  %%s\\n' %s %s | sha256sum -c --status -", sha256hex, shell.Quote(p))
	}

	// 1. Already there?
	out, err := c.Output(ctx, fmt.Sprintf("command -v sha256sum >/dev/null 2>&1 || { echo no-sha256sum; exit 0; }; "+
		"if [ -f %s ] && %s 2>/dev/null; then echo same; else echo upload; fi",
		shell.Quote(remotePath), sumCheck(remotePath)))
	if err != nil {
		return false, fmt.Errorf("upload %s: checking existing file: %w", localPath, err)
	}
	switch lastLine(out) { // login scripts may print before us
	case "same":
		return true, nil
	case "upload":
	case "no-sha256sum":
		return false, fmt.Errorf("%s: upload %s: sha256sum is not installed on the host (coreutils)", c.host, localPath)
	default:
		return false, fmt.Errorf("%s: upload %s: unexpected answer checking %s: %q", c.host, localPath, remotePath, out)
	}

	// 2. Is the local file the one the caller means?
	f, err := os.Open(localPath)
	if err != nil {
		return false, fmt.Errorf("%s: upload: %w", c.host, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("%s: upload: reading %s: %w", c.host, localPath, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha256hex {
		return false, fmt.Errorf("%s: upload: local file %s has sha256 %s, want %s", c.host, localPath, got, sha256hex)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, fmt.Errorf("%s: upload: %w", c.host, err)
	}

	// 3. SFTP to .part, rename into place. One session slot, released
	// before the check below takes another.
	if err := c.sftpPut(ctx, f, localPath, remotePath); err != nil {
		return false, err
	}

	// 4. Check on the host.
	out, err = c.Output(ctx, fmt.Sprintf("if %s 2>/dev/null; then echo ok; else rm -f %s; echo mismatch; fi",
		sumCheck(remotePath), shell.Quote(remotePath)))
	if err != nil {
		return false, fmt.Errorf("upload %s: verifying: %w", localPath, err)
	}
	if lastLine(out) != "ok" {
		return false, fmt.Errorf("%s: upload %s: sha256 of %s on the host is not %s (removed it)", c.host, localPath, remotePath, sha256hex)
	}
	return false, nil
}

// sftpClient returns the connection's SFTP session, opening it on first
// use: one session serves every upload to the host (sessions are what
// the host charges for).
func (c *Client) sftpClient() (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	c.countSession() // the sftp subsystem is a session too
	sc, err := sftp.NewClient(c.conn, sftp.UseConcurrentWrites(true))
	if err != nil {
		return nil, err
	}
	c.sftp = sc
	return sc, nil
}

// dropSFTP closes sc and forgets it if it is still the connection's.
func (c *Client) dropSFTP(sc *sftp.Client) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp == sc {
		c.sftp = nil
	}
	sc.Close()
}

func (c *Client) sftpPut(ctx context.Context, f *os.File, localPath, remotePath string) (err error) {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	wrap := func(op string, e error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: upload %s: %s: %w", c.host, localPath, op, ctx.Err())
		}
		if !c.Alive() || c.waitDead(100*time.Millisecond) {
			return fmt.Errorf("upload %s: %s: %w", localPath, op, c.lost("sftp"))
		}
		return fmt.Errorf("%s: upload %s: %s: %w", c.host, localPath, op, e)
	}
	sc, err := c.sftpClient()
	if err != nil {
		return wrap("sftp", err)
	}
	// A cancelled upload closes the SFTP session (there is no other way
	// to stop a write in flight); the next upload opens a new one.
	stop := context.AfterFunc(ctx, func() { c.dropSFTP(sc) })
	defer func() {
		stop()
		if err != nil {
			// A refusal (no such directory, not a directory...) leaves the
			// session usable; anything else may have broken it.
			if _, werr := sc.Getwd(); werr != nil || ctx.Err() != nil {
				c.dropSFTP(sc)
			}
		}
	}()

	if dir := path.Dir(remotePath); dir != "." && dir != "/" {
		if err := sc.MkdirAll(dir); err != nil {
			return wrap("mkdir "+dir, err)
		}
	}
	part := remotePath + ".part"
	w, err := sc.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return wrap("create "+part, err)
	}
	if _, err := w.ReadFrom(f); err != nil {
		w.Close()
		return wrap("write "+part, err)
	}
	if err := w.Close(); err != nil {
		return wrap("write "+part, err)
	}
	if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
		if err := sc.PosixRename(part, remotePath); err != nil {
			return wrap("rename "+part, err)
		}
		return nil
	}
	if err := sc.Remove(remotePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return wrap("remove "+remotePath, err)
	}
	if err := sc.Rename(part, remotePath); err != nil {
		return wrap("rename "+part, err)
	}
	return nil
}
