package proxy

import (
	"container/list"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The edge cache keeps answers for fingerprinted asset paths of apps with a
// server (/_next/static/, /_nuxt/, names with a content hash: see
// Fingerprinted), so that the app serves each asset about once per release.
//
// Entries are keyed by the target set that answered, and a deploy publishes
// a new set: a request after a cutover can never get the previous
// release's copy of a path, and the previous release's entries stay until
// its drain ended (then they are dropped). Hot entries live in memory,
// others on disk, each tier with a byte cap, least recently used out
// first. Cache-Control (no-store, private, no-cache, max-age, s-maxage),
// Set-Cookie and Vary are honoured: a Vary'd answer is stored per value of
// the request headers it names, and "Vary: *" is never stored.

// WithEdgeCache turns the edge cache on: memBytes in memory, diskBytes in
// files under dir (emptied at start; "" or 0 keeps no disk tier). Default: off.
func WithEdgeCache(dir string, memBytes, diskBytes int64) Option {
	return func(c *config) { c.cacheDir, c.cacheMem, c.cacheDisk = dir, memBytes, diskBytes }
}

// cacheMaxObject bounds one cached answer; bigger ones pass through.
const cacheMaxObject = 8 << 20

// cacheDefaultTTL is the freshness of a fingerprinted answer that says
// nothing about caching: its name changes with its contents.
const cacheDefaultTTL = 24 * time.Hour

type cacheKey struct {
	set       *targetSet // the release that answered
	host, uri string     // Host and request URI as sent
}

// cached is one stored answer.
type cached struct {
	key      cacheKey
	owner    *service
	vary     []string // request header names the answer varies on
	varyVals []string
	status   int
	header   http.Header
	body     []byte // nil when on disk
	size     int64
	stored   time.Time
	expires  time.Time
	etag     string

	elem   *list.Element // in mem or disk LRU
	onDisk string        // file, when in the disk tier
}

type edgeCache struct {
	dir               string
	memCap, diskCap   int64
	mu                sync.Mutex
	entries           map[cacheKey][]*cached
	mem, disk         *list.List // front: most recently used
	memBytes, dskByte int64
	seq               atomic.Uint64

	hits, misses, stores atomic.Uint64
}

func newEdgeCache(dir string, memCap, diskCap int64) (*edgeCache, error) {
	c := &edgeCache{memCap: memCap, diskCap: diskCap, entries: map[cacheKey][]*cached{}, mem: list.New(), disk: list.New()}
	if dir != "" && diskCap > 0 {
		// Entries belong to this process's target sets: what a previous run
		// left cannot be matched to a release, so it goes.
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("edge cache: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("edge cache: %w", err)
		}
		c.dir = dir
	}
	return c, nil
}

// cacheableRequest says whether req may be answered from (and fill) the cache.
func cacheableRequest(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if _, ok := req.Header["Authorization"]; ok {
		return false
	}
	if _, ok := req.Header["Range"]; ok {
		return false
	}
	if cc := req.Header.Get("Cache-Control"); cc != "" && (strings.Contains(cc, "no-cache") || strings.Contains(cc, "no-store")) {
		return false
	}
	return Fingerprinted(req.URL.Path)
}

// hit is a stored answer as lookup saw it, safe to use after the lock is
// released (the entry may move to disk meanwhile).
type hit struct {
	status int
	header http.Header
	body   []byte
	stored time.Time
	etag   string
}

// lookup returns a fresh stored answer for req from set.
func (c *edgeCache) lookup(set *targetSet, req *http.Request) (hit, bool) {
	e := c.find(set, req)
	if e == nil {
		return hit{}, false
	}
	defer c.mu.Unlock()
	return hit{e.status, e.header, e.body, e.stored, e.etag}, true
}

// find returns the entry with c.mu held, or nil with it released.
func (c *edgeCache) find(set *targetSet, req *http.Request) *cached {
	k := cacheKey{set, req.Host, req.RequestURI}
	now := time.Now()
	c.mu.Lock()
	for _, e := range c.entries[k] {
		if !e.matches(req) {
			continue
		}
		if now.After(e.expires) {
			c.removeLocked(e)
			c.mu.Unlock()
			return nil
		}
		if e.body == nil {
			body, err := os.ReadFile(e.onDisk)
			if err != nil || int64(len(body)) != e.size {
				c.removeLocked(e)
				c.mu.Unlock()
				return nil
			}
			// Back to memory: it is hot again.
			c.disk.Remove(e.elem)
			c.dskByte -= e.size
			os.Remove(e.onDisk)
			e.onDisk, e.body = "", body
			e.elem = c.mem.PushFront(e)
			c.memBytes += e.size
			c.shrinkLocked()
			return e
		}
		c.mem.MoveToFront(e.elem)
		return e
	}
	c.mu.Unlock()
	return nil
}

func (e *cached) matches(req *http.Request) bool {
	for i, h := range e.vary {
		if strings.Join(req.Header.Values(h), ",") != e.varyVals[i] {
			return false
		}
	}
	return true
}

// store keeps an answer if its headers allow it.
func (c *edgeCache) store(svc *service, set *targetSet, req *http.Request, status int, h http.Header, body []byte) {
	ttl, ok := cacheTTL(status, h)
	if !ok || len(body) > cacheMaxObject || int64(len(body)) > c.memCap {
		return
	}
	e := &cached{key: cacheKey{set, req.Host, req.RequestURI}, owner: svc, status: status, header: h, body: body,
		size: int64(len(body)), stored: time.Now(), etag: h.Get("Etag")}
	e.expires = e.stored.Add(ttl)
	for _, v := range h.Values("Vary") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				e.vary = append(e.vary, http.CanonicalHeaderKey(name))
				e.varyVals = append(e.varyVals, strings.Join(req.Header.Values(name), ","))
			}
		}
	}
	c.stores.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, old := range c.entries[e.key] {
		if slicesEqual(old.vary, e.vary) && slicesEqual(old.varyVals, e.varyVals) {
			c.removeLocked(old)
			break
		}
	}
	c.entries[e.key] = append(c.entries[e.key], e)
	e.elem = c.mem.PushFront(e)
	c.memBytes += e.size
	c.shrinkLocked()
}

