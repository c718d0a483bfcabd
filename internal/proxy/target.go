package proxy

import (
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"
)

// target is one backend instance (host:port). It counts its in-flight
// requests so that a drain knows when it is idle, and it can cut every
// request it still carries when a drain deadline passes.
type target struct {
	addr  string
	proxy *httputil.ReverseProxy
	up    *upstream
	log   *slog.Logger

	// inflight and draining are plain atomics rather than a mutex because
	// acquire/release sit on the request path. The protocol (acquire: add,
	// then check draining; drain: set draining, then read inflight) relies on
	// Go atomics being sequentially consistent: a request either sees the
	// drain and backs off, or the drain sees the request and waits for it.
	inflight atomic.Int64
	draining atomic.Bool
	idle     chan struct{} // poked when a request ends during a drain

	down     atomic.Bool // set by the background health monitor
	fails    atomic.Int32
	requests atomic.Uint64
}

func (r *Router) newTarget(addr string) *target {
	t := &target{
		addr: addr,
		log:  r.cfg.log.With("target", addr),
		idle: make(chan struct{}, 1),
	}
	// One upstream (connection pool) per target, so that a drain can
	// close exactly this target's connections.
	t.up = newUpstream(addr, r.cfg)
	r.upsMu.Lock()
	r.ups[t.up] = struct{}{}
	r.upsMu.Unlock()
	t.proxy = &httputil.ReverseProxy{
		Rewrite:   r.rewriteFor(t),
		Transport: t.up,
		// Zero, not -1: ReverseProxy already flushes every write of a
		// text/event-stream or unknown-length (chunked) response, which is
		// what streams are. -1 would also flush fixed-length responses, and it
		// flushes headers from a timer goroutine first: two writes instead of
		// one for every small response (measured: ~25% of the router's CPU).
		FlushInterval: 0,
		BufferPool:    bufferPool{},
		ErrorHandler:  r.proxyError(t),
		ErrorLog:      log.New(slogWriter{t.log}, "", 0),
	}
	return t
}

// acquire registers a request; false means the target is draining (it was
// swapped out after the caller loaded the target set) and the caller should
// pick again from the current set.
func (t *target) acquire() bool {
	t.inflight.Add(1)
	if t.draining.Load() {
		t.release()
		return false
	}
	return true
}

func (t *target) release() {
	if t.inflight.Add(-1) == 0 && t.draining.Load() {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
}

// serve proxies one request that acquire admitted, and releases it. An
// error (synchronous path only) means nothing was written to w.
func (t *target) serve(w http.ResponseWriter, req *http.Request, fwd *forwarding) (status int, n int64, err error) {
	defer t.release()
	t.requests.Add(1)
	if fastEligible(req) {
		return t.up.serveFast(w, req, fwd)
	}
	sw := &statusWriter{ResponseWriter: w}
	t.proxy.ServeHTTP(sw, req)
	return sw.status, sw.bytes, nil
}

// drain stops new requests reaching t, waits up to timeout for those in
// flight, then closes whatever is left (streams, websockets, slow requests).
// It returns how many requests were cut.
func (t *target) drain(timeout time.Duration) (cut int) {
	t.draining.Store(true)
	defer t.up.retired.Store(true)
	defer t.up.closeIdle()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for t.inflight.Load() > 0 {
		select {
		case <-t.idle:
		case <-timer.C:
			cut = int(t.inflight.Load())
			if cut == 0 {
				return 0
			}
			t.log.Warn("drain timeout: closing requests still running", "requests", cut, "timeout", timeout)
			// Closing the connections ends every request on them, and the
			// upgraded ones (websockets) too.
			t.up.kill()
			// Requests whose connection was closed unwind quickly; wait a little so that the
			// caller may stop the instance knowing nothing uses it.
			grace := time.NewTimer(2 * time.Second)
			defer grace.Stop()
			for t.inflight.Load() > 0 {
				select {
				case <-t.idle:
				case <-grace.C:
					return cut
				}
			}
			return cut
		}
	}
	return 0
}

// close releases a target that never served (a failed gate).
func (t *target) close() {
	t.up.retired.Store(true)
	t.draining.Store(true)
	t.up.kill()
}

func (r *Router) rewriteFor(t *target) func(*httputil.ProxyRequest) {
	fwd := r.fwd
	return func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme = "http"
		pr.Out.URL.Host = t.addr
		pr.Out.Host = pr.In.Host // apps see the name the visitor used
		// Passed through verbatim: ReverseProxy would drop query parameters it
		// cannot parse, and apps may depend on them.
		pr.Out.URL.RawQuery = pr.In.URL.RawQuery
		fwd.rewrite(pr)
	}
}

// proxyError is ReverseProxy's error handler: it answers like the
// synchronous path does (answerError).
func (r *Router) proxyError(t *target) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, req *http.Request, err error) {
		r.answerError(t, w, req, err)
	}
}

// answerError answers for a request the backend did not answer: 504 for a
// response-header timeout, 503 when a drain cut it, nothing when the client
// left (499 in the counters, nginx's code for it), and 502 otherwise
// (refused, reset, closed mid-request). It returns the status.
func (r *Router) answerError(t *target, w http.ResponseWriter, req *http.Request, err error) int {
	var ne net.Error
	switch {
	case t.up.killed.Load():
		t.log.Info("request cut by drain timeout", "path", req.URL.Path)
		r.errorPage(w, req, http.StatusServiceUnavailable, "This request was interrupted by a deploy. Please retry.")
		return http.StatusServiceUnavailable
	case req.Context().Err() != nil:
		w.WriteHeader(499)
		return 499
	case errors.As(err, &ne) && ne.Timeout():
		t.log.Warn("backend timed out", "path", req.URL.Path, "error", err)
		r.errorPage(w, req, http.StatusGatewayTimeout, "The application did not answer in time.")
		return http.StatusGatewayTimeout
	default:
		t.log.Warn("backend failed", "path", req.URL.Path, "error", err)
		r.errorPage(w, req, http.StatusBadGateway, "The application failed to answer this request.")
		return http.StatusBadGateway
	}
}

// slogWriter sends ReverseProxy's own log lines (body copy errors, mostly
// clients that hung up) to slog at debug level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(trimNL(p)))
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == '\n' {
		p = p[:len(p)-1]
	}
	return p
}
