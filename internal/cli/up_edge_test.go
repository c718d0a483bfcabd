package cli

import (
	"strings"
	"testing"
)

// up takes serve's HTTPS, ACME and edge flags, checked the same way before
// anything starts.
func TestUpTakesServeEdgeFlags(t *testing.T) {
	_, help, _ := run(t, "up", "--help")
	for _, f := range []string{"--https", "--acme-email", "--acme-ca ", "--acme-staging", "--acme-ca-root", "--acme-challenges",
		"--public-ip", "--skip-dns-check", "--idle-timeout", "--max-conns-per-ip", "--trusted-proxies", "--access-log", "--metrics"} {
		if !strings.Contains(help, f) {
			t.Errorf("up --help lacks %s", f)
		}
	}
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--https", "443"}, `--https "443": want host:port`},
		{[]string{"--acme-ca", "http://ca.example/dir"}, "want an https:// ACME directory URL"},
		{[]string{"--acme-staging", "--acme-ca", "https://ca.example/dir"}, "--acme-staging and --acme-ca exclude each other"},
		{[]string{"--acme-ca-root", "/nonexistent/root.pem"}, "--acme-ca-root: stat /nonexistent/root.pem"},
		{[]string{"--trusted-proxies", "not-a-cidr"}, "--trusted-proxies"},
		{[]string{"--api-domain", "api.example.com"}, "--api-domain is for serve --api"},
	} {
		args := append([]string{"up", "-C", dir, "--http", "127.0.0.1:0"}, c.args...)
		code, _, stderr := run(t, args...)
		if code != 2 || !strings.Contains(stderr, c.err) {
			t.Errorf("up %v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.err)
		}
	}
}
