package demoapp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// CheckTimeout bounds one "check" (both requests together).
const CheckTimeout = 2 * time.Second

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	url := fs.String("url", "", "base URL of the app (http://host:port)")
	version := fs.String("version", "", "also require GET /version to equal this")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if !required(fs, stderr, "url", *url) {
		return ExitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), CheckTimeout)
	defer cancel()
	got, err := Check(ctx, *url, *version)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintf(stdout, "healthy: shop %s\n", got)
	return ExitOK
}

// Check returns the running version when base/health answers 200 and, if want is
// set, base/version equals want; otherwise it says why not.
func Check(ctx context.Context, base, want string) (string, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimRight(base, "/")
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	status, body, err := Get(ctx, c, base+"/health")
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET /health: %d %s", status, body)
	}
	status, got, err := Get(ctx, c, base+"/version")
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET /version: %d %s", status, got)
	}
	if want != "" && got != want {
		return got, fmt.Errorf("running version %s, want %s", got, want)
	}
	return got, nil
}

// Get fetches url with c and returns the status and the body (at most
// 4 KiB, trimmed): how check reads the app, and how the tests read the apps
// and the backends behind a balancer.
func Get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", url, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
