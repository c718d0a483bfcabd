package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/server"
)

// loginFile is where `slipway login` keeps server URLs and their tokens (0600):
// SLIPWAY_LOGIN_FILE, else <user config dir>/slipway/login.json.
func loginFile() (string, error) {
	if f := os.Getenv("SLIPWAY_LOGIN_FILE"); f != "" {
		return f, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config dir for the login file: %w", err)
	}
	return filepath.Join(dir, "slipway", "login.json"), nil
}

// logins is the login file's content.
type logins struct {
	// Server is the default server of commands given no --server.
	Server string            `json:"server,omitempty"`
	Tokens map[string]string `json:"tokens,omitempty"`
}

func readLogins() (*logins, string, error) {
	path, err := loginFile()
	if err != nil {
		return nil, "", err
	}
	l := &logins{Tokens: map[string]string{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("reading the login file: %w", err)
	}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, path, fmt.Errorf("reading the login file %s: %w", path, err)
	}
	if l.Tokens == nil {
		l.Tokens = map[string]string{}
	}
	return l, path, nil
}

func (l *logins) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing the login file: %w", err)
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	// 0600 from the first byte: the token never exists with wider permissions.
	return atomicfile.WriteFile(path, b, 0o600)
}

// remoteTarget returns the server URL and token a command should use, or "" for the local socket:
// --server / SLIPWAY_SERVER, else the login file's default; the token from SLIPWAY_TOKEN, else the login file.
func (g *globals) remoteTarget() (string, string, error) {
	url := strings.TrimRight(g.server, "/")
	l, _, err := readLogins()
	if err != nil {
		return "", "", err
	}
	if url == "" {
		url = l.Server
	}
	if url == "" {
		return "", "", nil
	}
	token := os.Getenv("SLIPWAY_TOKEN")
	if token == "" {
		token = l.Tokens[url]
	}
	return url, token, nil
}

// client returns the API client of the server this command talks to: remote
// (--server, SLIPWAY_SERVER, slipway login) or the local socket of the state
// dir. cfg may be nil; it is loaded when the local state dir must be found.
func (g *globals) client(cfg *config.Config) (*server.Client, error) {
	url, token, err := g.remoteTarget()
	if err != nil {
		return nil, err
	}
	if url != "" {
		if token == "" {
			return nil, usagef("--server %s: no token: set SLIPWAY_TOKEN or run slipway login %s", url, url)
		}
		c, err := server.NewRemoteClient(url, token)
		if err != nil {
			return nil, &usageError{err}
		}
		return c, nil
	}
	if g.data == "" && cfg == nil {
		if cfg, err = g.load(); err != nil {
			return nil, fmt.Errorf("%w (or pass --state-dir, or --server for a remote serve)", err)
		}
	}
	return server.NewClient(g.dataDir(cfg)), nil
}

// remote reports whether commands go to a remote server.
func (g *globals) remote() bool {
	url, _, err := g.remoteTarget()
	return err == nil && url != ""
}
