package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-dev/slipway/internal/server"
)

// serveAPI starts a real server with --api on loopback and returns its URL.
func serveAPI(t *testing.T, dataDir string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, server.Options{DataDir: dataDir, HTTPAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Log: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.Serve(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s.APIURL()
}

// TestTokenLoginAndRemoteCommands: token create over the socket, then status,
// releases and audit over --server with SLIPWAY_TOKEN and with slipway login.
func TestTokenLoginAndRemoteCommands(t *testing.T) {
	data := t.TempDir()
	url := serveAPI(t, data)
	t.Setenv("SLIPWAY_LOGIN_FILE", filepath.Join(t.TempDir(), "cfg", "login.json"))
	t.Setenv("SLIPWAY_TOKEN", "")
	code, tok, stderr := run(t, "token", "create", "--state-dir", data, "--name", "ci", "--scope", "read")
	tok = strings.TrimSpace(tok)
	if code != 0 || !strings.HasPrefix(tok, "slw_") || !strings.Contains(stderr, "shown only now") {
		t.Fatalf("token create: %d %q %s", code, tok, stderr)
	}
	if code, _, stderr := run(t, "token", "create", "--state-dir", data, "--name", "x", "--scope", "root"); code != ExitUsage || !strings.Contains(stderr, "--scope") {
		t.Fatalf("bad scope: %d %s", code, stderr)
	}
	if code, _, stderr := run(t, "status", "--server", url); code != ExitUsage || !strings.Contains(stderr, "SLIPWAY_TOKEN") {
		t.Fatalf("no token: %d %s", code, stderr)
	}
	t.Setenv("SLIPWAY_TOKEN", tok)
	t.Setenv("SLIPWAY_SERVER", url)
	if code, out, stderr := run(t, "status"); code != 0 || !strings.Contains(out, "router http://") {
		t.Fatalf("remote status: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := run(t, "token", "list"); code != ExitFailed || !strings.Contains(stderr, "403") {
		t.Fatalf("read token lists tokens: %d %s", code, stderr)
	}
	// login keeps the URL and token in a 0600 file; later commands need neither.
	t.Setenv("SLIPWAY_SERVER", "")
	if code, out, stderr := run(t, "login", url); code != 0 || !strings.Contains(out, "as ci (scope read") {
		t.Fatalf("login: %d %s %s", code, out, stderr)
	}
	t.Setenv("SLIPWAY_TOKEN", "")
	fi, err := os.Stat(os.Getenv("SLIPWAY_LOGIN_FILE"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("login file: %v %v", fi.Mode(), err)
	}
	if code, out, stderr := run(t, "releases", "--store-id", "us"); code != 0 || !strings.Contains(out, "RELEASE") {
		t.Fatalf("releases after login: %d %s %s", code, out, stderr)
	}
	if code, _, _ := run(t, "logout"); code != 0 {
		t.Fatal("logout")
	}
	// Back on the local socket: admin, so the audit trail shows the token's creation.
	code, out, stderr := run(t, "audit", "--state-dir", data)
	if code != 0 || !strings.Contains(out, "token create ci scope read") || !strings.Contains(out, "unix:") {
		t.Fatalf("audit: %d %s %s", code, out, stderr)
	}
	if code, out, _ := run(t, "token", "revoke", "--state-dir", data, "ci"); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %s", code, out)
	}
}
