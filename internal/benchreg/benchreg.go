// Package benchreg runs a Debian docker-registry for the benchmarks under bench/
// (internal/testenv has the same for tests, but needs a testing.TB).
package benchreg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Registry is a Debian docker-registry (CNCF distribution) serving plain
// HTTP on 127.0.0.1 with storage in a directory of the bench's work dir. The
// config mirrors internal/testenv/registry.go (which needs a testing.TB).
type Registry struct {
	Addr    string // 127.0.0.1:PORT
	Dir     string // storage root
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// Start runs a registry under work, retrying on a port taken meanwhile.
func Start(ctx context.Context, work string) (*Registry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/docker-registry"); serr != nil {
			return nil, errors.New("docker-registry not found (Debian package docker-registry; scripts/ci/setup.sh installs it)")
		}
		bin = "/usr/bin/docker-registry"
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := startOnce(ctx, bin, filepath.Join(work, fmt.Sprintf("registry-%d", attempt)))
		if err == nil {
			return r, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("starting docker-registry: %w", lastErr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startOnce(ctx context.Context, bin, dir string) (*Registry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		Addr:    fmt.Sprintf("127.0.0.1:%d", port),
		Dir:     filepath.Join(dir, "storage"),
		logPath: filepath.Join(dir, "registry.log"),
		exited:  make(chan struct{}),
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, err
	}
	config, err := Config(r.Dir, r.Addr, "")
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(r.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	cmd := exec.Command(bin, "serve", configPath)
	cmd.Dir = dir
	for _, kv := range os.Environ() { // REGISTRY_* would override the config file
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed with us if the bench dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	r.cmd = cmd
	go func() { r.waitErr = cmd.Wait(); close(r.exited) }()

	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("docker-registry exited during startup: %v\n%s", r.waitErr, r.LogTail())
		case <-ctx.Done():
			r.Stop()
			return nil, ctx.Err()
		default:
		}
		resp, err := c.Get("http://" + r.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("docker-registry did not answer GET /v2/ within 15s\n%s", r.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var stopOnce sync.Map

// Stop terminates the registry process this bench started (by its own
// *exec.Cmd, never by name) and waits for it.
func (r *Registry) Stop() {
	if r == nil || r.cmd == nil {
		return
	}
	if _, done := stopOnce.LoadOrStore(r, true); done {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

func (r *Registry) LogTail() string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return "(no registry log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// Config is a docker-registry config serving plain HTTP on addr with storage
// under root, a fresh HTTP secret, and extra YAML (an auth section) appended.
// The tests' registries (internal/testenv) use it too.
func Config(root, addr, extra string) (string, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
  headers:
    X-Content-Type-Options: [nosniff]
%s`, root, addr, hex.EncodeToString(secret), extra), nil
}
