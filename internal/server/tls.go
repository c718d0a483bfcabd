package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/internal/edge"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/seal"
)

// TLSOptions configure HTTPS, ACME and the visitor-facing listeners.
type TLSOptions struct {
	// HTTPSAddr is where the router serves TLS ("" : plain HTTP only).
	HTTPSAddr string
	// ACMEEmail is the ACME account's contact.
	ACMEEmail string
	// ACMECA is the ACME directory; default Let's Encrypt production.
	ACMECA string
	// ACMECARoot is a PEM file of roots trusted for the ACME server itself.
	ACMECARoot string
	// Challenges enabled; default http-01 and tls-alpn-01.
	Challenges []string
	// PublicIPs count as this host in the DNS pre-check.
	PublicIPs []net.IP
	// SkipDNSCheck orders certificates without the DNS pre-check.
	SkipDNSCheck bool
	// Resolver for the DNS pre-check; default the system's.
	Resolver edge.Resolver
	// VerifyRoots is a PEM file of extra roots the verify stage trusts
	// (besides the system's), e.g. a private or test CA's.
	VerifyRoots string
	// RenewCheckInterval and RenewalWindowRatio tune renewals (tests).
	RenewCheckInterval time.Duration
	RenewalWindowRatio float64
	// Limits harden the router's listeners; zero fields take the defaults.
	Limits proxy.Limits
	// APIDomain serves --api over TLS with an ACME certificate for this
	// name (needs HTTPSAddr: the challenges are answered by the router).
	APIDomain string
}

// apiAutoTLS returns the TLS config for --api with --api-domain, nil without.
func (s *Server) apiAutoTLS() (*tls.Config, error) {
	d := s.o.TLS.APIDomain
	if d == "" {
		return nil, nil
	}
	if !s.TLSEdge.TLS() {
		return nil, fmt.Errorf("--api-domain %s needs --https: the router answers the ACME challenges", d)
	}
	if err := s.TLSEdge.ServeOwn(context.Background(), d); err != nil {
		return nil, fmt.Errorf("--api-domain: %w", err)
	}
	c := s.TLSEdge.TLSConfig()
	c.NextProtos = []string{"h2", "http/1.1"}
	return c, nil
}

// openEdge builds the edge manager and hands the verify stage what it needs.
func (s *Server) openEdge(ctx context.Context) error {
	eo := s.o.TLS
	var caRoots *x509.CertPool
	if eo.ACMECARoot != "" {
		pool, err := readPool(eo.ACMECARoot, "--acme-ca-root")
		if err != nil {
			return err
		}
		caRoots = pool
	}
	// The same master key as the state's (already loaded or created by openSealer).
	box, err := seal.Load(s.o.DataDir, s.o.Getenv)
	if err != nil {
		return fmt.Errorf("opening the TLS edge: %w", err)
	}
	m, err := edge.New(ctx, edge.Options{
		Sealer: box,
		Dir:    filepath.Join(s.o.DataDir, "tls"), Router: s.Router,
		HTTPAddr: s.httpLn.Addr().String(), HTTPSAddr: s.HTTPSAddr(),
		Email: eo.ACMEEmail, CA: eo.ACMECA, CARoots: caRoots, Challenges: eo.Challenges,
		Resolver: eo.Resolver, PublicIPs: eo.PublicIPs, SkipDNSCheck: eo.SkipDNSCheck,
		RenewCheckInterval: eo.RenewCheckInterval, RenewalWindowRatio: eo.RenewalWindowRatio,
		Log: s.log.With("part", "edge"),
	})
	if err != nil {
		return fmt.Errorf("opening the TLS edge: %w", err)
	}
	s.TLSEdge = m
	s.Deployer.Edge = m
	if m.TLS() {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if eo.VerifyRoots != "" {
			extra, err := os.ReadFile(eo.VerifyRoots)
			if err != nil || !roots.AppendCertsFromPEM(extra) {
				return fmt.Errorf("--verify-roots %s: no PEM certificates (%v)", eo.VerifyRoots, err)
			}
		}
		s.Deployer.TLSVerify = &pipelineTLS{addr: s.HTTPSAddr(), roots: roots, edge: m}
	}
	return nil
}

