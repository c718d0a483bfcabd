package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Router is an http.Handler that routes each request by its Host to the
// active targets of one service. Routing is lock-free: it reads an immutable
// host table and each service's active target set through atomic pointers,
// which Deploy and Remove replace under Router.mu.
type Router struct {
	cfg       config
	fwd       *forwarding
	statePath string

	mu       sync.Mutex // serialises changes: services, table, the state file
	services map[string]*service
	table    atomic.Pointer[routeTable]
	locks    map[string]chan struct{} // per-service deploy locks, never deleted (one per name ever deployed)

	unrouted atomic.Uint64 // requests for hosts no service routes
	certs    certExpiry
	alog     *accessLog
	cache    *edgeCache

	// Every upstream of a target still in use, for the reaper.
	upsMu sync.Mutex
	ups   map[*upstream]struct{}

	pages   atomic.Pointer[pageTable] // stores' own 502/503 pages (site.go)
	pagesMu sync.Mutex

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

var _ http.Handler = (*Router)(nil)

// service is one deployed app: its hosts and its active target set.
type service struct {
	name   string
	active atomic.Pointer[targetSet]

	// Guarded by Router.mu.
	hosts      []string
	health     HealthCheck
	draining   map[*target]struct{}
	lastDeploy time.Time

	counters counters
}

// targetSet is immutable once published; a deploy publishes a new one.
type targetSet struct {
	targets []*target
	next    atomic.Uint32
	// maintenance is the 503 message of a stopped service (no targets).
	maintenance string
	// static, when set, is the release's files, served by the router (an
	// app that runs no process); targets is then empty.
	static *staticSite
}

// pick chooses the target with the fewest requests in flight, starting the
// scan at a rotating index so that ties are shared round robin. Targets the
// health monitor marked down, and not, are skipped; nil means nothing is
// live.
func (s *targetSet) pick(not *target) *target {
	n := len(s.targets)
	switch n {
	case 0:
		return nil
	case 1:
		if t := s.targets[0]; !t.down.Load() && t != not {
			return t
		}
		return nil
	}
	start := int(s.next.Add(1) % uint32(n))
	var best *target
	var bestLoad int64
	for i := 0; i < n; i++ {
		t := s.targets[(start+i)%n]
		if t.down.Load() || t == not {
			continue
		}
		if l := t.inflight.Load(); best == nil || l < bestLoad {
			best, bestLoad = t, l
		}
	}
	return best
}

func (s *targetSet) addrs() []string {
	out := make([]string, len(s.targets))
	for i, t := range s.targets {
		out[i] = t.addr
	}
	return out
}

type config struct {
	log                   *slog.Logger
	retryAfter            time.Duration
	dialTimeout           time.Duration
	responseHeaderTimeout time.Duration
	maxIdlePerTarget      int
	drainTimeout          time.Duration
	trustForwarded        bool
	trustedProxies        []netip.Prefix
	accessLog             io.Writer
	cacheDir              string
	cacheMem, cacheDisk   int64
	monitorInterval       time.Duration
}

// Option configures a Router.
type Option func(*config)

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithRetryAfter sets the Retry-After of the 503 page. Default: 5s.
func WithRetryAfter(d time.Duration) Option { return func(c *config) { c.retryAfter = d } }

// WithDialTimeout bounds connecting to a target. Default: 5s.
func WithDialTimeout(d time.Duration) Option { return func(c *config) { c.dialTimeout = d } }

// WithResponseHeaderTimeout bounds the wait for a target's response headers
// (not the body, so streams are unaffected); 504 after it. Default: 60s, like
// nginx's proxy_read_timeout.
func WithResponseHeaderTimeout(d time.Duration) Option {
	return func(c *config) { c.responseHeaderTimeout = d }
}

// WithMaxIdleConnsPerTarget sizes each target's keep-alive pool. Default: 512.
func WithMaxIdleConnsPerTarget(n int) Option { return func(c *config) { c.maxIdlePerTarget = n } }

// WithDrainTimeout sets the drain used by Remove and by deploys that do not
// set one. Default: 30s.
func WithDrainTimeout(d time.Duration) Option { return func(c *config) { c.drainTimeout = d } }

// WithTrustForwardedHeaders keeps the inbound X-Forwarded-Proto and
// X-Forwarded-Host, for a router behind a trusted TLS terminator. Default:
// false (the router is the edge and sets them itself).
func WithTrustForwardedHeaders(on bool) Option { return func(c *config) { c.trustForwarded = on } }

// WithTrustedProxies names the peers (load balancers, CDNs) whose
// X-Forwarded-For chain, X-Forwarded-Proto and X-Forwarded-Host are kept;
// from any other peer X-Forwarded-For is replaced by the peer's address.
// Default: none (see ParseTrustedProxies).
func WithTrustedProxies(p []netip.Prefix) Option {
	return func(c *config) { c.trustedProxies = slices.Clone(p) }
}

// WithHealthMonitor checks the active targets every interval after they are
// live, taking a target out of rotation after three failures in a row.
// Default: off.
func WithHealthMonitor(interval time.Duration) Option {
	return func(c *config) { c.monitorInterval = interval }
}

// NewRouter returns a router. With a non-empty statePath it saves its state
// there on every change and, if the file exists, starts from it: the last
// services, hosts and targets serve at once (targets are assumed alive). A
// state file that cannot be read is an error rather than an empty router,
// which would answer 404 for every store.
func NewRouter(statePath string, opts ...Option) (*Router, error) {
	cfg := config{
		log:                   slog.Default(),
		retryAfter:            5 * time.Second,
		dialTimeout:           5 * time.Second,
		responseHeaderTimeout: 60 * time.Second,
		maxIdlePerTarget:      512,
		drainTimeout:          30 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	r := &Router{
		cfg:       cfg,
		fwd:       &forwarding{trusted: cfg.trustedProxies, trustAll: cfg.trustForwarded},
		statePath: statePath,
		services:  map[string]*service{},
		locks:     map[string]chan struct{}{},
		ups:       map[*upstream]struct{}{},
		stop:      make(chan struct{}),
	}
	if cfg.accessLog != nil {
		r.alog = newAccessLog(cfg.accessLog)
	}
	if cfg.cacheMem > 0 {
		c, err := newEdgeCache(cfg.cacheDir, cfg.cacheMem, cfg.cacheDisk)
		if err != nil {
			return nil, err
		}
		r.cache = c
	}
	r.table.Store(&routeTable{})
	if statePath != "" {
		if err := r.load(); err != nil {
			return nil, err
		}
	}
	if cfg.monitorInterval > 0 {
		r.wg.Add(1)
		go r.monitor(cfg.monitorInterval)
	}
	r.wg.Add(1)
	go r.reaper(reapInterval)
	return r, nil
}

// reapInterval is how soon a target sees a request whose client left
// cancelled (its connection closed).
const reapInterval = 200 * time.Millisecond

// reaper closes target connections of requests whose client has left, and
// forgets the upstreams of targets that are gone.
func (r *Router) reaper(every time.Duration) {
	defer r.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		r.upsMu.Lock()
		ups := make([]*upstream, 0, len(r.ups))
		for u := range r.ups {
			if u.retired.Load() && u.open() == 0 {
				delete(r.ups, u)
				continue
			}
			ups = append(ups, u)
		}
		r.upsMu.Unlock()
		for _, u := range ups {
			u.reap()
		}
		if r.alog != nil {
			r.alog.flush()
		}
	}
}

// Close stops the background health monitor. In-flight requests are not
// affected; shut the http.Server down for that.
func (r *Router) Close() error {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
	if r.alog != nil {
		r.alog.flush()
	}
	return nil
}

// ServeHTTP routes the request by host: 404 for an unknown host, 503 when the
// service has no live target, else the request goes to one active target.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	svc := r.table.Load().lookup(requestHost(req.Host))
	if svc == nil {
		r.errorPage(w, req, http.StatusNotFound, "No application is deployed for this host name.")
		r.unrouted.Add(1)
		if r.alog != nil {
			r.alog.write(&entry{start: start, req: req, status: http.StatusNotFound})
		}
		return
	}
	var status int
	var n int64
	var t *target
	var cache string
	switch set := svc.active.Load(); {
	case set.maintenance != "":
		r.errorPage(w, req, http.StatusServiceUnavailable, set.maintenance)
		status = http.StatusServiceUnavailable
	case set.static != nil:
		status, n = r.serveStatic(svc, set.static, w, req)
	case r.cache != nil && cacheableRequest(req):
		status, n, t, cache = r.serveCacheable(svc, w, req)
	default:
		status, n, t = r.forward(svc, w, req)
	}
	svc.counters.record(status, req)
	svc.counters.lat.observe(time.Since(start), n)
	if r.alog != nil {
		e := entry{start: start, service: svc.name, req: req, status: status, bytes: n, cache: cache}
		if t != nil {
			e.target = t.addr
		}
		r.alog.write(&e)
	}
}