// cacheTTL reads how long an answer may be kept, and whether at all.
func cacheTTL(status int, h http.Header) (time.Duration, bool) {
	if status != http.StatusOK {
		return 0, false
	}
	if _, ok := h["Set-Cookie"]; ok {
		return 0, false
	}
	for _, v := range h.Values("Vary") {
		if strings.TrimSpace(v) == "*" {
			return 0, false
		}
	}
	cc := strings.ToLower(strings.Join(h.Values("Cache-Control"), ","))
	if cc == "" {
		return cacheDefaultTTL, true
	}
	ttl, explicit := time.Duration(0), false
	for _, d := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch name {
		case "no-store", "private", "no-cache":
			return 0, false
		case "s-maxage":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil {
				// s-maxage wins over max-age for a shared cache.
				return nonZero(time.Duration(n) * time.Second)
			}
		case "max-age":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && !explicit {
				ttl, explicit = time.Duration(n)*time.Second, true
			}
		}
	}
	if !explicit {
		return cacheDefaultTTL, true
	}
	return nonZero(ttl)
}

func nonZero(d time.Duration) (time.Duration, bool) { return d, d > 0 }

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// shrinkLocked moves least recently used entries from memory to disk, and
// drops them from disk, until each tier fits its cap.
func (c *edgeCache) shrinkLocked() {
	for c.memBytes > c.memCap {
		e := c.mem.Back().Value.(*cached)
		c.mem.Remove(e.elem)
		c.memBytes -= e.size
		if c.dir == "" || e.size > c.diskCap || !c.spillLocked(e) {
			c.forgetLocked(e)
		}
	}
	for c.dskByte > c.diskCap {
		c.removeLocked(c.disk.Back().Value.(*cached))
	}
}

// spillLocked writes e's body to a file and moves it to the disk tier.
func (c *edgeCache) spillLocked(e *cached) bool {
	p := filepath.Join(c.dir, strconv.FormatUint(c.seq.Add(1), 36))
	if err := os.WriteFile(p, e.body, 0o600); err != nil {
		return false
	}
	e.onDisk, e.body = p, nil
	e.elem = c.disk.PushFront(e)
	c.dskByte += e.size
	return true
}

// removeLocked drops e from whichever tier holds it.
func (c *edgeCache) removeLocked(e *cached) {
	if e.onDisk != "" {
		c.disk.Remove(e.elem)
		c.dskByte -= e.size
		os.Remove(e.onDisk)
	} else if e.body != nil {
		c.mem.Remove(e.elem)
		c.memBytes -= e.size
	}
	c.forgetLocked(e)
}

