package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireCompose returns the path of Debian's docker-compose (v1; installed
// by scripts/ci/setup-compose.sh). Without it the test is skipped, or fails
// when SLIPWAY_REQUIRE_DOCKER=1. It does not need an engine: `config` only
// reads files; call RequireDocker too before `up`.
func RequireCompose(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("docker-compose")
	if err != nil {
		unavailable(t, "docker-compose not found (Debian package docker-compose; scripts/ci/setup-compose.sh)")
		return ""
	}
	return p
}

// Compose runs docker-compose with args in dir against DockerHost and
// returns its stdout; it fails the test, showing stderr, when it fails.
func Compose(t testing.TB, dir string, args ...string) string {
	t.Helper()
	bin := RequireCompose(t)
	if bin == "" {
		return ""
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+DockerHost())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker-compose %s: %v\nstderr: %s\nstdout: %s", strings.Join(args, " "), err,
			tail(stderr.String(), 30), tail(stdout.String(), 20))
		return ""
	}
	return stdout.String()
}