// forward sends req to one of svc's active targets. A request that could
// not reach its target (refused, reset before any answer) goes once to
// another live target: only bodyless idempotent requests can fail that way
// (the synchronous path), so sending them again is safe.
func (r *Router) forward(svc *service, w http.ResponseWriter, req *http.Request) (status int, n int64, t *target) {
	var failed *target
	var failure error
	// acquire fails only if the set was swapped after we loaded it; the
	// next load sees the new set. Bounded in case of back-to-back swaps.
	for range 8 {
		t = svc.active.Load().pick(failed)
		if t == nil {
			break
		}
		if !t.acquire() {
			continue
		}
		status, n, err := t.serve(w, req, r.fwd)
		if err == nil {
			return status, n, t
		}
		if failed == nil && retryable(err) && req.Context().Err() == nil && !t.up.killed.Load() {
			t.log.Info("target unreachable; trying another", "path", req.URL.Path, "error", err)
			failed, failure = t, err
			continue
		}
		return r.answerError(t, w, req, err), 0, t
	}
	if failed != nil {
		return r.answerError(failed, w, req, failure), 0, failed
	}
	r.errorPage(w, req, http.StatusServiceUnavailable, "This application is not running right now. Please retry in a moment.")
	return http.StatusServiceUnavailable, 0, nil
}

