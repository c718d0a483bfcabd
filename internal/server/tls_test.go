package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// loopbackResolver says every name resolves to 127.0.0.1 (the DNS pre-check).
type loopbackResolver struct{}

func (loopbackResolver) LookupHost(context.Context, string) ([]string, error) {
	return []string{"127.0.0.1"}, nil
}

// TestDeployNewDomainServesHTTPSWithPebbleCertificate is the product path:
// serve --https with Pebble as the CA; a deploy configures a new domain,
// the certificate is ordered (Pebble validates on serve's own ports), the
// verify stage checks the served chain, and visitors get HTTPS.
func TestDeployNewDomainServesHTTPSWithPebbleCertificate(t *testing.T) {
	httpPort, httpsPort := testenv.FreePort(t), testenv.FreePort(t)
	peb := testenv.StartPebble(t, testenv.PebbleOptions{HTTPPort: httpPort, TLSPort: httpsPort})
	if peb == nil {
		return
	}
	dir := t.TempDir()
	h := serveWith(t, Options{DataDir: dir, HTTPAddr: addrOf(httpPort), Driver: "process", Log: io.Discard, StopOnExit: true,
		APIAddr: "127.0.0.1:0",
		TLS: TLSOptions{HTTPSAddr: addrOf(httpsPort), ACMECA: peb.Directory, ACMECARoot: peb.CARoot,
			VerifyRoots: peb.IssuerRootsPEM(t), Resolver: loopbackResolver{}, APIDomain: "api.test"}})
	s := h.s

	app := h.app("v1")
	app.Hosts = []string{"us.localhost", "shop.test"}
	start := time.Now()
	rel, err, evs := h.deploy(pipelineRequest(app, proxy.Site{HSTS: true, Pages: proxy.Pages{Unavailable: "<h1>us is resting</h1>"}}))
	if err != nil {
		t.Fatalf("deploy: %v\n%v", err, evs)
	}
	roots := peb.IssuerRoots(t)
	cl := tlsClient(s.HTTPSAddr(), roots)
	resp, err := cl.Get("https://shop.test/release")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("deploy of a store with a new domain to the first HTTPS 200 with a Pebble certificate: %s", time.Since(start).Round(time.Millisecond))
	if resp.StatusCode != 200 || !strings.Contains(string(body), "v1") || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("HTTPS: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	var sawExpiry bool
	for _, e := range evs {
		if strings.Contains(e.Message, "https://shop.test: certificate from Pebble") && strings.Contains(e.Message, "valid until") {
			sawExpiry = true
		}
	}
	if !sawExpiry || rel.Error != "" {
		t.Errorf("verify did not report the certificate (release error %q): %v", rel.Error, evs)
	}
	// Plain HTTP redirects; *.localhost does not.
	if code, _ := h.get("us.localhost", "/release"); code != 200 {
		t.Errorf("us.localhost over plain HTTP: %d", code)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+s.HTTPAddr()+"/x", nil)
	req.Host = "shop.test"
	if resp, err := noFollow.Do(req); err != nil || resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("plain HTTP on shop.test: %v %v", err, resp)
	}
	// The remote API (--api with --api-domain) has its own automatic certificate.
	apiAddr := strings.TrimPrefix(s.APIURL(), "https://")
	resp, err = tlsClient(apiAddr, roots).Get("https://api.test/v1/health")
	if err != nil {
		t.Fatalf("API over TLS with the automatic certificate: %v", err)
	}
	resp.Body.Close()
	if leaf := resp.TLS.PeerCertificates[0]; leaf.VerifyHostname("api.test") != nil {
		t.Fatalf("API certificate for %v", leaf.DNSNames)
	}
	certs, err := NewClient(dir).Certs(context.Background())
	if err != nil || !certs.TLS || len(certs.Certs) != 2 {
		t.Fatalf("certs: %+v %v", certs, err)
	}
	for _, c := range certs.Certs {
		if (c.Host != "shop.test" && c.Host != "api.test") || c.State != "valid" || c.NotAfter.IsZero() {
			t.Errorf("certs: %+v", c)
		}
	}
}

func addrOf(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func tlsClient(addr string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true,
	}}
}

func pipelineRequest(app pipeline.AppDeploy, site proxy.Site) pipeline.DeployRequest {
	return pipeline.DeployRequest{Apps: []pipeline.AppDeploy{app}, Site: site, DNS: "off", Commit: "c1"}
}
