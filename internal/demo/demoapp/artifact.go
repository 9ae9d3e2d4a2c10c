package demoapp

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ArtifactOptions describes one release artifact of the demo app.
type ArtifactOptions struct {
	Version string
	// AppBinary is the path of the demoapp (or relctl) binary to embed as bin/demoapp.
	AppBinary string
	// Wrapper, if set, makes bin/demoapp a tiny sh script that execs this command
	// prefix (absolute path first, then fixed args, e.g. "/usr/local/bin/relctl
	// demoapp") instead of embedding a binary. AppBinary is then ignored.
	Wrapper string
	// AppConf becomes the release's app.conf (see the Conf* keys).
	AppConf map[string]string
}

// artifactUnix is the fixed mtime of every entry (2020-01-01), so equal inputs give
// equal bytes.
const artifactUnix = 1577836800

var versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,127}$`)

// ArtifactName is the file name BuildArtifact writes for version.
func ArtifactName(version string) string { return "shop-" + version + ".tar.gz" }

// BuildArtifact writes dir/shop-<Version>.tar.gz holding VERSION, bin/demoapp (0755)
// and app.conf, and returns its path and sha256. The output is deterministic.
func BuildArtifact(dir string, o ArtifactOptions) (path, sha256hex string, err error) {
	if !versionRE.MatchString(o.Version) {
		return "", "", fmt.Errorf("build artifact: invalid version %q", o.Version)
	}
	var bin []byte
	switch {
	case o.Wrapper != "":
		bin, err = wrapperScript(o.Wrapper)
	case o.AppBinary != "":
		bin, err = os.ReadFile(o.AppBinary)
	default:
		err = fmt.Errorf("neither AppBinary nor Wrapper set")
	}
	if err != nil {
		return "", "", fmt.Errorf("build artifact %s: %w", o.Version, err)
	}
	var conf strings.Builder
	keys := make([]string, 0, len(o.AppConf))
	for k := range o.AppConf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.ContainsAny(k, "=\n") || strings.Contains(o.AppConf[k], "\n") {
			return "", "", fmt.Errorf("build artifact %s: invalid app.conf entry %q", o.Version, k)
		}
		fmt.Fprintf(&conf, "%s=%s\n", k, o.AppConf[k])
	}

	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	entries := []struct {
		name string
		mode int64
		typ  byte
		data []byte
	}{
		{"VERSION", 0o644, tar.TypeReg, []byte(o.Version + "\n")},
		{"app.conf", 0o644, tar.TypeReg, []byte(conf.String())},
		{"bin/", 0o755, tar.TypeDir, nil},
		{"bin/demoapp", 0o755, tar.TypeReg, bin},
	}
	for _, e := range entries {
		h := &tar.Header{
			Typeflag: e.typ, Name: e.name, Mode: e.mode, Size: int64(len(e.data)),
			ModTime: time.Unix(artifactUnix, 0).UTC(), Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(h); err != nil {
			return "", "", fmt.Errorf("build artifact %s: %w", o.Version, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return "", "", fmt.Errorf("build artifact %s: %w", o.Version, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", "", fmt.Errorf("build artifact %s: %w", o.Version, err)
	}
	if err := zw.Close(); err != nil {
		return "", "", fmt.Errorf("build artifact %s: %w", o.Version, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("build artifact %s: %w", o.Version, err)
	}
	path = filepath.Join(dir, ArtifactName(o.Version))
	tmp := path + ".part"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return "", "", fmt.Errorf("build artifact %s: %w", o.Version, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", "", fmt.Errorf("build artifact %s: %w", o.Version, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return path, hex.EncodeToString(sum[:]), nil
}

// wrapperScript returns a bin/demoapp that execs the words of prefix with the
// script's arguments, exporting its own path as $DEMOAPP_BIN.
func wrapperScript(prefix string) ([]byte, error) {
	words := strings.Fields(prefix)
	if len(words) == 0 || !filepath.IsAbs(words[0]) {
		return nil, fmt.Errorf("wrapper %q: want an absolute path first", prefix)
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	return []byte(fmt.Sprintf("#!/bin/sh\n%s=\"$0\"\nexport %s\nexec %s \"$@\"\n",
		EnvBin, EnvBin, strings.Join(quoted, " "))), nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// MigrationRecord is one line of the migrations log written by "migrate".
type MigrationRecord struct {
	Time    time.Time
	Phase   string // pre | post
	Version string
	Host    string
	Failed  bool
}

// ReadMigrations parses a migrations log. A missing file has no records.
func ReadMigrations(path string) ([]MigrationRecord, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read migrations log: %w", err)
	}
	var out []MigrationRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("%s:%d: malformed line %q", path, n, sc.Text())
		}
		t, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, MigrationRecord{Time: t, Phase: f[1], Version: f[2], Host: f[3], Failed: len(f) > 4 && f[4] == "failed"})
	}
	return out, sc.Err()
}

// Unpack extracts an artifact made by BuildArtifact (regular files and directories
// only) into dir, which it creates.
func Unpack(artifact, dir string) error {
	f, err := os.Open(artifact)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", artifact, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", artifact, err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("unpack %s: unsafe path %q", artifact, h.Name)
		}
		dst := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(h.Mode).Perm())
			if err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("unpack %s: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("unpack %s: unsupported entry %q", artifact, h.Name)
		}
	}
}