// Counters are a service's request totals since the router started.
type Counters struct {
	Requests  uint64 `json:"requests"`
	Status1xx uint64 `json:"status_1xx"` // switched protocols (websockets)
	Status2xx uint64 `json:"status_2xx"`
	Status3xx uint64 `json:"status_3xx"`
	Status4xx uint64 `json:"status_4xx"`
	Status5xx uint64 `json:"status_5xx"`
	// ClientGone counts requests whose client hung up before the answer.
	ClientGone uint64 `json:"client_gone"`
}

type counters struct {
	lat        latency
	requests   atomic.Uint64
	class      [6]atomic.Uint64
	clientGone atomic.Uint64
}

func (c *counters) record(status int, req *http.Request) {
	c.requests.Add(1)
	switch {
	case status == 499:
		c.clientGone.Add(1)
	case status == 0:
		// Nothing went through the writer: the connection was hijacked
		// for an upgrade (ReverseProxy writes the 101 itself) or the
		// handler wrote nothing at all.
		if req.Header.Get("Upgrade") != "" {
			c.class[1].Add(1)
		} else {
			c.class[2].Add(1)
		}
	case status >= 100 && status < 600:
		c.class[status/100].Add(1)
	}
}

func (c *counters) snapshot() Counters {
	return Counters{
		Requests:   c.requests.Load(),
		Status1xx:  c.class[1].Load(),
		Status2xx:  c.class[2].Load(),
		Status3xx:  c.class[3].Load(),
		Status4xx:  c.class[4].Load(),
		Status5xx:  c.class[5].Load(),
		ClientGone: c.clientGone.Load(),
	}
}