// forgetLocked takes e out of the index (its tier already let go of it).
func (c *edgeCache) forgetLocked(e *cached) {
	list := c.entries[e.key]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(c.entries, e.key)
	} else {
		c.entries[e.key] = list
	}
	e.body = nil
}

// retain drops the entries of svc's target sets other than keep (the
// release that serves now), once the previous release's drain ended.
func (c *edgeCache) retain(svc *service, keep *targetSet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, es := range c.entries {
		if k.set == keep || len(es) == 0 || es[0].owner != svc {
			continue
		}
		for _, e := range append([]*cached(nil), es...) {
			c.removeLocked(e)
		}
	}
}

// serveHit writes a stored answer (304 when the client has it already).
func (e hit) serveHit(w http.ResponseWriter, req *http.Request) (int, int64) {
	h := w.Header()
	for k, v := range e.header {
		h[k] = v
	}
	h["Age"] = []string{strconv.Itoa(int(time.Since(e.stored).Seconds()))}
	h["X-Cache"] = hitValue
	if e.etag != "" && etagMatch(req.Header.Get("If-None-Match"), e.etag) {
		for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding"} {
			delete(h, k)
		}
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified, 0
	}
	if req.Method == http.MethodHead {
		w.WriteHeader(e.status)
		return e.status, 0
	}
	return e.status, int64(writeCorked(w, req, e.status, e.body))
}

var hitValue = []string{"HIT"}

func etagMatch(inm, etag string) bool {
	if inm == "" {
		return false
	}
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// capture tees a cacheable answer on its way to the client.
type capture struct {
	http.ResponseWriter
	status int
	body   []byte
	over   bool
}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
		c.Header().Set("X-Cache", "MISS")
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if !c.over {
		if len(c.body)+len(p) > cacheMaxObject {
			c.over, c.body = true, nil
		} else {
			c.body = append(c.body, p...)
		}
	}
	return c.ResponseWriter.Write(p)
}

func (c *capture) Flush() { flush(c.ResponseWriter) }

func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// serveCacheable answers a cacheable request from the cache, or forwards
// it and stores the answer.
func (r *Router) serveCacheable(svc *service, w http.ResponseWriter, req *http.Request) (int, int64, *target, string) {
	set := svc.active.Load()
	if e, ok := r.cache.lookup(set, req); ok {
		r.cache.hits.Add(1)
		st, n := e.serveHit(w, req)
		return st, n, nil, "hit"
	}
	r.cache.misses.Add(1)
	cw := &capture{ResponseWriter: w}
	if req.Method == http.MethodHead {
		cw.over = true // a HEAD has no body to keep
	}
	status, n, t := r.forward(svc, cw, req)
	if !cw.over && cw.status == http.StatusOK && t != nil && svc.active.Load() == set {
		if cl := w.Header().Get("Content-Length"); cl == "" || cl == strconv.Itoa(len(cw.body)) {
			h := w.Header().Clone()
			h.Del("X-Cache")
			h.Del("Date")
			if cl == "" {
				h.Set("Content-Length", strconv.Itoa(len(cw.body)))
			}
			r.cache.store(svc, set, req, http.StatusOK, h, cw.body)
		}
	}
	return status, n, t, "miss"
}

func (r *Router) writeCacheMetrics(m *expo) {
	c := r.cache
	if c == nil {
		return
	}
	c.mu.Lock()
	mem, disk, n := c.memBytes, c.dskByte, 0
	for _, es := range c.entries {
		n += len(es)
	}
	c.mu.Unlock()
	hits, misses := c.hits.Load(), c.misses.Load()
	m.family("slipway_edge_cache_requests_total", "counter", "Cacheable requests by result.")
	m.sample("slipway_edge_cache_requests_total", hits, "result", "hit")
	m.sample("slipway_edge_cache_requests_total", misses, "result", "miss")
	m.family("slipway_edge_cache_hit_ratio", "gauge", "Hits over cacheable requests since start.")
	ratio := 0.0
	if hits+misses > 0 {
		ratio = float64(hits) / float64(hits+misses)
	}
	m.sampleFloat("slipway_edge_cache_hit_ratio", ratio)
	m.family("slipway_edge_cache_bytes", "gauge", "Bytes of cached answers by tier.")
	m.sample("slipway_edge_cache_bytes", uint64(mem), "tier", "memory")
	m.sample("slipway_edge_cache_bytes", uint64(disk), "tier", "disk")
	m.family("slipway_edge_cache_entries", "gauge", "Cached answers.")
	m.sample("slipway_edge_cache_entries", uint64(n))
}
