package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PebbleVersion is the Pebble release scripts/ci/setup-pebble.sh installs.
const PebbleVersion = "v2.10.3"

// Pebble is a real ACME server (Let's Encrypt's Pebble) on loopback for one
// test, with its challenge test server answering its DNS queries: every name
// resolves to 127.0.0.1 unless the test says otherwise (SetA). Pebble really
// validates challenges (PEBBLE_VA_ALWAYS_VALID=0): it connects to HTTPPort
// (HTTP-01) and TLSPort (TLS-ALPN-01) on the address a name resolves to, so
// the router under test must listen there.
type Pebble struct {
	// Directory is the ACME directory URL (https, signed by CARoot).
	Directory string
	// CARoot is the PEM file of the root that signs Pebble's own TLS
	// certificate: what --acme-ca-root trusts.
	CARoot string
	// DNS is the challenge test server's DNS address (host:port, UDP and TCP).
	DNS string
	// HTTPPort and TLSPort are where Pebble's validator connects.
	HTTPPort, TLSPort int

	mgmt      string // Pebble's management API (https)
	challMgmt string // challtestsrv's management API (http)
	client    *http.Client
}

// PebbleOptions configure StartPebble.
type PebbleOptions struct {
	// HTTPPort and TLSPort are the ports Pebble validates HTTP-01 and
	// TLS-ALPN-01 challenges on (required: the router's listeners).
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates; default 90 days.
	Validity time.Duration
}

// pebbleTool finds one of Pebble's binaries: the path setup-pebble.sh wrote
// to pebble.env, else $PATH.
func pebbleTool(key, name string) string {
	if p := pebbleSetting(key); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath(name)
	return p
}

// pebbleSetting reads key from the environment or from pebble.env next to
// the docker env file.
func pebbleSetting(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	path := os.Getenv(EnvFileEnv)
	if path == "" {
		path = DefaultEnvFile
	}
	f, err := os.Open(filepath.Join(filepath.Dir(path), "pebble.env"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && k == key {
			return strings.Trim(v, `'"`)
		}
	}
	return ""
}

// pebbleCerts finds Pebble's test/certs directory in the module cache.
func pebbleCerts() string {
	if d := pebbleSetting("SLIPWAY_PEBBLE_CERTS"); d != "" {
		return d
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return ""
	}
	return filepath.Join(strings.TrimSpace(string(out)), "github.com/letsencrypt/pebble/v2@"+PebbleVersion, "test/certs")
}

// StartPebble runs pebble-challtestsrv (DNS only) and pebble on loopback and
// stops both when the test ends. It skips the test when Pebble is not
// installed (scripts/ci/setup-pebble.sh), or fails it when
// SLIPWAY_REQUIRE_DOCKER=1.
func StartPebble(t testing.TB, o PebbleOptions) *Pebble {
	t.Helper()
	pebble := pebbleTool("SLIPWAY_PEBBLE", "pebble")
	chall := pebbleTool("SLIPWAY_PEBBLE_CHALLTESTSRV", "pebble-challtestsrv")
	certs := pebbleCerts()
	if pebble == "" || chall == "" {
		unavailable(t, "pebble and pebble-challtestsrv not found (scripts/ci/setup-pebble.sh installs them)")
		return nil
	}
	if _, err := os.Stat(filepath.Join(certs, "localhost", "cert.pem")); err != nil {
		unavailable(t, "pebble's test certificates not found in %s: %v", certs, err)
		return nil
	}
	if o.Validity == 0 {
		o.Validity = 90 * 24 * time.Hour
	}
	dir := t.TempDir()
	p := &Pebble{CARoot: filepath.Join(certs, "pebble.minica.pem"), HTTPPort: o.HTTPPort, TLSPort: o.TLSPort}
	dnsPort, challPort := FreePort(t), FreePort(t)
	p.DNS = "127.0.0.1:" + strconv.Itoa(dnsPort)
	p.challMgmt = "http://127.0.0.1:" + strconv.Itoa(challPort)
	startLogged(t, dir, "challtestsrv", exec.Command(chall,
		"-dnsserver", p.DNS, "-management", "127.0.0.1:"+strconv.Itoa(challPort),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""))
	acmePort, mgmtPort := FreePort(t), FreePort(t)
	p.Directory = fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort)
	p.mgmt = fmt.Sprintf("https://127.0.0.1:%d", mgmtPort)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           "127.0.0.1:" + strconv.Itoa(acmePort),
		"managementListenAddress": "127.0.0.1:" + strconv.Itoa(mgmtPort),
		"certificate":             filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":              filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":            "ecdsa",
		"profiles": map[string]any{"default": map[string]any{
			"description": "test", "validityPeriod": int(o.Validity.Seconds())}},
	}}
	cfgPath := filepath.Join(dir, "pebble.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pebble, "-config", cfgPath, "-dnsserver", p.DNS)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_ALWAYS_VALID=0", // really validate the challenges
		"PEBBLE_VA_NOSLEEP=1",      // no random validation delays
		"PEBBLE_WFE_NONCEREJECT=0", // no random bad-nonce answers
		"PEBBLE_AUTHZREUSE=0",      // every order solves its challenge
	)
	startLogged(t, dir, "pebble", cmd)
	pool := x509.NewCertPool()
	root, err := os.ReadFile(p.CARoot)
	if err != nil || !pool.AppendCertsFromPEM(root) {
		t.Fatalf("reading pebble's minica root %s: %v", p.CARoot, err)
	}
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	p.waitReady(t, dir)
	return p
}

