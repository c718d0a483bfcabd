// Package edge is the router's face to the internet: automatic TLS
// certificates (ACME through certmagic, HTTP-01 and TLS-ALPN-01), stores'
// own certificates, the HTTP to HTTPS redirect and HSTS. It decides per host
// name from what stores configure (Configure, called by each deploy):
//
//   - *.localhost names, IP addresses and stores with `tls: off` stay plain HTTP;
//   - a store's own certificate serves every name it covers;
//   - every other name gets a certificate from the ACME CA, ordered when the
//     deploy configures it (after checking that it resolves to this host),
//     served from then on and renewed ahead of expiry in the background.
//
// Nothing else is ever ordered: the order hook refuses names no store
// configures or the router no longer routes, so a stranger's SNI or Host
// header cannot make the server spend its CA rate limit.
//
// Certificates, keys and the ACME account live under <state-dir>/tls (0600).
package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/slipway-dev/slipway/internal/proxy"
)

// Let's Encrypt's ACME directories.
const (
	LetsEncryptProduction = certmagic.LetsEncryptProductionCA
	LetsEncryptStaging    = certmagic.LetsEncryptStagingCA
)

// Challenge names.
const (
	ChallengeHTTP = "http-01"
	ChallengeALPN = "tls-alpn-01"
)

// Resolver looks names up for the DNS pre-check.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Router is what the edge needs of the router: whether a name is routed,
// and where stores' error pages go.
type Router interface {
	Routes(host string) bool
	SetPages(hosts []string, p proxy.Pages)
	// SetCertificateExpiry feeds the certificate expiry metric.
	SetCertificateExpiry(name string, notAfter time.Time)
}

var _ Router = (*proxy.Router)(nil)

// Options configure a Manager.
type Options struct {
	// Dir holds certificates, keys, the ACME account and sites.json (created 0700).
	Dir string
	// Router is consulted before every order and receives stores' pages.
	Router Router
	// HTTPAddr and HTTPSAddr are the router's listen addresses; TLS is off
	// (nothing ordered, no redirects) while HTTPSAddr is "".
	HTTPAddr, HTTPSAddr string
	// Email is the ACME account's contact ("" : none).
	Email string
	// CA is the ACME directory URL; default Let's Encrypt production.
	CA string
	// CARoots are trusted for talking to the CA (a private ACME server);
	// default the system roots.
	CARoots *x509.CertPool
	// Challenges enabled; default both HTTP-01 and TLS-ALPN-01.
	Challenges []string
	// Resolver for the DNS pre-check; default net.DefaultResolver.
	Resolver Resolver
	// PublicIPs count as this host in the DNS pre-check besides the
	// addresses of its interfaces (a host behind NAT or a load balancer).
	PublicIPs []net.IP
	// SkipDNSCheck orders without checking where names resolve.
	SkipDNSCheck bool
	// RecheckInterval is how often names that failed the DNS pre-check are
	// checked again; default 1m.
	RecheckInterval time.Duration
	// RenewCheckInterval is how often certificates are checked for renewal;
	// default 10m (certmagic's).
	RenewCheckInterval time.Duration
	// RenewalWindowRatio is the share of a certificate's lifetime, at its
	// end, in which it is renewed; default 1/3.
	RenewalWindowRatio float64
	// Log receives what the edge does; default slog.Default().
	Log *slog.Logger
	// Sealer seals the stores' private keys at rest; nil keeps them in
	// clear in sites.json (0600).
	Sealer Sealer
}

