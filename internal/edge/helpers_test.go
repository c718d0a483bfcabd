package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// staticResolver answers from a map, "127.0.0.1" for names it does not know.
type staticResolver struct {
	mu sync.Mutex
	m  map[string][]string
}

func (r *staticResolver) set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string][]string{}
	}
	r.m[host] = addrs
}

func (r *staticResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.m[host]; ok {
		if len(a) == 0 {
			return nil, fmt.Errorf("lookup %s: no such host", host)
		}
		return a, nil
	}
	return []string{"127.0.0.1"}, nil
}

// edgeEnv is a router with one backend, its HTTP and HTTPS listeners on
// loopback, and (with ACME) a Pebble validating on those very ports.
type edgeEnv struct {
	t        *testing.T
	router   *proxy.Router
	m        *Manager
	pebble   *testenv.Pebble
	httpAddr string
	tlsAddr  string
	resolver *staticResolver
	roots    *x509.CertPool
}

type envOptions struct {
	challenges []string
	validity   time.Duration
	renewRatio float64
	noPebble   bool
	// caFront, when set, is put between the edge and Pebble: it gets
	// Pebble's directory URL and the roots that trust it, and returns the
	// directory URL and roots the edge uses instead.
	caFront func(dir string, roots *x509.CertPool) (string, *x509.CertPool)
}

func newEdgeEnv(t *testing.T, o envOptions) *edgeEnv {
	t.Helper()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &edgeEnv{t: t, httpAddr: httpLn.Addr().String(), tlsAddr: tlsLn.Addr().String(), resolver: &staticResolver{}}
	opts := Options{
		Dir: t.TempDir(), HTTPAddr: env.httpAddr, HTTPSAddr: env.tlsAddr,
		Challenges: o.challenges, Resolver: env.resolver,
		RecheckInterval: 200 * time.Millisecond, RenewCheckInterval: time.Second,
		RenewalWindowRatio: o.renewRatio,
	}
	if !o.noPebble {
		env.pebble = testenv.StartPebble(t, testenv.PebbleOptions{HTTPPort: portNum(env.httpAddr), TLSPort: portNum(env.tlsAddr), Validity: o.validity})
		if env.pebble == nil {
			return nil
		}
		pool := x509.NewCertPool()
		b, err := os.ReadFile(env.pebble.CARoot)
		if err != nil || !pool.AppendCertsFromPEM(b) {
			t.Fatalf("reading %s: %v", env.pebble.CARoot, err)
		}
		opts.CA, opts.CARoots = env.pebble.Directory, pool
		if o.caFront != nil {
			opts.CA, opts.CARoots = o.caFront(env.pebble.Directory, pool)
		}
		env.roots = env.pebble.IssuerRoots(t)
	} else {
		opts.CA = "https://127.0.0.1:1/dir" // never contacted
	}
	env.router, err = proxy.NewRouter("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.router.Close() })
	opts.Router = env.router
	env.m, err = New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.m.Close() })
	plain := proxy.NewHardenedServer(env.m.HTTPHandler(env.router), proxy.Limits{})
	secure := proxy.NewHardenedServer(env.m.HTTPSHandler(env.router), proxy.Limits{})
	secure.TLSConfig = env.m.TLSConfig()
	go plain.Serve(httpLn)
	go secure.ServeTLS(tlsLn, "", "")
	t.Cleanup(func() { plain.Close(); secure.Close() })
	return env
}

// deploy routes hosts to a fresh backend answering "hello from <name>".
func (env *edgeEnv) deploy(name string, hosts ...string) {
	env.t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+name)
	}))
	env.t.Cleanup(b.Close)
	_, err := env.router.Deploy(context.Background(), proxy.DeployRequest{Service: name, Hosts: hosts,
		Targets: []string{b.Listener.Addr().String()}, Health: proxy.HealthCheck{Path: "/"}})
	if err != nil {
		env.t.Fatal(err)
	}
}

// client talks to the edge's listeners whatever the host name, trusting roots.
func (env *edgeEnv) client(roots *x509.CertPool) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		target := env.httpAddr
		if port == "443" || port == portOf(env.tlsAddr) {
			target = env.tlsAddr
		}
		var d net.Dialer
		return d.DialContext(ctx, network, target)
	}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get fetches url and returns the response with its body read.
func (env *edgeEnv) get(c *http.Client, url string) (*http.Response, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func (env *edgeEnv) httpsURL(host, path string) string {
	return "https://" + host + ":" + portOf(env.tlsAddr) + path
}

func (env *edgeEnv) httpURL(host, path string) string {
	return "http://" + host + ":" + portOf(env.httpAddr) + path
}

// servedCert does a TLS handshake for host and returns the leaf.
func (env *edgeEnv) servedCert(host string) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 20 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", env.tlsAddr, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// certOf returns the edge's status line for host.
func (env *edgeEnv) certOf(host string) CertStatus {
	for _, c := range env.m.Certs() {
		if c.Host == host {
			return c
		}
	}
	return CertStatus{}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// selfSigned makes a certificate and key for names, valid from notBefore to notAfter.
func selfSigned(t *testing.T, notBefore, notAfter time.Time, names ...string) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Slipway test"}},
		Issuer:       pkix.Name{CommonName: "Slipway test"},
		DNSNames:     names, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	leaf, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), leaf
}
