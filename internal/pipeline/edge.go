package pipeline

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/slipway-dev/slipway/internal/proxy"
)

// EdgeConfigurer applies a store's site settings (TLS, HSTS, error pages)
// to its hosts; internal/edge implements it.
type EdgeConfigurer interface {
	Configure(ctx context.Context, store string, hosts []string, site proxy.Site) error
	// Forget drops a removed store's names: no TLS, no renewals.
	Forget(store string) error
}

// TLSVerifier tells the verify stage where the router serves TLS, which
// hosts it serves there, and which roots their certificates must chain to.
type TLSVerifier interface {
	TLSAddr() string
	TLSRoots() *x509.CertPool
	ServesTLS(host string) bool
	// DNSProblem says why host has no certificate yet when it does not
	// resolve to this host ("" otherwise): a DNS warning, not a failure.
	DNSProblem(host string) string
}

// configureEdge hands the store's site settings to the edge before the
// swap, so that a new domain's certificate is ordered while the old
// release still serves, and a bad certificate fails the deploy before any
// traffic moves.
func (d *Deployer) configureEdge(ctx context.Context, req DeployRequest, say func(string, string, ...any)) error {
	if d.Edge == nil {
		return nil
	}
	if err := d.Edge.Configure(ctx, req.Store, allHosts(req), req.Site); err != nil {
		return fmt.Errorf("configuring TLS and pages: %w", err)
	}
	if d.TLSVerify != nil {
		var tlsHosts []string
		for _, h := range allHosts(req) {
			if d.TLSVerify.ServesTLS(h) {
				tlsHosts = append(tlsHosts, h)
			}
		}
		if len(tlsHosts) > 0 {
			say(StageDeploy, "https: %v", tlsHosts)
		}
	}
	return nil
}
