package lb

import (
	"fmt"
	"github.com/relctl/relctl/internal/shell"
	"strings"
	"text/template"
)

// cmdData is what command templates see. Every value is already
// shell-quoted, so `drain {{.Server}}` is safe for any server name.
type cmdData struct {
	Server, Backend, Address string
}

// cmdTemplate is a parsed command template with its inventory key.
type cmdTemplate struct {
	key string // "balancer.exec.drain"
	t   *template.Template
}

// parseCmd parses text as a command template and tries it once so that an
// unknown field ({{.Host}}) fails at load time, naming key.
func parseCmd(key, text string) (*cmdTemplate, error) {
	t, err := template.New(key).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	ct := &cmdTemplate{key: key, t: t}
	if _, err := ct.render("web1", "shop", "10.0.0.1"); err != nil {
		return nil, err
	}
	return ct, nil
}

func (c *cmdTemplate) render(server, backend, address string) (string, error) {
	var b strings.Builder
	data := cmdData{Server: shell.Quote(server), Backend: shell.Quote(backend), Address: shell.Quote(address)}
	if err := c.t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%s: %w", c.key, err)
	}
	return b.String(), nil
}

// addressOf is the {{.Address}} of server: Config.Addresses[server], or the
// server name itself.
func addressOf(cfg Config, server string) string {
	if a, ok := cfg.Addresses[server]; ok && a != "" {
		return a
	}
	return server
}

// outputErr adds a command's stdout (the Connector's error already holds
// the exit status and stderr) to err.
func outputErr(err error, stdout string) error {
	if s := strings.TrimSpace(stdout); s != "" {
		return fmt.Errorf("%w (stdout: %s)", err, firstLine(s))
	}
	return err
}