// statusWriter remembers the final status. Unwrap lets ReverseProxy reach
// the server's Flusher and Hijacker through http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols || code == 499) {
		w.status = code
	}
	if code == 499 {
		return // not a real status; the client is gone
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TargetStatus describes one target of a service.
type TargetStatus struct {
	Address  string `json:"address"`
	Healthy  bool   `json:"healthy"` // false once the health monitor took it out of rotation
	InFlight int64  `json:"in_flight"`
	Requests uint64 `json:"requests"`
}

// ServiceStatus is a snapshot of one service for a status API.
type ServiceStatus struct {
	Name       string         `json:"name"`
	Hosts      []string       `json:"hosts"`
	Health     HealthCheck    `json:"health"`
	Targets    []TargetStatus `json:"targets"`
	Draining   []TargetStatus `json:"draining,omitempty"`
	LastDeploy time.Time      `json:"last_deploy,omitzero"`
	Counters   Counters       `json:"counters"`
	// Maintenance is the 503 message of a stopped service.
	Maintenance string `json:"maintenance,omitempty"`
	// Static is the directory of a static site's release.
	Static string `json:"static,omitempty"`
}

func targetStatus(t *target) TargetStatus {
	return TargetStatus{Address: t.addr, Healthy: !t.down.Load(), InFlight: t.inflight.Load(), Requests: t.requests.Load()}
}

// Services returns every service, sorted by name.
func (r *Router) Services() []ServiceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ServiceStatus, 0, len(r.services))
	for _, s := range r.services {
		st := ServiceStatus{
			Name:       s.name,
			Hosts:      slices.Clone(s.hosts),
			Health:     s.health,
			Targets:    []TargetStatus{},
			LastDeploy: s.lastDeploy,
			Counters:   s.counters.snapshot(),
		}
		st.Maintenance = s.active.Load().maintenance
		if sp := s.active.Load().staticSpec(); sp != nil {
			st.Static = sp.Dir
		}
		for _, t := range s.active.Load().targets {
			st.Targets = append(st.Targets, targetStatus(t))
		}
		for t := range s.draining {
			st.Draining = append(st.Draining, targetStatus(t))
		}
		sort.Slice(st.Draining, func(i, j int) bool { return st.Draining[i].Address < st.Draining[j].Address })
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Remove stops routing a service's hosts (they answer 404 from now on),
// then drains its targets with the router's drain timeout and returns their
// addresses, which the caller may stop once Remove returns. It waits for a
// deploy of the same service in progress.
func (r *Router) Remove(ctx context.Context, name string) ([]string, error) {
	unlock, err := r.lockService(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("removing %q: %w", name, err)
	}
	r.mu.Lock()
	svc := r.services[name]
	if svc == nil {
		r.mu.Unlock()
		unlock()
		return nil, fmt.Errorf("removing %q: %w", name, ErrUnknownService)
	}
	if err := r.saveLocked(name, nil); err != nil {
		r.mu.Unlock()
		unlock()
		return nil, fmt.Errorf("removing %q: %w", name, err)
	}
	delete(r.services, name)
	r.rebuildTableLocked()
	old := svc.active.Load()
	r.mu.Unlock()
	unlock()
	r.cfg.log.Info("service removed", "service", name, "targets", old.addrs())
	r.drainAll(svc, old.targets, r.cfg.drainTimeout)
	if old.static != nil {
		old.static.drain(r.cfg.drainTimeout)
	}
	return old.addrs(), nil
}

// lockService takes the per-service deploy lock, waiting for ctx at most.
func (r *Router) lockService(ctx context.Context, name string) (func(), error) {
	r.mu.Lock()
	l, ok := r.locks[name]
	if !ok {
		l = make(chan struct{}, 1)
		r.locks[name] = l
	}
	r.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for another deploy of the service: %w", context.Cause(ctx))
	}
}

// rebuildTableLocked publishes a new host table from r.services.
func (r *Router) rebuildTableLocked() {
	t := &routeTable{exact: map[string]*service{}, wildcard: map[string]*service{}}
	for _, s := range r.services {
		for _, h := range s.hosts {
			if suffix, ok := cutWildcard(h); ok {
				t.wildcard[suffix] = s
			} else {
				t.exact[h] = s
			}
		}
	}
	r.table.Store(t)
}

// cutWildcard turns "*.example.com" into ".example.com".
func cutWildcard(h string) (string, bool) {
	if len(h) > 2 && h[0] == '*' && h[1] == '.' {
		return h[1:], true
	}
	return "", false
}

// hostOwnerLocked returns the service other than name that routes host.
func (r *Router) hostOwnerLocked(name, host string) string {
	for _, s := range r.services {
		if s.name != name && slices.Contains(s.hosts, host) {
			return s.name
		}
	}
	return ""
}

// drainAll drains targets concurrently; the service lists them as draining
// meanwhile. It returns the number of requests cut at the deadline.
func (r *Router) drainAll(svc *service, ts []*target, timeout time.Duration) int {
	if len(ts) == 0 {
		return 0
	}
	r.mu.Lock()
	if svc.draining == nil {
		svc.draining = map[*target]struct{}{}
	}
	for _, t := range ts {
		svc.draining[t] = struct{}{}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	var cut atomic.Int64
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cut.Add(int64(t.drain(timeout)))
		}()
	}
	wg.Wait()
	r.mu.Lock()
	for _, t := range ts {
		delete(svc.draining, t)
	}
	r.mu.Unlock()
	if r.cache != nil {
		// The previous release's answers were kept through its drain; a
		// removed service keeps none.
		keep := svc.active.Load()
		r.mu.Lock()
		if r.services[svc.name] != svc {
			keep = nil
		}
		r.mu.Unlock()
		r.cache.retain(svc, keep)
	}
	return int(cut.Load())
}
