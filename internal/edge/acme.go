package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// certState is what the edge last saw of one name's certificate.
type certState struct {
	// obtaining is true while an order or renewal runs.
	obtaining bool
	// dnsProblem is set while the name fails the DNS pre-check (not ordered).
	dnsProblem string
	// lastError is the last order or renewal failure, "" after a success.
	lastError   string
	lastErrorAt time.Time
	renewedAt   time.Time
	// managed is set once the name was handed to certmagic.
	managed bool
}

// startACME builds the certmagic cache, config and ACME issuer.
func (m *Manager) startACME() error {
	m.tlsOn = true
	if p := portOf(m.o.HTTPSAddr); p != "443" {
		m.httpsPort = p
	}
	storage := &certmagic.FileStorage{Path: filepath.Join(m.dir, "certmagic")}
	logger := zap.NewNop()
	var cfg *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		RenewCheckInterval: m.o.RenewCheckInterval,
		Logger:             logger,
	})
	cfg = certmagic.New(m.cache, certmagic.Config{
		RenewalWindowRatio: m.o.RenewalWindowRatio,
		Storage:            storage,
		OnEvent:            m.onEvent,
		Logger:             logger,
		// No OCSP stapling: Let's Encrypt ended OCSP, and Pebble has none.
		OCSP: certmagic.OCSPConfig{DisableStapling: true},
	})
	m.issuer = certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:                      m.o.CA,
		TestCA:                  m.o.CA,
		Email:                   m.o.Email,
		Agreed:                  true,
		DisableHTTPChallenge:    !slices.Contains(m.o.Challenges, ChallengeHTTP),
		DisableTLSALPNChallenge: !slices.Contains(m.o.Challenges, ChallengeALPN),
		// The router's own listeners answer the challenges: certmagic's
		// solver finds these ports taken and relies on our handlers.
		ListenHost:     listenHost(m.o.HTTPAddr),
		AltHTTPPort:    portNum(m.o.HTTPAddr),
		AltTLSALPNPort: portNum(m.o.HTTPSAddr),
		TrustedRoots:   m.o.CARoots,
		Logger:         logger,
	})
	cfg.Issuers = []certmagic.Issuer{m.issuer}
	m.magic = cfg
	return nil
}

func listenHost(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return h
}

// onEvent follows certmagic's work. It also guards every order: a name no
// store configures for ACME is refused before anything is sent to the CA,
// and so is the renewal of a name the router no longer routes. (A first
// order may precede the route: deploys configure the edge before the swap.)
func (m *Manager) onEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining":
		e := m.table.Load().lookup(name)
		if e == nil || e.mode != modeACME {
			return fmt.Errorf("%s: no store configures it for automatic TLS", name)
		}
		if renewal, _ := data["renewal"].(bool); renewal && !e.own && m.o.Router != nil && !m.o.Router.Routes(name) {
			return fmt.Errorf("%s: the router does not route it", name)
		}
		m.update(name, func(s *certState) { s.obtaining = true })
	case "cert_obtained":
		m.update(name, func(s *certState) {
			s.obtaining, s.lastError, s.renewedAt = false, "", time.Now()
		})
		m.log.Info("certificate obtained", "host", name, "renewal", data["renewal"])
		time.AfterFunc(time.Second, m.publishExpiry) // once certmagic has cached it
	case "cert_failed":
		msg := fmt.Sprint(data["error"])
		m.update(name, func(s *certState) {
			s.obtaining, s.lastError, s.lastErrorAt = false, msg, time.Now()
		})
		m.log.Warn("certificate order failed; retrying later, the current certificate (if any) still serves",
			"host", name, "renewal", data["renewal"], "error", msg)
	}
	return nil
}

