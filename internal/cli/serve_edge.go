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
	cacheMemMB     int64
	cacheDiskMB    int64
}

func (f *edgeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.trustedProxies, "trusted-proxies", "", "CIDRs or addresses (comma-separated) of load balancers in front whose X-Forwarded-For chain is kept; from any other peer it is overwritten")
	fl.StringVar(&f.accessLog, "access-log", "", `append a JSON line per request to this file ("-": stdout); off by default`)
	fl.Int64Var(&f.cacheMemMB, "edge-cache-memory", 64, "MiB of memory for the edge cache of fingerprinted assets (/_next/static/, /_nuxt/, hashed names); 0 turns the cache off")
	fl.Int64Var(&f.cacheDiskMB, "edge-cache-disk", 1024, "MiB of disk (<state-dir>/edge-cache) for the edge cache past its memory")
	fl.StringVar(&f.metrics, "metrics", "", "also serve Prometheus /metrics without a token on this address (e.g. 127.0.0.1:9100); the API's /metrics needs a read token")
}

func (f *edgeFlags) options() (server.EdgeOptions, error) {
	tp, err := proxy.ParseTrustedProxies(f.trustedProxies)
	if err != nil {
		return server.EdgeOptions{}, usagef("--trusted-proxies: %v", err)
	}
	if f.cacheMemMB < 0 || f.cacheDiskMB < 0 {
		return server.EdgeOptions{}, usagef("--edge-cache-memory and --edge-cache-disk take a size in MiB, 0 or more")
	}
	return server.EdgeOptions{TrustedProxies: tp, AccessLog: f.accessLog, MetricsAddr: f.metrics,
		CacheMemory: f.cacheMemMB << 20, CacheDisk: f.cacheDiskMB << 20}, nil
}
