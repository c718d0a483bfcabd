package cli

import (
	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/server"
)

// edgeFlags are serve's flags for the router's request path.
type edgeFlags struct {
	trustedProxies string
	accessLog      string
	metrics        string
}

func (f *edgeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.trustedProxies, "trusted-proxies", "", "CIDRs or addresses (comma-separated) of load balancers in front whose X-Forwarded-For chain is kept; from any other peer it is overwritten")
	fl.StringVar(&f.accessLog, "access-log", "", `append a JSON line per request to this file ("-": stdout); off by default`)
	fl.StringVar(&f.metrics, "metrics", "", "also serve Prometheus /metrics without a token on this address (e.g. 127.0.0.1:9100); the API's /metrics needs a read token")
}

func (f *edgeFlags) options() (server.EdgeOptions, error) {
	tp, err := proxy.ParseTrustedProxies(f.trustedProxies)
	if err != nil {
		return server.EdgeOptions{}, usagef("--trusted-proxies: %v", err)
	}
	return server.EdgeOptions{TrustedProxies: tp, AccessLog: f.accessLog, MetricsAddr: f.metrics}, nil
}
