package pipeline

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// CertMinValidity is how long a served certificate must still be valid for
// verify to pass: less means renewal is failing.
const CertMinValidity = 7 * 24 * time.Hour

// certWait bounds a handshake in verify: a new domain's first certificate
// may still be on its way from the CA.
const certWait = 60 * time.Second

// verifyTLS checks the certificate the router serves for each TLS host of
// the store, and reports its expiry.
func (d *Deployer) verifyTLS(ctx context.Context, req DeployRequest, say func(string, string, ...any)) (problems, dnsWarnings []string) {
	if d.TLSVerify == nil || d.TLSVerify.TLSAddr() == "" {
		return nil, nil
	}
	for _, h := range allHosts(req) {
		if strings.HasPrefix(h, "*.") || !d.TLSVerify.ServesTLS(h) {
			continue
		}
		if p := d.TLSVerify.DNSProblem(h); p != "" {
			dnsWarnings = append(dnsWarnings, "no certificate yet: "+p)
			continue
		}
		leaf, err := CheckServedCert(ctx, d.TLSVerify.TLSAddr(), h, d.TLSVerify.TLSRoots(), time.Now())
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		say(StageVerify, "https://%s: certificate from %s, valid until %s", h, issuerName(leaf), leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
	}
	return problems, dnsWarnings
}

// CheckServedCert does a TLS handshake with addr for host and checks that
// the certificate served chains to roots, covers host and stays valid for
// CertMinValidity after now. It returns the leaf, or an error saying what
// is wrong with it.
func CheckServedCert(ctx context.Context, addr, host string, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, certWait)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config: &tls.Config{ServerName: host, InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("https://%s: no certificate served: %v (see slipway certs)", host, err)
	}
	defer c.Close()
	chain := c.(*tls.Conn).ConnectionState().PeerCertificates
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	at := now
	if leaf.NotBefore.After(now) && leaf.NotBefore.Sub(now) < time.Minute {
		// Issued this very moment by a CA that does not backdate (Pebble):
		// clock skew, not a problem.
		at = leaf.NotBefore
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: at})
	var inv x509.CertificateInvalidError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired && now.Before(leaf.NotBefore):
		return leaf, fmt.Errorf("https://%s: certificate not valid before %s (check this host's clock)", host, leaf.NotBefore.UTC().Format(time.RFC3339))
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return leaf, fmt.Errorf("https://%s: certificate expired on %s", host, leaf.NotAfter.UTC().Format(time.DateOnly))
	case err != nil:
		return leaf, fmt.Errorf("https://%s: certificate from %s not valid for it: %v", host, issuerName(leaf), err)
	case leaf.NotAfter.Sub(now) < CertMinValidity:
		return leaf, fmt.Errorf("https://%s: certificate expires on %s, in less than %d days: renewal is failing (see slipway certs)",
			host, leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"), int(CertMinValidity.Hours()/24))
	}
	return leaf, nil
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	if len(c.Issuer.Organization) > 0 {
		return c.Issuer.Organization[0]
	}
	return c.Issuer.String()
}
