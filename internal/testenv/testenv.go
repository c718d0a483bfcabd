// Package testenv gives tests real things to run against: a Docker engine, a
// real OCI registry (Debian's docker-registry) on loopback, a static busybox
// and a tiny image built from it, and free ports.
//
// Each helper skips the calling test when what it needs is not on the
// machine, unless SLIPWAY_REQUIRE_DOCKER=1 (set by .ci/run), in which case it
// fails the test instead: in CI a missing engine is a broken setup, not a
// reason to pass quietly. scripts/ci/setup.sh installs and starts everything.
package testenv

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// RequireEnv is the environment variable that turns skips into failures.
const RequireEnv = "SLIPWAY_REQUIRE_DOCKER"

// EnvFileEnv names the file scripts/ci/setup.sh writes its findings to;
// DefaultEnvFile is used when it is unset.
const (
	EnvFileEnv     = "SLIPWAY_CI_ENV_FILE"
	DefaultEnvFile = "/run/slipway-ci/docker.env"
)

// required reports whether missing dependencies must fail tests.
func required() bool {
	return os.Getenv(RequireEnv) == "1"
}

// unavailable skips t, or fails it when SLIPWAY_REQUIRE_DOCKER=1. Callers
// return right after it: a test double's Skipf/Fatalf need not stop the
// goroutine.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if required() {
		t.Fatalf(format+" ("+RequireEnv+"=1, so this is a failure; run scripts/ci/setup.sh)", args...)
		return
	}
	t.Skipf(format+" (run scripts/ci/setup.sh, or set "+RequireEnv+"=1 to fail instead)", args...)
}

// setting returns the environment variable key, or else its value in the
// setup script's env file, or else def.
func setting(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	path := os.Getenv(EnvFileEnv)
	if path == "" {
		path = DefaultEnvFile
	}
	f, err := os.Open(path)
	if err != nil {
		return def
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || k != key {
			continue
		}
		return strings.Trim(v, `'"`)
	}
	return def
}
