package remote

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeRandom(t *testing.T, path string, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestUpload(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.client()
	ctx := testCtx(t)
	local := filepath.Join(t.TempDir(), "shop-1.4.0.tar.gz")
	sum := writeRandom(t, local, 3<<20+17)
	remote := filepath.Join(f.dir, "srv", "shop", "releases", ".upload", "shop-1.4.0.tar.gz")

	skipped, err := c.Upload(ctx, local, remote, sum)
	if err != nil || skipped {
		t.Fatalf("first upload: skipped=%v %v", skipped, err)
	}
	if readFile(t, remote) != readFile(t, local) {
		t.Fatal("content differs")
	}
	if _, err := os.Stat(remote + ".part"); !os.IsNotExist(err) {
		t.Fatalf(".part left behind: %v", err)
	}

	skipped, err = c.Upload(ctx, local, remote, sum)
	if err != nil || !skipped {
		t.Fatalf("second upload: skipped=%v %v", skipped, err)
	}

	// A different file at the destination is replaced.
	writeFile(t, remote, "stale")
	skipped, err = c.Upload(ctx, local, remote, sum)
	if err != nil || skipped || readFile(t, remote) != readFile(t, local) {
		t.Fatalf("replace: skipped=%v %v", skipped, err)
	}

	// The local file does not match the checksum the caller expects:
	// nothing is uploaded.
	other := filepath.Join(f.dir, "srv", "other.tar.gz")
	wrong := strings.Repeat("ab", 32)
	if _, err := c.Upload(ctx, local, other, wrong); err == nil || !strings.HasPrefix(err.Error(), "web1: ") || !strings.Contains(err.Error(), "want "+wrong) {
		t.Fatalf("wrong sha: %v", err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatal("uploaded despite a wrong checksum")
	}
	if _, err := c.Upload(ctx, local, other, "nothex"); err == nil {
		t.Fatal("bad sha accepted")
	}
}

func TestUploadRelativePathIsUnderLoginDir(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.client()
	local := filepath.Join(t.TempDir(), "a")
	sum := writeRandom(t, local, 1000)
	if _, err := c.Upload(testCtx(t), local, "rel/dir/a", sum); err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(f.dir, "rel/dir/a")) != readFile(t, local) {
		t.Fatal("content differs")
	}
}

func TestDialContextTCPAndUnix(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.client()

	echo := func(ln net.Listener) {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(conn, "echo: "+line); err != nil {
						return
					}
				}
			}()
		}
	}
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpLn.Close() })
	go echo(tcpLn)
	sock := filepath.Join(shortTempDir(t), "admin.sock")
	unixLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unixLn.Close() })
	go echo(unixLn)

	for _, tc := range []struct{ network, addr string }{{"tcp", tcpLn.Addr().String()}, {"unix", sock}} {
		ctx, cancel := context.WithCancel(testCtx(t))
		conn, err := c.DialContext(ctx, tc.network, tc.addr)
		if err != nil {
			t.Fatalf("%s: %v", tc.network, err)
		}
		r := bufio.NewReader(conn)
		if _, err := io.WriteString(conn, "show stat\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "echo: show stat\n" {
			t.Fatalf("%s: %q %v", tc.network, line, err)
		}
		// Cancelling the context closes the connection.
		cancel()
		readErr := make(chan error, 1)
		go func() { _, err := r.ReadString('\n'); readErr <- err }()
		select {
		case err := <-readErr:
			if err == nil {
				t.Fatalf("%s: read after cancel succeeded", tc.network)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: conn not closed on cancel", tc.network)
		}
		conn.Close()
	}

	if _, err := c.DialContext(testCtx(t), "unix", "/nonexistent/sock"); err == nil || !strings.HasPrefix(err.Error(), "web1: dial unix") {
		t.Fatalf("missing socket: %v", err)
	}
	if _, err := c.DialContext(testCtx(t), "udp", "x:1"); err == nil {
		t.Fatal("udp accepted")
	}
	if errors.Is(err, ErrConnectionLost) {
		t.Fatal("not a lost connection")
	}
}

// Uploads share one SFTP session. A refused operation (a status from the
// server) keeps it; a cancelled upload closes it, and the next upload
// opens a new one and succeeds.
func TestUploadSharesOneSFTPSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	p := f.pool(Options{OneSessionPerCommand: true}) // sessions: commands + SFTP, easy to count
	c, err := p.Get(testCtx(t), f.host("web1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	small := filepath.Join(t.TempDir(), "small")
	sum := writeRandom(t, small, 4096)
	// Each upload also runs two commands (check, verify), one session
	// each here.
	sessions := func() int { return p.Sessions("web1") }
	if _, err := c.Upload(ctx, small, filepath.Join(f.dir, "a", "small"), sum); err != nil {
		t.Fatal(err)
	}
	if n := sessions(); n != 3 { // check + SFTP + verify
		t.Fatalf("%d sessions", n)
	}
	// The parent "directory" is a file: the server refuses the mkdir.
	writeFile(t, filepath.Join(f.dir, "blocker"), "")
	if _, err := c.Upload(ctx, small, filepath.Join(f.dir, "blocker", "small"), sum); err == nil {
		t.Fatal("upload under a file succeeded")
	}
	if _, err := c.Upload(ctx, small, filepath.Join(f.dir, "b", "small"), sum); err != nil {
		t.Fatal(err)
	}
	if n := sessions(); n != 3+1+2 { // the refused upload's check; the next one's check and verify
		t.Fatalf("%d sessions: the SFTP session was not kept", n)
	}

	// Cancelled mid-write. 64 MiB (hashed on both sides) takes a while
	// under -race on a busy machine: a context of its own.
	ctx, cancelAll := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelAll()
	big := filepath.Join(t.TempDir(), "big")
	bigSum := writeRandom(t, big, 64<<20)
	dst := filepath.Join(f.dir, "c", "big")
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		eventually(10*time.Second, func() bool { st, err := os.Stat(dst + ".part"); return err == nil && st.Size() > 0 })
		cancel()
	}()
	if _, err := c.Upload(cctx, big, dst, bigSum); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	before := sessions()
	if _, err := c.Upload(ctx, big, dst, bigSum); err != nil {
		t.Fatal(err)
	}
	if n := sessions() - before; n != 3 { // check, a new SFTP session, verify
		t.Fatalf("%d sessions for the upload after a cancel", n)
	}
}
