package pipeline

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/proxy"
)

// SiteFor reads a store's edge settings and the files they name (its own
// certificate and key, its error pages) from the monorepo.
func SiteFor(cfg *config.Config, store string) (proxy.Site, error) {
	spec := cfg.Site(store)
	site := proxy.Site{TLS: spec.TLS.Mode, HSTS: spec.HSTS}
	read := func(key, rel string) ([]byte, error) {
		if rel == "" {
			return nil, nil
		}
		b, err := os.ReadFile(filepath.Join(cfg.Root, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("store %s: %s: %w", store, key, err)
		}
		return b, nil
	}
	var err error
	if spec.TLS.Mode == config.TLSCustom {
		if site.CertPEM, err = read("tls.cert", spec.TLS.Cert); err != nil {
			return site, err
		}
		if site.KeyPEM, err = read("tls.key", spec.TLS.Key); err != nil {
			return site, err
		}
	}
	p503, err := read("errorPages.503", spec.ErrorPages.Unavailable)
	if err != nil {
		return site, err
	}
	p502, err := read("errorPages.502", spec.ErrorPages.BadGateway)
	if err != nil {
		return site, err
	}
	site.Pages = proxy.Pages{Unavailable: string(p503), BadGateway: string(p502)}
	return site, nil
}
