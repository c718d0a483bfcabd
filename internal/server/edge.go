package server

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/process"
	"github.com/slipway-dev/slipway/internal/proxy"
)

// EdgeOptions configure the router's request path.
type EdgeOptions struct {
	// TrustedProxies are the peers whose X-Forwarded-For chain is kept
	// (serve --trusted-proxies); from others it is overwritten.
	TrustedProxies []netip.Prefix
	// AccessLog is a file to append JSON access lines to, "-" for stdout;
	// "" (default) keeps none.
	AccessLog string
	// MetricsAddr, when set, also serves /metrics without a token on this
	// TCP address (for a Prometheus on the same host or network). /metrics
	// on the API needs a read token either way.
	MetricsAddr string
	// CacheMemory and CacheDisk cap the edge cache of fingerprinted assets
	// (bytes; 0 memory: no cache). The disk tier is <data-dir>/edge-cache.
	CacheMemory, CacheDisk int64
}

// edgeRouterOptions turns EdgeOptions into router options.
func (s *Server) edgeRouterOptions() ([]proxy.Option, error) {
	e := s.o.Edge
	opts := []proxy.Option{proxy.WithTrustedProxies(e.TrustedProxies)}
	if e.CacheMemory > 0 {
		opts = append(opts, proxy.WithEdgeCache(filepath.Join(s.o.DataDir, "edge-cache"), e.CacheMemory, e.CacheDisk))
	}
	switch e.AccessLog {
	case "":
	case "-":
		opts = append(opts, proxy.WithAccessLog(os.Stdout))
	default:
		f, err := os.OpenFile(e.AccessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--access-log: %w", err)
		}
		s.closers = append(s.closers, f)
		opts = append(opts, proxy.WithAccessLog(f))
	}
	return opts, nil
}

// metricsHandler serves the router's metrics plus the release counts.
func (s *Server) metricsHandler() http.Handler {
	return s.Router.MetricsHandler(s.writeReleaseMetrics)
}

// writeReleaseMetrics appends deploys and their results: releases per store
// and status, from the state db (so the counts survive restarts).
func (s *Server) writeReleaseMetrics(w io.Writer) {
	rows, err := s.State.SQL().Query(`SELECT store, status, COUNT(*) FROM releases GROUP BY store, status ORDER BY store, status`)
	if err != nil {
		s.log.Warn("metrics: counting releases", "error", err)
		return
	}
	defer rows.Close()
	m := proxy.NewMetricsWriter(w)
	m.Family("slipway_releases", "gauge", "Releases (deploys) recorded per store by result: live, superseded, failed, interrupted, deploying.")
	for rows.Next() {
		var store, status string
		var n int
		if err := rows.Scan(&store, &status, &n); err != nil {
			return
		}
		m.Sample("slipway_releases", float64(n), "store", store, "status", status)
	}
}

// mountMetrics adds GET /metrics to the API (read scope).
func (s *Server) mountMetrics() {
	s.Handle("GET /metrics", auth.ScopeRead, s.metricsHandler())
}

// serveMetrics starts the --metrics listener, if any.
func (s *Server) serveMetrics() error {
	addr := s.o.Edge.MetricsAddr
	if addr == "" {
		return nil
	}
	ln, err := s.listen("metrics", "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.extra = append(s.extra, srv)
	s.mu.Unlock()
	go srv.Serve(ln)
	s.log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

// staticUnpacker unpacks static sites' images for the router: the process
// driver does it for its own instances already; with a container runtime a
// process driver under <data-dir>/static does it (it runs nothing).
func (s *Server) staticUnpacker() driver.Unpacker {
	if u, ok := s.Driver.(driver.Unpacker); ok {
		return u
	}
	u, err := process.New(filepath.Join(s.o.DataDir, "static"))
	if err != nil {
		s.log.Warn("static sites cannot be served on this host", "error", err)
		return nil
	}
	return u
}
