package pipeline

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// tlsServer serves a self-signed certificate for names valid until notAfter,
// and returns its address and a pool trusting it.
func tlsServer(t *testing.T, notAfter time.Time, names ...string) (string, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, DNSNames: names,
		NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return srv.Listener.Addr().String(), pool
}

func TestCheckServedCert(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	addr, roots := tlsServer(t, now.Add(60*24*time.Hour), "shop.example.com")
	leaf, err := CheckServedCert(ctx, addr, "shop.example.com", roots, now)
	if err != nil || leaf.Subject.CommonName != "Test CA" {
		t.Fatalf("valid certificate: %v", err)
	}
	if _, err := CheckServedCert(ctx, addr, "other.example.com", roots, now); err == nil || !strings.Contains(err.Error(), "not valid for it") {
		t.Errorf("wrong name: %v", err)
	}
	if _, err := CheckServedCert(ctx, addr, "shop.example.com", x509.NewCertPool(), now); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("untrusted root: %v", err)
	}
	expired, roots2 := tlsServer(t, now.Add(-time.Hour), "shop.example.com")
	if _, err := CheckServedCert(ctx, expired, "shop.example.com", roots2, now); err == nil || !strings.Contains(err.Error(), "certificate expired on") {
		t.Errorf("expired: %v", err)
	}
	soon, roots3 := tlsServer(t, now.Add(3*24*time.Hour), "shop.example.com")
	if _, err := CheckServedCert(ctx, soon, "shop.example.com", roots3, now); err == nil || !strings.Contains(err.Error(), "in less than 7 days") {
		t.Errorf("expiring within 7 days: %v", err)
	}
}
