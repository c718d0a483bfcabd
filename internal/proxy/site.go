package proxy

import (
	"maps"
	"strings"
)

// Site is what a store asks of the edge for its hosts, beyond routing: TLS,
// HSTS and its own error pages. The router keeps the pages; internal/edge
// keeps the rest.
type Site struct {
	// TLS is "auto" (ACME; the default), "off" (plain HTTP only) or "custom"
	// (CertPEM and KeyPEM, which win over ACME for every name they cover).
	TLS     string `json:"tls,omitempty"`
	CertPEM []byte `json:"cert_pem,omitempty"`
	// KeyPEM is a private key: it travels to serve and is stored under the
	// state dir (0600), never logged or returned by the API.
	KeyPEM []byte `json:"key_pem,omitempty"`
	// HSTS sends Strict-Transport-Security on HTTPS answers (opt-in).
	HSTS bool `json:"hsts,omitempty"`
	// Pages replace the router's plain error answers.
	Pages Pages `json:"pages,omitzero"`
}

// Pages are a store's own HTML for the router's error answers; an empty
// field keeps the router's plain default.
type Pages struct {
	// Unavailable is the 503 page: the store is stopped or nothing is live.
	Unavailable string `json:"unavailable,omitempty"`
	// BadGateway is the 502 page: the app failed to answer.
	BadGateway string `json:"bad_gateway,omitempty"`
}

// pageTable maps host patterns to pages; it is replaced, never changed.
type pageTable struct {
	exact    map[string]*Pages
	wildcard map[string]*Pages // keyed by ".example.com"
}

// SetPages makes hosts answer 502 and 503 with p (empty p: the plain
// default). Hosts are names or "*.suffix" patterns, as in DeployRequest.
func (r *Router) SetPages(hosts []string, p Pages) {
	r.pagesMu.Lock()
	defer r.pagesMu.Unlock()
	old := r.pages.Load()
	t := &pageTable{exact: map[string]*Pages{}, wildcard: map[string]*Pages{}}
	if old != nil {
		maps.Copy(t.exact, old.exact)
		maps.Copy(t.wildcard, old.wildcard)
	}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		m, key := t.exact, h
		if suffix, ok := cutWildcard(h); ok {
			m, key = t.wildcard, suffix
		}
		if p == (Pages{}) {
			delete(m, key)
		} else {
			pp := p
			m[key] = &pp
		}
	}
	r.pages.Store(t)
}

// pagesFor returns the pages for a request host, nil for the defaults.
func (r *Router) pagesFor(host string) *Pages {
	t := r.pages.Load()
	if t == nil {
		return nil
	}
	h := requestHost(host)
	if p := t.exact[h]; p != nil {
		return p
	}
	for i := strings.IndexByte(h, '.'); i > 0 && i < len(h)-1; {
		if p := t.wildcard[h[i:]]; p != nil {
			return p
		}
		j := strings.IndexByte(h[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return nil
}

// Routes reports whether some service routes host (a name, not a pattern):
// the edge orders certificates only for such names.
func (r *Router) Routes(host string) bool {
	return r.table.Load().lookup(requestHost(host)) != nil
}
