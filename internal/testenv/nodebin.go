package testenv

import (
	"os/exec"
	"testing"
)

// Node returns the path of the host's node binary, for tests that build or run
// the example apps. It skips the test when node is missing, or fails it under
// SLIPWAY_REQUIRE_DOCKER=1: in CI a missing node is a broken setup.
func Node(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "node is not installed: %v", err)
		return ""
	}
	return p
}
