package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// DefaultDockerHost is the engine address used when DOCKER_HOST is unset.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// pingTimeout bounds the engine check, so a missing engine costs a test at
// most this long.
const pingTimeout = 2 * time.Second

// DockerHost returns DOCKER_HOST, or DefaultDockerHost when it is unset.
func DockerHost() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return DefaultDockerHost
}

// RequireDocker returns the address of a Docker engine that answers its API
// ping (DOCKER_HOST, or unix:///var/run/docker.sock). When none answers within
// 2 s it skips the test, or fails it when SLIPWAY_REQUIRE_DOCKER=1.
// Only unix:// and plain tcp:// hosts are checked; TLS is not supported.
func RequireDocker(t testing.TB) string {
	t.Helper()
	host := DockerHost()
	if err := pingDocker(host); err != nil {
		unavailable(t, "no Docker engine at %s: %v", host, err)
		return ""
	}
	return host
}

// pingDocker calls the engine's GET /_ping over its socket with plain
// net/http, so tests don't need the Docker client library.
func pingDocker(host string) error {
	u, err := url.Parse(host)
	if err != nil {
		return fmt.Errorf("parsing DOCKER_HOST %q: %w", host, err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	base := ""
	switch u.Scheme {
	case "unix":
		sock := u.Path
		if sock == "" {
			sock = u.Opaque
		}
		d := net.Dialer{Timeout: pingTimeout}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}
		base = "http://docker"
	case "tcp", "http":
		base = "http://" + u.Host
	default:
		return fmt.Errorf("unsupported DOCKER_HOST scheme %q", u.Scheme)
	}
	c := &http.Client{Transport: tr, Timeout: pingTimeout}
	resp, err := c.Get(base + "/_ping")
	if err != nil {
		return fmt.Errorf("pinging engine: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pinging engine: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// DockerNetwork tells how tests should reach a container on this machine:
// "bridge" when `docker run -p 127.0.0.1:HOST:CTR` works, "host" when
// containers must share the host's network (--network host) instead.
// It reads SLIPWAY_DOCKER_NETWORK, else the file scripts/ci/setup.sh writes
// (SLIPWAY_CI_ENV_FILE, default /run/slipway-ci/docker.env), else "bridge".
func DockerNetwork() string {
	return setting("SLIPWAY_DOCKER_NETWORK", "bridge")
}

// Docker runs the docker CLI against RequireDocker's engine and returns its
// trimmed stdout; it fails the test, showing stderr, when the command fails.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	host := RequireDocker(t)
	if host == "" {
		return ""
	}
	bin, err := exec.LookPath("docker")
	if err != nil {
		unavailable(t, "docker CLI not found: %v", err)
		return ""
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v\nstderr: %s\nstdout: %s", strings.Join(args, " "), err,
			bytes.TrimSpace(stderr.Bytes()), tail(stdout.String(), 20))
		return ""
	}
	return strings.TrimSpace(stdout.String())
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