func readPool(path, flag string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s: no PEM certificates in it", flag, path)
	}
	return pool, nil
}

// listenHTTPS binds the HTTPS listener when one is configured.
func (s *Server) listenHTTPS() error {
	if s.o.TLS.HTTPSAddr == "" {
		return nil
	}
	ln, err := s.listen("https", "tcp", s.o.TLS.HTTPSAddr)
	if err != nil {
		return fmt.Errorf("router HTTPS listen on %s: %w", s.o.TLS.HTTPSAddr, err)
	}
	s.httpsLn = ln
	return nil
}

// HTTPSAddr is the router's TLS address once Listen returned, "" without one.
func (s *Server) HTTPSAddr() string {
	if s.httpsLn == nil {
		return ""
	}
	return s.httpsLn.Addr().String()
}

// serveRouter starts the router's plain HTTP and HTTPS servers; the
// returned func shuts them down.
func (s *Server) serveRouter(errc chan<- error) func(context.Context) {
	lim := s.o.TLS.Limits
	plain := proxy.NewHardenedServer(s.TLSEdge.HTTPHandler(s.Router), lim)
	// The front serves the plain proxied requests itself and hands the
	// rest of the connections to plain (proxy/front.go).
	front := proxy.NewFront(s.Router, lim, s.TLSEdge.PlainDirect)
	go func() { errc <- plain.Serve(front.Listener(proxy.LimitListener(s.httpLn, lim))) }()
	var secure *http.Server
	if s.httpsLn != nil {
		secure = proxy.NewHardenedServer(s.TLSEdge.HTTPSHandler(s.Router), lim)
		secure.TLSConfig = s.TLSEdge.TLSConfig()
		go func() { errc <- secure.ServeTLS(proxy.LimitListener(s.httpsLn, lim), "", "") }()
	}
	return func(ctx context.Context) {
		plain.Shutdown(ctx)
		front.Wait(ctx)
		if secure != nil {
			secure.Shutdown(ctx)
		}
	}
}

// pipelineTLS tells the verify stage where the router serves TLS and
// which roots a served certificate must chain to.
type pipelineTLS struct {
	addr  string
	roots *x509.CertPool
	edge  *edge.Manager
}

func (p *pipelineTLS) TLSAddr() string               { return p.addr }
func (p *pipelineTLS) TLSRoots() *x509.CertPool      { return p.roots }
func (p *pipelineTLS) ServesTLS(host string) bool    { return p.edge.ServesTLS(host) }
func (p *pipelineTLS) DNSProblem(host string) string { return p.edge.DNSProblem(host) }

// handleCerts lists every certificate the edge serves or orders.
func (s *Server) handleCerts(w http.ResponseWriter, r *http.Request) {
	certs := s.TLSEdge.Certs()
	if certs == nil {
		certs = []edge.CertStatus{}
	}
	writeJSON(w, http.StatusOK, CertsReply{TLS: s.TLSEdge.TLS(), HTTPS: s.HTTPSAddr(), Certs: certs})
}

// CertsReply is what GET /v1/certs returns.
type CertsReply struct {
	// TLS is false when serve runs without --https.
	TLS   bool              `json:"tls"`
	HTTPS string            `json:"https,omitempty"`
	Certs []edge.CertStatus `json:"certs"`
}

// Certs lists the server's certificates.
func (c *Client) Certs(ctx context.Context) (*CertsReply, error) {
	var out CertsReply
	if err := c.getJSON(ctx, "/v1/certs", &out); err != nil {
		return nil, err
	}
	return &out, nil
}
