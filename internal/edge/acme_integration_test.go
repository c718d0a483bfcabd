//go:build integration

package edge

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
)

// These tests order real certificates from Pebble, which validates every
// challenge by connecting to the router's own listeners.

func testIssuance(t *testing.T, challenge string) {
	env := newEdgeEnv(t, envOptions{challenges: []string{challenge}})
	if env == nil {
		return
	}
	env.deploy("us/web", "us.localhost", "shop.test")
	start := time.Now()
	if err := env.m.Configure(context.Background(), "us", []string{"us.localhost", "shop.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	// The first visit waits for the order the deploy started.
	resp, body, err := env.get(env.client(env.roots), env.httpsURL("shop.test", "/"))
	if err != nil {
		t.Fatalf("first HTTPS request: %v (certs: %+v)", err, env.m.Certs())
	}
	if resp.StatusCode != 200 || body != "hello from us/web" {
		t.Fatalf("HTTPS: %d %q", resp.StatusCode, body)
	}
	t.Logf("%s: configure to first HTTPS 200 with a Pebble certificate: %s", challenge, time.Since(start).Round(time.Millisecond))
	leaf := resp.TLS.PeerCertificates[0]
	if err := leaf.VerifyHostname("shop.test"); err != nil {
		t.Fatal(err)
	}
	cs := env.certOf("shop.test")
	if cs.Source != "acme" || cs.State != "valid" || !strings.Contains(strings.ToLower(cs.Issuer), "pebble") || cs.NotAfter.IsZero() || cs.RenewedAt.IsZero() {
		t.Fatalf("certs: %+v", cs)
	}
	if _, err := env.servedCert("us.localhost"); err == nil {
		t.Fatal("*.localhost got a certificate")
	}
	// The expiry reaches the router's metrics.
	waitFor(t, 5*time.Second, "the certificate expiry metric", func() bool {
		rec := httptest.NewRecorder()
		env.router.MetricsHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return strings.Contains(rec.Body.String(), `slipway_certificate_expiry_timestamp_seconds{name="shop.test"}`)
	})
}

func TestIssuanceHTTP01(t *testing.T) { testIssuance(t, ChallengeHTTP) }

func TestIssuanceTLSALPN01(t *testing.T) { testIssuance(t, ChallengeALPN) }

func TestRenewalWhileServing(t *testing.T) {
	// A 12s certificate renewed in the second half of its life.
	env := newEdgeEnv(t, envOptions{validity: 12 * time.Second, renewRatio: 0.5})
	if env == nil {
		return
	}
	env.deploy("us/web", "shop.test")
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	c := env.client(env.roots)
	resp, _, err := env.get(c, env.httpsURL("shop.test", "/"))
	if err != nil {
		t.Fatal(err)
	}
	first := resp.TLS.PeerCertificates[0].SerialNumber
	// Visitors keep coming on fresh connections while it renews.
	var failures, total atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := env.client(env.roots)
			resp, body, err := env.get(c, env.httpsURL("shop.test", "/"))
			total.Add(1)
			if err != nil || resp.StatusCode != 200 || body != "hello from us/web" {
				failures.Add(1)
				t.Logf("request during renewal: %v", err)
			}
			c.CloseIdleConnections()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	waitFor(t, 15*time.Second, "a renewed certificate", func() bool {
		leaf, err := env.servedCert("shop.test")
		return err == nil && leaf.SerialNumber.Cmp(first) != 0
	})
	close(stop)
	<-done
	if failures.Load() > 0 {
		t.Fatalf("%d of %d requests failed during renewal", failures.Load(), total.Load())
	}
	t.Logf("renewed while serving %d requests", total.Load())

	// Now renewals fail (the CA's validator is sent elsewhere): the failure
	// is reported and the current certificate keeps serving.
	env.pebble.SetA(t, "shop.test", "127.0.0.2")
	waitFor(t, 15*time.Second, "a failed renewal to be reported", func() bool {
		return env.certOf("shop.test").LastError != ""
	})
	cs := env.certOf("shop.test")
	if cs.State != "valid" {
		t.Fatalf("after a failed renewal: %+v", cs)
	}
	resp, body, err := env.get(env.client(env.roots), env.httpsURL("shop.test", "/"))
	if err != nil || resp.StatusCode != 200 || body != "hello from us/web" {
		t.Fatalf("serving after a failed renewal: %v %v %q", err, resp, body)
	}
	t.Logf("renewal failure reported, still serving: %s", cs.LastError)
}

func TestFailingChallengeIsReportedAndServingContinues(t *testing.T) {
	env := newEdgeEnv(t, envOptions{})
	if env == nil {
		return
	}
	env.deploy("us/web", "shop.test")
	env.deploy("eu/web", "broken.test")
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	c := env.client(env.roots)
	if _, _, err := env.get(c, env.httpsURL("shop.test", "/")); err != nil {
		t.Fatal(err)
	}
	// The pre-check (this host's resolver) passes, but the CA's DNS sends
	// its validator elsewhere: the challenge fails.
	env.pebble.SetA(t, "broken.test", "127.0.0.2")
	if err := env.m.Configure(context.Background(), "eu", []string{"broken.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the failed order to be reported", func() bool {
		cs := env.certOf("broken.test")
		return cs.State == "failed" && cs.LastError != ""
	})
	cs := env.certOf("broken.test")
	t.Logf("reported: %s", cs.LastError)
	if _, err := env.servedCert("broken.test"); err == nil {
		t.Fatal("broken.test has a certificate")
	}
	// The other store still serves over HTTPS, on a new connection too.
	c2 := env.client(env.roots)
	resp, body, err := env.get(c2, env.httpsURL("shop.test", "/"))
	if err != nil || resp.StatusCode != 200 || body != "hello from us/web" {
		t.Fatalf("serving broke: %v %v %q", err, resp, body)
	}
	// Plain HTTP for the failing name serves the store (a redirect would
	// lead to a handshake error); the name with a certificate redirects.
	resp, body, err = env.get(c2, env.httpURL("broken.test", "/"))
	if err != nil || resp.StatusCode != 200 || body != "hello from eu/web" {
		t.Fatalf("plain HTTP while the first order fails: %v %v %q, want the store", err, resp, body)
	}
	resp, _, err = env.get(c2, env.httpURL("shop.test", "/"))
	if err != nil || resp.StatusCode != http.StatusPermanentRedirect {
		t.Fatalf("redirect once a certificate exists: %v %v", err, resp)
	}
}

func TestCustomCertificateWinsOverACME(t *testing.T) {
	env := newEdgeEnv(t, envOptions{})
	if env == nil {
		return
	}
	env.deploy("us/web", "shop.test")
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	// First an ACME certificate...
	if _, _, err := env.get(env.client(env.roots), env.httpsURL("shop.test", "/")); err != nil {
		t.Fatalf("ACME: %v", err)
	}
	// ...then the store brings its own: it serves from the next handshake on.
	certPEM, keyPEM, leaf := selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour), "shop.test")
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{TLS: "custom", CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	resp, body, err := env.get(env.client(roots), env.httpsURL("shop.test", "/"))
	if err != nil || body != "hello from us/web" {
		t.Fatalf("custom: %v %q", err, body)
	}
	if got := resp.TLS.PeerCertificates[0]; !got.Equal(leaf) {
		t.Fatalf("served %s, want the store's own certificate", got.Issuer)
	}
	if cs := env.certOf("shop.test"); cs.Source != "custom" {
		t.Fatalf("certs: %+v", cs)
	}
}
