package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns the path of a headless-capable Chromium (SLIPWAY_CHROMIUM,
// else Debian's chromium on PATH) for browser tests. It skips the test when
// there is none, or fails it under SLIPWAY_REQUIRE_DOCKER=1 (CI installs it
// with scripts/ci/setup-chromium.sh).
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SLIPWAY_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			unavailable(t, "SLIPWAY_CHROMIUM=%s: %v", p, err)
			return ""
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	unavailable(t, "chromium is not installed")
	return ""
}

// ChromiumFlags are the flags headless Chromium needs on a CI machine with no
// display, no GPU, no user namespace sandbox and no network beyond loopback.
var ChromiumFlags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"}