// Manager is the edge for one serve.
type Manager struct {
	o     Options
	dir   string
	log   *slog.Logger
	table atomic.Pointer[hostTable]

	mu    sync.Mutex // guards sites, the sites file, status, own
	sites map[string]*storeSite
	// own are names serve itself answers on (the API's --api-domain).
	own []string

	tlsOn     bool
	httpsPort string // "" when 443
	magic     *certmagic.Config
	cache     *certmagic.Cache
	issuer    *certmagic.ACMEIssuer
	status    map[string]*certState
	changed   chan struct{} // closed and replaced whenever a certificate's state changes

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// New opens the edge: it restores what stores configured before and, with
// TLS on, starts managing their certificates (loading them from disk, or
// ordering those still missing).
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CA == "" {
		o.CA = LetsEncryptProduction
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.RecheckInterval == 0 {
		o.RecheckInterval = time.Minute
	}
	if len(o.Challenges) == 0 {
		o.Challenges = []string{ChallengeHTTP, ChallengeALPN}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.Dir, err)
	}
	m := &Manager{o: o, dir: o.Dir, log: o.Log, sites: map[string]*storeSite{}, status: map[string]*certState{},
		changed: make(chan struct{}), stop: make(chan struct{})}
	if err := m.load(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	err := m.rebuildLocked()
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("restoring %s: %w", m.sitesPath(), err)
	}
	if o.Router != nil {
		for _, ss := range m.sites {
			o.Router.SetPages(ss.Hosts, ss.Site.Pages)
		}
	}
	if o.HTTPSAddr != "" {
		if err := m.startACME(); err != nil {
			return nil, err
		}
		m.manageAll(ctx)
		m.wg.Add(1)
		go m.recheckLoop()
	}
	return m, nil
}

// Close stops renewals and rechecks.
func (m *Manager) Close() error {
	m.once.Do(func() {
		close(m.stop)
		if m.cache != nil {
			m.cache.Stop()
		}
	})
	m.wg.Wait()
	return nil
}

// ServesTLS reports whether host (a name) is served over HTTPS.
func (m *Manager) ServesTLS(host string) bool {
	e := m.table.Load().lookup(requestHost(host))
	return m.tlsOn && e != nil && e.mode != modePlain
}

// DNSProblem is why host's certificate is not ordered yet (the DNS
// pre-check), "" if it is not waiting for DNS.
func (m *Manager) DNSProblem(host string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.status[requestHost(host)]; s != nil {
		return s.dnsProblem
	}
	return ""
}

// TLS reports whether the edge serves HTTPS.
func (m *Manager) TLS() bool { return m.tlsOn }

// Configure sets a store's hosts and site settings, replacing what the
// store had. It checks everything first (a bad certificate changes
// nothing), saves, hands the pages to the router and, with TLS on, starts
// ordering the certificates its new names need. Ordering runs in the
// background: the first HTTPS handshake for a name waits for it briefly.
func (m *Manager) Configure(ctx context.Context, store string, hosts []string, site proxy.Site) error {
	if _, err := entriesFor(store, hosts, site); err != nil {
		return err
	}
	if site.TLS == "" {
		site.TLS = "auto"
	}
	m.mu.Lock()
	prev := m.sites[store]
	m.sites[store] = &storeSite{Hosts: hosts, Site: site}
	err := m.saveLocked()
	if err == nil {
		err = m.rebuildLocked()
	}
	if err != nil {
		if prev == nil {
			delete(m.sites, store)
		} else {
			m.sites[store] = prev
		}
		m.rebuildLocked()
		m.mu.Unlock()
		return fmt.Errorf("saving the edge settings of %s: %w", store, err)
	}
	m.mu.Unlock()
	if m.o.Router != nil {
		m.o.Router.SetPages(hosts, site.Pages)
	}
	if m.tlsOn {
		m.manageAll(ctx)
	}
	return nil
}

// ServeOwn adds a name serve itself answers on (the remote API's domain):
// it gets an ACME certificate like a store's domain, is renewed without
// being routed, and is listed by Certs under the store "(serve)".
func (m *Manager) ServeOwn(ctx context.Context, name string) error {
	name = requestHost(name)
	if PlainHost(name) || strings.Contains(name, "*") {
		return fmt.Errorf("%s: not a public DNS name an ACME CA can certify", name)
	}
	m.mu.Lock()
	m.own = append(m.own, name)
	err := m.rebuildLocked()
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if m.tlsOn {
		m.manageAll(ctx)
	}
	m.publishExpiry()
	return nil
}

