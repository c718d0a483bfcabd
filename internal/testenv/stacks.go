package testenv

import (
	"os/exec"
	"testing"
)

// Python returns the path of the host's python3 with pip, for tests that
// build and run detected Python apps on the process runtime. It skips, or
// fails under SLIPWAY_REQUIRE_DOCKER=1, when either is missing
// (scripts/ci/setup-stacks.sh installs them).
func Python(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		unavailable(t, "python3 is not installed: %v", err)
		return ""
	}
	if out, err := exec.Command(p, "-m", "pip", "--version").CombinedOutput(); err != nil {
		unavailable(t, "python3 has no pip: %v %s", err, out)
		return ""
	}
	return p
}

// Ruby returns the path of the host's ruby, with bundler beside it, for
// tests of detected Ruby apps; it skips or fails like Python
// (scripts/ci/setup-stacks.sh installs them).
func Ruby(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ruby")
	if err != nil {
		unavailable(t, "ruby is not installed: %v", err)
		return ""
	}
	if _, err := exec.LookPath("bundle"); err != nil {
		unavailable(t, "bundler is not installed: %v", err)
		return ""
	}
	return p
}

// Go returns the path of the go command, for tests that build detected Go
// apps; it skips or fails like Python.
func Go(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		unavailable(t, "go is not on PATH: %v", err)
		return ""
	}
	return p
}
