package cli

import (
	"strings"
	"testing"
)

func TestServeTLSFlagsAreChecked(t *testing.T) {
	state := t.TempDir()
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--https", "443"}, `--https "443": want host:port`},
		{[]string{"--acme-staging", "--acme-ca", "https://ca.example/dir"}, "--acme-staging and --acme-ca exclude each other"},
		{[]string{"--acme-ca", "http://ca.example/dir"}, "want an https:// ACME directory URL"},
		{[]string{"--acme-challenges", "dns-01"}, `"dns-01" is not http-01 or tls-alpn-01`},
		{[]string{"--public-ip", "nine"}, `--public-ip "nine" is not an IP address`},
		{[]string{"--acme-ca-root", "/nonexistent/root.pem"}, "--acme-ca-root: stat /nonexistent/root.pem"},
		{[]string{"--max-header-bytes", "10"}, "--max-header-bytes 10: at least 1024"},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout 0s: must be positive"},
	} {
		args := append([]string{"serve", "--state-dir", state, "--http", "127.0.0.1:0"}, c.args...)
		code, _, stderr := run(t, args...)
		if code != 2 || !strings.Contains(stderr, c.err) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.err)
		}
	}
}