// publishExpiry hands every certificate's expiry to the router's metrics.
func (m *Manager) publishExpiry() {
	if m.o.Router == nil {
		return
	}
	for _, c := range m.Certs() {
		m.o.Router.SetCertificateExpiry(c.Host, c.NotAfter) // zero (none yet) removes it
	}
}

// Forget drops a store's hosts (a removed store): they are no longer
// served over TLS, and their certificates are no longer renewed.
func (m *Manager) Forget(store string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ss := m.sites[store]
	if ss == nil {
		return nil
	}
	delete(m.sites, store)
	if err := m.saveLocked(); err != nil {
		m.sites[store] = ss
		return fmt.Errorf("saving the edge settings: %w", err)
	}
	if m.o.Router != nil {
		m.o.Router.SetPages(ss.Hosts, proxy.Pages{})
		for _, h := range ss.Hosts {
			m.o.Router.SetCertificateExpiry(requestHost(h), time.Time{})
		}
	}
	return m.rebuildLocked()
}

// HTTPHandler wraps the router for the plain HTTP listener: ACME HTTP-01
// challenges are answered, and requests for a host served over TLS are
// redirected to HTTPS with 308 (method and body kept). Without TLS it
// returns next unchanged.
//
// An ACME name is redirected only once it has a certificate: while its
// first order waits for DNS or keeps failing, a redirect would send every
// visitor to a handshake error, so plain HTTP serves the store until the
// certificate arrives. (A certificate whose renewal fails still serves, so
// its name stays redirected.)
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	if !m.tlsOn {
		return next
	}
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := requestHost(r.Host)
		if m.servesPlain(host, r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		target := "https://" + host
		if m.httpsPort != "" {
			target += ":" + m.httpsPort
		}
		target += r.URL.RequestURI()
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusPermanentRedirect)
	})
	return m.issuer.HTTPChallengeHandler(redirect)
}

const challengePath = "/.well-known/acme-challenge/"

// servesPlain says whether the redirect passes a plain-HTTP request for
// host and path on to the router. A challenge certmagic does not know may
// be another ACME client's (the app's own, or a proxy in front): never
// redirect one. Nor an ACME name without a certificate yet (HTTPHandler).
func (m *Manager) servesPlain(host, path string) bool {
	e := m.table.Load().lookup(host)
	return e == nil || e.mode == modePlain || strings.HasPrefix(path, challengePath) ||
		(e.mode == modeACME && !m.hasCertificate(host))
}

// hasCertificate reports whether certmagic holds a certificate for host
// (expired or not: it is being renewed, and a redirect to it is no worse).
func (m *Manager) hasCertificate(host string) bool {
	return len(m.cache.AllMatchingCertificates(host)) > 0
}

// PlainDirect says whether HTTPHandler hands a request for host (as sent,
// port and case included) and path straight to the router, with neither a
// challenge answer nor a redirect: the router's Front may then serve it
// itself (proxy.NewFront).
func (m *Manager) PlainDirect(host, path string) bool {
	if !m.tlsOn {
		return true
	}
	return !strings.HasPrefix(path, challengePath) && m.servesPlain(requestHost(host), path)
}

// HTTPSHandler wraps the router for the HTTPS listener: it adds
// Strict-Transport-Security for stores that opted in.
func (m *Manager) HTTPSHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := m.table.Load().lookup(requestHost(r.Host)); e != nil && e.hsts {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// TLSConfig is the HTTPS listener's configuration: HTTP/2 and HTTP/1.1,
// TLS 1.2 or newer, certificates chosen per SNI name.
func (m *Manager) TLSConfig() *tls.Config {
	c := m.magic.TLSConfig()
	c.GetCertificate = m.getCertificate
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = []string{"h2", "http/1.1", "acme-tls/1"}
	return c
}

// requestHost normalises a Host header or SNI name: no port, lower case,
// no trailing dot.
func requestHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return p
}

func portNum(addr string) int {
	n, _ := strconv.Atoi(portOf(addr))
	return n
}