// update changes a name's state and wakes handshakes waiting on it.
func (m *Manager) update(name string, f func(*certState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status[name]
	if s == nil {
		s = &certState{}
		m.status[name] = s
	}
	f(s)
	close(m.changed)
	m.changed = make(chan struct{})
}

// acmeNames are the exact names stores configure for ACME, sorted.
func (m *Manager) acmeNames() []string {
	t := m.table.Load()
	var out []string
	for h, e := range t.exact {
		if e.mode == modeACME {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

// manageAll hands every ACME name not yet managed to certmagic, after the
// DNS pre-check: certmagic loads its certificate from disk, or orders one
// (with retries and back-off), and renews it from then on.
func (m *Manager) manageAll(ctx context.Context) {
	var todo []string
	for _, name := range m.acmeNames() {
		m.mu.Lock()
		s := m.status[name]
		done := s != nil && s.managed
		m.mu.Unlock()
		if done {
			continue
		}
		if problem := m.dnsCheck(ctx, name); problem != "" {
			m.update(name, func(s *certState) { s.dnsProblem = problem })
			m.log.Warn("not ordering a certificate yet", "host", name, "reason", problem)
			continue
		}
		m.update(name, func(s *certState) { s.dnsProblem, s.managed = "", true })
		todo = append(todo, name)
	}
	if len(todo) == 0 {
		return
	}
	if err := m.magic.ManageAsync(context.WithoutCancel(ctx), todo); err != nil {
		m.log.Error("managing certificates", "hosts", todo, "error", err)
	}
}

// recheckLoop retries the DNS pre-check of names that failed it: DNS is
// often pointed at a new host after its first deploy.
func (m *Manager) recheckLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.o.RecheckInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			m.manageAll(ctx)
			cancel()
			m.publishExpiry()
		}
	}
}

// dnsCheck returns "" when name resolves to an address of this host, else
// a sentence saying what is wrong and what to do.
func (m *Manager) dnsCheck(ctx context.Context, name string) string {
	if m.o.SkipDNSCheck {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := m.o.Resolver.LookupHost(ctx, name)
	if err != nil || len(addrs) == 0 {
		return fmt.Sprintf("%s does not resolve (%v): add an A/AAAA record pointing at this host; the certificate is ordered once it does", name, err)
	}
	local := m.localIPs()
	for _, a := range addrs {
		ip := net.ParseIP(a)
		for _, l := range local {
			if ip != nil && ip.Equal(l) {
				return ""
			}
		}
	}
	var mine []string
	for _, l := range local {
		if !l.IsLoopback() && !l.IsLinkLocalUnicast() {
			mine = append(mine, l.String())
		}
	}
	return fmt.Sprintf("%s resolves to %s, not to this host (%s): point its DNS here (or pass --public-ip if this host is behind NAT or a load balancer); the certificate is ordered once it does",
		name, strings.Join(addrs, ", "), strings.Join(mine, ", "))
}

// localIPs are the interface addresses plus --public-ip.
func (m *Manager) localIPs() []net.IP {
	out := slices.Clone(m.o.PublicIPs)
	ifs, _ := net.InterfaceAddrs()
	for _, a := range ifs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out
}

// handshakeWait bounds how long a handshake waits for a certificate being
// ordered (the first visit right after a deploy).
const handshakeWait = 30 * time.Second

// getCertificate picks the certificate for a handshake: ACME challenges
// first, then the store's own certificate, then the managed one. A name
// whose certificate is still being ordered waits for it a little.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if slices.Contains(hello.SupportedProtos, "acme-tls/1") {
		return m.magic.GetCertificate(hello)
	}
	name := requestHost(hello.ServerName)
	e := m.table.Load().lookup(name)
	switch {
	case name == "":
		return nil, errors.New("no server name (SNI) in the handshake")
	case e == nil || e.mode == modePlain:
		return nil, fmt.Errorf("%s is not served over TLS", name)
	case e.mode == modeCustom:
		return e.custom, nil
	}
	ctx := hello.Context()
	deadline := time.NewTimer(handshakeWait)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		changed := m.changed
		s := m.status[name]
		var pending bool
		var why string
		if s != nil {
			// Just obtained counts as pending: certmagic caches a new
			// certificate right after announcing it.
			pending = s.obtaining || (s.managed && s.lastError == "" && (s.renewedAt.IsZero() || time.Since(s.renewedAt) < 5*time.Second))
			why = s.dnsProblem + s.lastError
		}
		m.mu.Unlock()
		if c, err := m.magic.GetCertificate(hello); err == nil {
			return c, nil
		} else if !pending {
			if why == "" {
				why = err.Error()
			}
			return nil, fmt.Errorf("no certificate for %s yet: %s", name, why)
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond): // certmagic caches a new certificate right after its event
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("no certificate for %s yet: still being ordered", name)
		}
	}
}
