package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/crypto/bcrypt"

	"github.com/slipway-dev/slipway/internal/benchreg"
)

// Registry is a real OCI registry (CNCF distribution, Debian's
// docker-registry) serving plain HTTP on loopback for one test.
type Registry struct {
	// Addr is host:port, e.g. 127.0.0.1:41234; go-containerregistry speaks
	// plain HTTP to loopback addresses without extra options.
	Addr string
	// Dir is the registry's filesystem storage root.
	Dir string
	// User and Password are the htpasswd credentials, empty without auth.
	User, Password string

	logPath string
}

// RegistryOption configures StartRegistry.
type RegistryOption func(*registryConfig)

type registryConfig struct {
	user, password string
}

// WithHtpasswd makes the registry require HTTP basic auth with this user and
// password (default: no auth, anyone may push and pull).
func WithHtpasswd(user, password string) RegistryOption {
	return func(c *registryConfig) { c.user, c.password = user, password }
}

// registryStartTimeout bounds how long StartRegistry waits for GET /v2/.
const registryStartTimeout = 15 * time.Second

// StartRegistry runs `docker-registry serve` on 127.0.0.1 with storage in a
// temporary directory and deletes enabled, waits until GET /v2/ answers, and
// stops it when the test ends. It skips the test when docker-registry is not
// installed, or fails it when SLIPWAY_REQUIRE_DOCKER=1.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	var cfg registryConfig
	for _, o := range opts {
		o(&cfg)
	}
	bin := registryBinary()
	if bin == "" {
		unavailable(t, "docker-registry not found in PATH or /usr/bin (Debian package docker-registry)")
		return nil
	}
	// The port is picked before the registry binds it; retry if another
	// process took it in between.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := startRegistry(t, bin, cfg)
		if err == nil {
			return r
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("starting docker-registry: %v", lastErr)
	return nil
}

var errAddrInUse = errors.New("address already in use")

func registryBinary() string {
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/docker-registry"); err == nil {
		return "/usr/bin/docker-registry"
	}
	return ""
}

func startRegistry(t testing.TB, bin string, cfg registryConfig) (*Registry, error) {
	t.Helper()
	dir := t.TempDir()
	r := &Registry{
		Addr:     fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		Dir:      filepath.Join(dir, "storage"),
		User:     cfg.user,
		Password: cfg.password,
		logPath:  filepath.Join(dir, "registry.log"),
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, err
	}
	var auth string
	if cfg.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(cfg.password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("hashing htpasswd password: %w", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(cfg.user+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: slipway-test\n    path: %q\n", htpasswd)
	}
	config, err := benchreg.Config(r.Dir, r.Addr, auth)
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
	defer logf.Close() // the child keeps its own descriptor

	cmd := exec.Command(bin, "serve", configPath)
	cmd.Dir = dir
	cmd.Env = registryEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	// exited is closed once the process is reaped; waitErr is set before.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	if err := r.waitReady(exited, &waitErr); err != nil {
		stop()
		log := r.LogTail(30)
		if strings.Contains(log, "address already in use") {
			err = fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return nil, fmt.Errorf("%w\ndocker-registry log (%s):\n%s", err, r.logPath, log)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("docker-registry %s log tail:\n%s", r.Addr, r.LogTail(30))
		}
	})
	return r, nil
}

// registryEnv is the test's environment without REGISTRY_* variables, which
// distribution would read as overrides of our config file.
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls GET /v2/ until it answers 200 (open) or 401 (auth).
func (r *Registry) waitReady(exited <-chan struct{}, waitErr *error) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(registryStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("docker-registry exited during startup: %v", *waitErr)
		default:
		}
		resp, err := c.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("docker-registry did not answer GET %s/v2/ within %s", r.URL(), registryStartTimeout)
}

// URL returns the registry's base URL, http://127.0.0.1:PORT.
func (r *Registry) URL() string { return "http://" + r.Addr }

// Repo returns a repository reference in this registry, e.g. Repo("app") is
// "127.0.0.1:PORT/app".
func (r *Registry) Repo(name string) string { return r.Addr + "/" + name }

// Authenticator returns basic auth with the htpasswd credentials, or
// authn.Anonymous when the registry has no auth.
func (r *Registry) Authenticator() authn.Authenticator {
	if r.User == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.User, Password: r.Password}
}

// LogTail returns the last n lines the registry wrote to stderr and stdout.
func (r *Registry) LogTail(n int) string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", r.logPath, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "(empty)"
	}
	return tail(string(b), n)
}
