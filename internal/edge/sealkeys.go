package edge

import (
	"fmt"
)

// Sealer encrypts values at rest with the operator's master key
// (internal/seal's Box). With one, the stores' own private keys are sealed
// in sites.json instead of kept there in clear (0600).
type Sealer interface {
	Seal(plain []byte, context string) string
	Open(sealed, context string) ([]byte, error)
}

// keyContext binds a sealed key to its store: one store's key cannot be
// moved to another's entry.
func keyContext(store string) string { return "tls-key/" + store }

// sealedSites is what saveLocked writes: the sites without their private
// keys, and the keys sealed, by store.
func (m *Manager) sealedSites() (map[string]*storeSite, map[string]string) {
	if m.o.Sealer == nil {
		return m.sites, nil
	}
	out := make(map[string]*storeSite, len(m.sites))
	keys := map[string]string{}
	for store, ss := range m.sites {
		if len(ss.Site.KeyPEM) == 0 {
			out[store] = ss
			continue
		}
		cp := *ss
		cp.Site.KeyPEM = nil
		out[store] = &cp
		keys[store] = m.o.Sealer.Seal(ss.Site.KeyPEM, keyContext(store))
	}
	return out, keys
}

// openKeys puts the sealed keys read from sites.json back into the sites.
// It reports whether a key was found in clear (written before keys were
// sealed, or without a master key), so that the caller seals it now.
func (m *Manager) openKeys(keys map[string]string) (plainFound bool, err error) {
	for store, sealed := range keys {
		ss := m.sites[store]
		if ss == nil {
			continue
		}
		if m.o.Sealer == nil {
			return false, fmt.Errorf("the private key of %s is sealed, and no master key was given", store)
		}
		key, err := m.o.Sealer.Open(sealed, keyContext(store))
		if err != nil {
			return false, fmt.Errorf("opening the private key of %s (another master key?): %w", store, err)
		}
		ss.Site.KeyPEM = key
	}
	if m.o.Sealer != nil {
		for store, ss := range m.sites {
			if _, sealed := keys[store]; !sealed && len(ss.Site.KeyPEM) > 0 {
				plainFound = true
			}
		}
	}
	return plainFound, nil
}
