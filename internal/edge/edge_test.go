package edge

import (
	"context"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
)

// These tests need no ACME server: nothing in them is ordered.

func TestRedirectsTLSHostsButNotLocalhost(t *testing.T) {
	env := newEdgeEnv(t, envOptions{noPebble: true})
	env.deploy("us/web", "us.localhost", "shop.test")
	env.resolver.set("shop.test") // does not resolve: nothing is ordered
	if err := env.m.Configure(context.Background(), "us", []string{"us.localhost", "shop.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	c := env.client(nil)
	// No certificate yet (its order waits for DNS): plain HTTP serves the
	// store rather than redirecting to a handshake that would fail.
	resp, body, err := env.get(c, env.httpURL("shop.test", "/cart?id=7"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != "hello from us/web" {
		t.Fatalf("plain HTTP on a TLS host without a certificate yet: %d %q, want the store", resp.StatusCode, body)
	}
	// A host with a certificate (here the store's own) is redirected.
	env.deploy("eu/web", "eu.test")
	certPEM, keyPEM, _ := selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), "eu.test")
	if err := env.m.Configure(context.Background(), "eu", []string{"eu.test"}, proxy.Site{TLS: "custom", CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		t.Fatal(err)
	}
	resp, _, err = env.get(c, env.httpURL("eu.test", "/cart?id=7"))
	if err != nil {
		t.Fatal(err)
	}
	want := env.httpsURL("eu.test", "/cart?id=7")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("plain HTTP on a TLS host: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp, body, err = env.get(c, env.httpURL("us.localhost", "/"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != "hello from us/web" {
		t.Fatalf("*.localhost must stay plain HTTP: %d %q", resp.StatusCode, body)
	}
	// The ACME challenge path is never redirected (certmagic answers
	// tokens it knows; an unknown token falls through to the router).
	resp, _, err = env.get(c, env.httpURL("shop.test", "/.well-known/acme-challenge/unknown"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusPermanentRedirect {
		t.Fatalf("challenge path was redirected")
	}
}

func TestTLSOffStaysPlain(t *testing.T) {
	env := newEdgeEnv(t, envOptions{noPebble: true})
	env.deploy("us/web", "shop.test")
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{TLS: "off"}); err != nil {
		t.Fatal(err)
	}
	resp, body, err := env.get(env.client(nil), env.httpURL("shop.test", "/"))
	if err != nil || resp.StatusCode != 200 || body != "hello from us/web" {
		t.Fatalf("tls off: %v %v %q", err, resp, body)
	}
	if got := env.m.Certs(); len(got) != 0 {
		t.Fatalf("tls off lists certificates: %+v", got)
	}
}

func TestCustomCertificateServedWithHSTSAndHTTP2(t *testing.T) {
	env := newEdgeEnv(t, envOptions{noPebble: true})
	env.deploy("us/web", "shop.test", "api.shop.test")
	certPEM, keyPEM, leaf := selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), "shop.test")
	site := proxy.Site{TLS: "custom", CertPEM: certPEM, KeyPEM: keyPEM, HSTS: true}
	env.resolver.set("api.shop.test") // the name the certificate does not cover goes to ACME, once it resolves
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test", "api.shop.test"}, site); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	resp, body, err := env.get(env.client(roots), env.httpsURL("shop.test", "/"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != "hello from us/web" {
		t.Fatalf("custom certificate: %d %q", resp.StatusCode, body)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTPS answered over %s, want HTTP/2", resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("HSTS opted in, header %q", got)
	}
	cs := env.certOf("shop.test")
	if cs.Source != "custom" || cs.State != "valid" || !cs.NotAfter.Equal(leaf.NotAfter) || cs.Issuer != "shop.test" {
		t.Errorf("certs: %+v", cs)
	}
	if cs := env.certOf("api.shop.test"); cs.Source != "acme" || cs.State != "waiting for DNS" {
		t.Errorf("uncovered name: %+v", cs)
	}
	// The key is saved for the next start, readable by its owner only.
	fi, err := os.Stat(filepath.Join(env.m.dir, "sites.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sites.json: %v %v", fi, err)
	}
}

func TestBadCustomCertificateChangesNothing(t *testing.T) {
	env := newEdgeEnv(t, envOptions{noPebble: true})
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{TLS: "off"}); err != nil {
		t.Fatal(err)
	}
	certPEM, _, _ := selfSigned(t, time.Now(), time.Now().Add(time.Hour), "shop.test")
	_, otherKey, _ := selfSigned(t, time.Now(), time.Now().Add(time.Hour), "shop.test")
	err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{TLS: "custom", CertPEM: certPEM, KeyPEM: otherKey})
	if err == nil || !strings.Contains(err.Error(), "store us: custom certificate") {
		t.Fatalf("mismatched key: %v", err)
	}
	if e := env.m.table.Load().lookup("shop.test"); e == nil || e.mode != modePlain {
		t.Fatalf("a rejected Configure changed the host: %+v", e)
	}
}

func TestDNSPrecheckSaysWhyNothingIsOrdered(t *testing.T) {
	env := newEdgeEnv(t, envOptions{noPebble: true})
	env.deploy("us/web", "shop.test")
	env.resolver.set("shop.test", "203.0.113.9")
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	cs := env.certOf("shop.test")
	if cs.State != "waiting for DNS" || !strings.Contains(cs.LastError, "resolves to 203.0.113.9, not to this host") {
		t.Fatalf("pre-check: %+v", cs)
	}
	_, err := env.servedCert("shop.test")
	if err == nil {
		t.Fatal("a handshake succeeded without a certificate")
	}
}

func TestForget(t *testing.T) {
	env := newEdgeEnv(t, envOptions{noPebble: true})
	env.resolver.set("shop.test")
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	if err := env.m.Forget("us"); err != nil {
		t.Fatal(err)
	}
	if got := env.m.Certs(); len(got) != 0 {
		t.Fatalf("forgotten store still listed: %+v", got)
	}
}
