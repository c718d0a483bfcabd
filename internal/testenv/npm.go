package testenv

import (
	"os/exec"
	"testing"
)

// NPM returns the path of the host's npm, for tests that build real Next.js
// and Nuxt apps from the npm registry. It skips the test when npm is missing,
// or fails it under SLIPWAY_REQUIRE_DOCKER=1.
func NPM(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("npm")
	if err != nil {
		unavailable(t, "npm is not installed: %v", err)
		return ""
	}
	return p
}
