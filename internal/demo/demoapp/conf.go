package demoapp

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// Keys understood in a release's app.conf. Unknown keys are ignored so that an older
// demoapp can run a newer release's file.
const (
	ConfFailHealth   = "fail_health"   // bool: /health always answers 503
	ConfStartDelay   = "start_delay"   // duration: /health answers 503 for this long after start
	ConfCrashAfter   = "crash_after"   // duration: serve exits abruptly (code 3) after this long
	ConfDrainGrace   = "drain_grace"   // duration: on SIGTERM, answer 503 on /health this long before closing the listener
	ConfFailMigrate  = "fail_migrate"  // bool: migrate exits 1
	ConfMigrateDelay = "migrate_delay" // duration: migrate sleeps this long before recording
	// ConfFailShare is a bad release that health checks cannot see: a
	// number 0..1, the share of requests other than /health and /version
	// answered 500 (every 1/share-th request, evenly).
	ConfFailShare = "fail_share"
)

// appConf holds the parsed app.conf of a release.
type appConf map[string]string

// readConf reads key=value lines from path; a missing file is an empty config.
func readConf(path string) (appConf, error) {
	c := appConf{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read app.conf: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want key=value, got %q", path, n, line)
		}
		c[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read app.conf: %w", err)
	}
	return c, nil
}

func (c appConf) bool(key string) (bool, error) {
	v, ok := c[key]
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("app.conf: %s: %w", key, err)
	}
	return b, nil
}

func (c appConf) share(key string) (float64, error) {
	v, ok := c[key]
	if !ok || v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return 0, fmt.Errorf("app.conf: %s: %q is not a share between 0 and 1", key, v)
	}
	return f, nil
}

func (c appConf) duration(key string) (time.Duration, error) {
	v, ok := c[key]
	if !ok || v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("app.conf: %s: %w", key, err)
	}
	return d, nil
}