// startLogged starts cmd with its output in dir/name.log, and stops it
// when the test ends.
func startLogged(t testing.TB, dir, name string, cmd *exec.Cmd) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, tail(string(b), 40))
		}
	})
}

func (p *Pebble) waitReady(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := p.client.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && p.challReady() {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
			t.Fatalf("pebble did not answer %s within 15s: %v\n%s", p.Directory, err, tail(string(b), 40))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *Pebble) challReady() bool {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.challMgmt, "http://"), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// IssuerRoots returns the roots Pebble signs certificates with (generated
// afresh by every Pebble run): what a client must trust to verify them.
func (p *Pebble) IssuerRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for i := 0; ; i++ {
		resp, err := p.client.Get(fmt.Sprintf("%s/roots/%d", p.mgmt, i))
		if err != nil {
			t.Fatalf("fetching pebble root %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			if i == 0 {
				t.Fatalf("fetching pebble root: %s", resp.Status)
			}
			return pool
		}
		pool.AppendCertsFromPEM(b)
	}
}

// IssuerRootsPEM writes Pebble's issuing roots to a file and returns its path.
func (p *Pebble) IssuerRootsPEM(t testing.TB) string {
	t.Helper()
	var all bytes.Buffer
	for i := 0; ; i++ {
		resp, err := p.client.Get(fmt.Sprintf("%s/roots/%d", p.mgmt, i))
		if err != nil {
			t.Fatalf("fetching pebble root %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			break
		}
		all.Write(b)
	}
	path := filepath.Join(t.TempDir(), "pebble-roots.pem")
	if err := os.WriteFile(path, all.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SetA makes the DNS server answer host's A queries with ip (for a name
// that must not resolve to this host, or must fail validation).
func (p *Pebble) SetA(t testing.TB, host, ip string) {
	t.Helper()
	p.challPost(t, "/add-a", map[string]any{"host": host, "addresses": []string{ip}})
}

// ClearA goes back to the default answer (127.0.0.1) for host.
func (p *Pebble) ClearA(t testing.TB, host string) {
	t.Helper()
	p.challPost(t, "/clear-a", map[string]any{"host": host})
}

func (p *Pebble) challPost(t testing.TB, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.challMgmt+path, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("challtestsrv %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("challtestsrv %s: %s", path, resp.Status)
	}
}
