package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// startAPI starts a server that also serves the API over TCP on loopback.
func startAPI(t *testing.T, o Options) *harness {
	t.Helper()
	o.DataDir, o.HTTPAddr, o.Driver, o.Log, o.StopOnExit = t.TempDir(), "127.0.0.1:0", "process", io.Discard, true
	if o.APIAddr == "" {
		o.APIAddr = "127.0.0.1:0"
	}
	h := serveWith(t, o)
	return h
}

func (h *harness) token(name string, scope auth.Scope, stores string) string {
	h.t.Helper()
	out, err := NewClient(h.dir).CreateToken(context.Background(), TokenRequest{Name: name, Scope: scope, Stores: stores})
	if err != nil {
		h.t.Fatal(err)
	}
	return out.Token
}

func apiCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// TestRemoteAPIScopes: no token is 401, read cannot deploy (403), a store
// glob limits a deploy token, and every mutating call is in the audit trail.
func TestRemoteAPIScopes(t *testing.T) {
	h := startAPI(t, Options{})
	ctx := context.Background()
	url := h.s.APIURL()
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("api url %q", url)
	}
	read := h.token("reader", auth.ScopeRead, "")
	euCI := h.token("eu-ci", auth.ScopeDeploy, "eu*")
	anon, _ := NewRemoteClient(url, "")
	if _, err := anon.Status(ctx); apiCode(err) != 401 {
		t.Fatalf("no token: %v", err)
	}
	rc, _ := NewRemoteClient(url, read)
	if _, err := rc.Status(ctx); err != nil {
		t.Fatalf("read token, status: %v", err)
	}
	req := pipeline.DeployRequest{Project: "shop", Store: "us", Kind: "build-deploy", Apps: []pipeline.AppDeploy{h.app("v1")}}
	if _, err := rc.Deploy(ctx, req, nil); apiCode(err) != 403 {
		t.Fatalf("read token deploys: %v", err)
	}
	if _, err := rc.ChangeEnv(ctx, "us", EnvChange{Set: map[string]string{"A": "b"}}); apiCode(err) != 403 {
		t.Fatalf("read token sets env: %v", err)
	}
	ec, _ := NewRemoteClient(url, euCI)
	if _, err := ec.Deploy(ctx, req, nil); apiCode(err) != 403 {
		t.Fatalf("eu* token deploys us: %v", err)
	}
	if _, err := ec.Tokens(ctx); apiCode(err) != 403 {
		t.Fatalf("deploy token lists tokens: %v", err)
	}
	if _, err := ec.Releases(ctx, "us"); apiCode(err) != 403 {
		t.Fatalf("eu* token reads us: %v", err)
	}
	// Nothing was deployed or changed by the refused calls.
	if rs, _ := NewClient(h.dir).Releases(ctx, "us"); len(rs) != 0 {
		t.Fatalf("refused deploy recorded releases: %+v", rs)
	}
	if env, _ := NewClient(h.dir).Env(ctx, "us"); len(env) != 0 {
		t.Fatalf("refused env change stored: %v", env)
	}
	// A deploy token for the store deploys over HTTP and the answer streams back.
	usCI := h.token("us-ci", auth.ScopeDeploy, "us")
	uc, _ := NewRemoteClient(url, usCI)
	var events int
	rel, err := uc.Deploy(ctx, req, func(pipeline.Event) { events++ })
	if err != nil || rel == nil || rel.Status != "live" || events == 0 {
		t.Fatalf("remote deploy: %v %+v (%d events)", err, rel, events)
	}
	if err := NewClient(h.dir).RevokeToken(ctx, "us-ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := uc.Status(ctx); apiCode(err) != 401 {
		t.Fatalf("revoked token: %v", err)
	}
	// The deploy's entry is completed as its handler returns, just after the last line streamed.
	var es []auth.Entry
	var deployed, refused bool
	for deadline := time.Now().Add(5 * time.Second); !deployed && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if es, err = NewClient(h.dir).Audit(ctx, auth.Filter{}); err != nil {
			t.Fatal(err)
		}
		deployed, refused = auditHas(es)
	}
	if !deployed || !refused {
		t.Errorf("audit misses the deploy (%v) or the refusal (%v): %+v", deployed, refused, es)
	}
	ts, _ := NewClient(h.dir).Tokens(ctx)
	for _, tk := range ts {
		if tk.Name == "us-ci" {
			t.Errorf("revoked token listed: %+v", tk)
		}
	}
}

func auditHas(es []auth.Entry) (deployed, refused bool) {
	for _, e := range es {
		if e.Path == "/v1/deploy" && e.Actor == "us-ci" && e.Status == 200 && e.Store == "us" && strings.HasPrefix(e.Remote, "127.0.0.1:") {
			deployed = true
		}
		if e.Path == "/v1/deploy" && e.Actor == "reader" && e.Status == 403 {
			refused = true
		}
	}
	return deployed, refused
}

func TestRemoteAPIRefusesPlainHTTPOffLoopback(t *testing.T) {
	s, err := New(context.Background(), Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", APIAddr: "0.0.0.0:0", Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer s.closeAll()
	if err := s.Listen(); !errors.Is(err, ErrInsecureAPI) {
		t.Fatalf("plain HTTP on 0.0.0.0: %v", err)
	}
}

func TestRemoteAPIOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	h := startAPI(t, Options{APIAddr: "127.0.0.1:0", APICert: cert, APIKey: key})
	url := h.s.APIURL()
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("api url %q", url)
	}
	tok := h.token("ci", auth.ScopeRead, "")
	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, _ := NewRemoteClient(url, tok)
	c.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	id, err := c.WhoAmI(context.Background())
	if err != nil || id.Name != "ci" || id.Scope != auth.ScopeRead {
		t.Fatalf("whoami over TLS: %+v %v", id, err)
	}
}

func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	return cert, key
}
