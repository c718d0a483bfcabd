package edge

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/proxy"
)

// Host modes.
const (
	modePlain  = iota // plain HTTP only
	modeACME          // certificate from the ACME CA
	modeCustom        // the store's own certificate
)

// hostEntry is what the edge knows about one host name or "*.suffix" pattern.
type hostEntry struct {
	store  string
	mode   int
	hsts   bool
	custom *tls.Certificate
	own    bool // serve's own name: not routed by the router
}

// hostTable is immutable once published.
type hostTable struct {
	exact    map[string]*hostEntry
	wildcard map[string]*hostEntry // keyed by ".example.com"
}

func (t *hostTable) lookup(host string) *hostEntry {
	if t == nil {
		return nil
	}
	if e := t.exact[host]; e != nil {
		return e
	}
	for i := strings.IndexByte(host, '.'); i > 0 && i < len(host)-1; {
		if e := t.wildcard[host[i:]]; e != nil {
			return e
		}
		j := strings.IndexByte(host[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return nil
}

// storeSite is one store's hosts and settings, as saved.
type storeSite struct {
	Hosts []string   `json:"hosts"`
	Site  proxy.Site `json:"site"`
}

// sitesFile is the versioned file Configure writes (0600: it may hold keys).
type sitesFile struct {
	Version int                   `json:"version"`
	Stores  map[string]*storeSite `json:"stores"`
	// Keys are the stores' private keys sealed with the master key
	// (version 2); the sites then carry none in clear.
	Keys map[string]string `json:"sealed_keys,omitempty"`
}

const sitesVersion = 2

// PlainHost reports whether host is never served over TLS by default:
// localhost and *.localhost names (a laptop's browser resolves them to
// loopback; no public CA can sign them) and IP addresses.
func PlainHost(h string) bool {
	h = strings.TrimPrefix(strings.ToLower(h), "*.")
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || net.ParseIP(h) != nil
}

// parseCustom checks a store's own certificate and key.
func parseCustom(store string, s proxy.Site) (*tls.Certificate, error) {
	if len(s.CertPEM) == 0 || len(s.KeyPEM) == 0 {
		return nil, fmt.Errorf("store %s: tls custom needs both a certificate and a key", store)
	}
	c, err := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("store %s: custom certificate: %w", store, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("store %s: custom certificate: %w", store, err)
		}
	}
	return &c, nil
}

// entriesFor turns one store's hosts and site into host entries: plain for
// localhost names and tls off; the custom certificate for every name it
// covers; ACME for the rest (a wildcard pattern can only be custom: HTTP-01
// and TLS-ALPN-01 cannot prove one).
func entriesFor(store string, hosts []string, s proxy.Site) (map[string]*hostEntry, error) {
	var custom *tls.Certificate
	switch s.TLS {
	case "", "auto", "off":
	case "custom":
		c, err := parseCustom(store, s)
		if err != nil {
			return nil, err
		}
		custom = c
	default:
		return nil, fmt.Errorf("store %s: tls %q: use off, auto or a certificate and key", store, s.TLS)
	}
	out := map[string]*hostEntry{}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		e := &hostEntry{store: store, mode: modePlain}
		switch {
		case PlainHost(h) || s.TLS == "off":
		case custom != nil && custom.Leaf.VerifyHostname(strings.Replace(h, "*", "wildcard-check", 1)) == nil:
			e.mode, e.custom, e.hsts = modeCustom, custom, s.HSTS
		case strings.HasPrefix(h, "*."):
			// No certificate can be ordered for it; it stays plain.
		default:
			e.mode, e.hsts = modeACME, s.HSTS
		}
		out[h] = e
	}
	return out, nil
}

// rebuildLocked publishes a new host table from m.sites.
func (m *Manager) rebuildLocked() error {
	t := &hostTable{exact: map[string]*hostEntry{}, wildcard: map[string]*hostEntry{}}
	for _, store := range sortedKeys(m.sites) {
		ss := m.sites[store]
		es, err := entriesFor(store, ss.Hosts, ss.Site)
		if err != nil {
			return err
		}
		for h, e := range es {
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				t.wildcard[suffix] = e
			} else {
				t.exact[h] = e
			}
		}
	}
	for _, h := range m.own {
		t.exact[h] = &hostEntry{store: ownStore, mode: modeACME, own: true}
	}
	m.table.Store(t)
	return nil
}

// ownStore is the store name Certs shows for serve's own names.
const ownStore = "(serve)"

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// load reads the sites file; a missing one is an empty edge.
func (m *Manager) load() error {
	b, err := os.ReadFile(m.sitesPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", m.sitesPath(), err)
	}
	var f sitesFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("reading %s: %w", m.sitesPath(), err)
	}
	if f.Version > sitesVersion {
		return fmt.Errorf("reading %s: version %d is newer than this slipway (%d)", m.sitesPath(), f.Version, sitesVersion)
	}
	if f.Stores != nil {
		m.sites = f.Stores
	}
	plain, err := m.openKeys(f.Keys)
	if err != nil {
		return fmt.Errorf("reading %s: %w", m.sitesPath(), err)
	}
	if plain {
		// Written before keys were sealed: seal them now.
		m.mu.Lock()
		defer m.mu.Unlock()
		if err := m.saveLocked(); err != nil {
			return fmt.Errorf("sealing the private keys in %s: %w", m.sitesPath(), err)
		}
	}
	return nil
}

// saveLocked writes the sites file atomically, readable by its owner only.
func (m *Manager) saveLocked() error {
	sites, keys := m.sealedSites()
	b, err := json.MarshalIndent(sitesFile{Version: sitesVersion, Stores: sites, Keys: keys}, "", "  ")
	if err != nil {
		return err
	}
	path := m.sitesPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

func (m *Manager) sitesPath() string { return filepath.Join(m.dir, "sites.json") }
