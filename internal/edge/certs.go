package edge

import (
	"crypto/x509"
	"time"
)

// CertStatus describes the certificate of one host name that a store
// serves over TLS.
type CertStatus struct {
	Host  string `json:"host"`
	Store string `json:"store"`
	// Source is "acme" or "custom".
	Source string `json:"source"`
	// State is "valid", "obtaining", "waiting for DNS", "failed" or "none".
	State     string    `json:"state"`
	Issuer    string    `json:"issuer,omitempty"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	RenewedAt time.Time `json:"renewed_at,omitzero"`
	// LastError is the last order or renewal failure (or DNS pre-check
	// problem); the current certificate keeps serving meanwhile.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Certs lists every certificate the edge serves or is ordering, by host.
func (m *Manager) Certs() []CertStatus {
	t := m.table.Load()
	var out []CertStatus
	for _, h := range sortedKeys(t.exact) {
		if e := t.exact[h]; e.mode != modePlain {
			out = append(out, m.certStatus(h, e))
		}
	}
	for _, suffix := range sortedKeys(t.wildcard) {
		if e := t.wildcard[suffix]; e.mode == modeCustom {
			out = append(out, m.certStatus("*"+suffix, e))
		}
	}
	return out
}

func (m *Manager) certStatus(host string, e *hostEntry) CertStatus {
	cs := CertStatus{Host: host, Store: e.store}
	switch e.mode {
	case modeCustom:
		cs.Source, cs.State = "custom", "valid"
		describe(&cs, e.custom.Leaf)
		return cs
	case modeACME:
		cs.Source = "acme"
	default:
		return CertStatus{}
	}
	if !m.tlsOn {
		cs.State = "none"
		cs.LastError = "serve runs without --https"
		return cs
	}
	var leaf *x509.Certificate
	for _, c := range m.cache.AllMatchingCertificates(host) {
		if c.Leaf != nil && (leaf == nil || c.Leaf.NotAfter.After(leaf.NotAfter)) {
			leaf = c.Leaf
		}
	}
	m.mu.Lock()
	s := m.status[host]
	if s != nil {
		cs.RenewedAt, cs.LastError, cs.LastErrorAt = s.renewedAt, s.lastError, s.lastErrorAt
		if s.dnsProblem != "" {
			cs.LastError = s.dnsProblem
		}
	}
	m.mu.Unlock()
	switch {
	case leaf != nil:
		cs.State = "valid"
		if time.Now().After(leaf.NotAfter) {
			cs.State = "expired"
		}
		describe(&cs, leaf)
	case s != nil && s.dnsProblem != "":
		cs.State = "waiting for DNS"
	case s != nil && s.obtaining:
		cs.State = "obtaining"
	case s != nil && s.lastError != "":
		cs.State = "failed"
	default:
		cs.State = "none"
	}
	return cs
}

func describe(cs *CertStatus, leaf *x509.Certificate) {
	if leaf == nil {
		return
	}
	cs.NotAfter = leaf.NotAfter
	cs.Issuer = leaf.Issuer.CommonName
	if cs.Issuer == "" && len(leaf.Issuer.Organization) > 0 {
		cs.Issuer = leaf.Issuer.Organization[0]
	}
}
