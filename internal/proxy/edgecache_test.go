package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// assetBackend answers every path with "<release>:<path>" and the headers
// set in hdr, counting what it served.
func assetBackend(t *testing.T, release string, hdr map[string]string) (*backend, *atomic.Int64) {
	b := newBackend(t, release)
	var n atomic.Int64
	b.handle(func(w http.ResponseWriter, req *http.Request) {
		n.Add(1)
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.Write([]byte(release + ":" + req.URL.Path + ":" + req.Header.Get("Accept-Encoding")))
	})
	return b, &n
}

func cget(t *testing.T, front, path string, h map[string]string) (string, string) {
	res := staticGet(t, front, path, h)
	return body(res), res.Header.Get("X-Cache")
}

const asset = "/_next/static/chunks/main-3c2f7a1b9e4d5f60.js"

func TestEdgeCacheHitsAndReleases(t *testing.T) {
	r, front := newTestRouter(t, WithEdgeCache("", 1<<20, 0))
	v1, n1 := assetBackend(t, "v1", map[string]string{"Cache-Control": "public, max-age=31536000, immutable"})
	deploy(t, r, "us/site", []string{"site.localhost"}, v1.addr)
	if b, xc := cget(t, front.URL, asset, nil); b != "v1:"+asset+":" || xc != "MISS" {
		t.Fatalf("first: %q %q", b, xc)
	}
	for range 5 {
		if b, xc := cget(t, front.URL, asset, nil); b != "v1:"+asset+":" || xc != "HIT" {
			t.Fatalf("again: %q %q", b, xc)
		}
	}
	if n1.Load() != 1 {
		t.Errorf("the app served the asset %d times, want 1", n1.Load())
	}
	// Not fingerprinted: never cached.
	cget(t, front.URL, "/page", nil)
	cget(t, front.URL, "/page", nil)
	if n1.Load() != 3 {
		t.Errorf("uncacheable path: app saw %d requests, want 3", n1.Load())
	}
	// A new release never gets the previous one's copy, even with the same path.
	v2, n2 := assetBackend(t, "v2", map[string]string{"Cache-Control": "public, max-age=31536000, immutable"})
	deploy(t, r, "us/site", nil, v2.addr)
	if b, _ := cget(t, front.URL, asset, nil); b != "v2:"+asset+":" {
		t.Errorf("after the deploy: %q", b)
	}
	if b, xc := cget(t, front.URL, asset, nil); b != "v2:"+asset+":" || xc != "HIT" || n2.Load() != 1 {
		t.Errorf("v2 cached: %q %q (app saw %d)", b, xc, n2.Load())
	}
	// The previous release's entries went with its drain.
	r.cache.mu.Lock()
	entries := len(r.cache.entries)
	r.cache.mu.Unlock()
	if entries != 1 {
		t.Errorf("%d entries after the drain, want only v2's", entries)
	}
	out := scrape(t, r)
	for _, want := range []string{`slipway_edge_cache_requests_total{result="hit"} 6`, `slipway_edge_cache_hit_ratio 0.75`, `slipway_edge_cache_entries 1`, `slipway_edge_cache_bytes{tier="memory"}`} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
}

func TestEdgeCacheHonoursCacheControlAndVary(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		cached bool
	}{
		{"no-store", map[string]string{"Cache-Control": "no-store"}, false},
		{"private", map[string]string{"Cache-Control": "private, max-age=600"}, false},
		{"no-cache", map[string]string{"Cache-Control": "no-cache"}, false},
		{"max-age=0", map[string]string{"Cache-Control": "max-age=0"}, false},
		{"s-maxage=0 wins", map[string]string{"Cache-Control": "max-age=600, s-maxage=0"}, false},
		{"set-cookie", map[string]string{"Set-Cookie": "a=b"}, false},
		{"vary star", map[string]string{"Vary": "*"}, false},
		{"no header", nil, true},
		{"max-age", map[string]string{"Cache-Control": "public, max-age=600"}, true},
	} {
		r, front := newTestRouter(t, WithEdgeCache("", 1<<20, 0))
		b, n := assetBackend(t, "v1", tc.hdr)
		deploy(t, r, "us/site", []string{"site.localhost"}, b.addr)
		cget(t, front.URL, asset, nil)
		cget(t, front.URL, asset, nil)
		if got := n.Load() == 1; got != tc.cached {
			t.Errorf("%s: app saw %d requests; cached = %v, want %v", tc.name, n.Load(), got, tc.cached)
		}
	}
	// Vary: one entry per value of the named request header.
	r, front := newTestRouter(t, WithEdgeCache("", 1<<20, 0))
	b, n := assetBackend(t, "v1", map[string]string{"Vary": "Accept-Encoding", "Cache-Control": "max-age=600"})
	deploy(t, r, "us/site", []string{"site.localhost"}, b.addr)
	for range 2 {
		if got, _ := cget(t, front.URL, asset, map[string]string{"Accept-Encoding": "br"}); got != "v1:"+asset+":br" {
			t.Errorf("br: %q", got)
		}
		if got, _ := cget(t, front.URL, asset, map[string]string{"Accept-Encoding": "gzip"}); got != "v1:"+asset+":gzip" {
			t.Errorf("gzip: %q", got)
		}
	}
	if n.Load() != 2 {
		t.Errorf("Vary: app saw %d requests, want 2", n.Load())
	}
	// A request with credentials or Cache-Control: no-cache goes to the app.
	cget(t, front.URL, asset, map[string]string{"Accept-Encoding": "br", "Authorization": "Bearer x"})
	cget(t, front.URL, asset, map[string]string{"Accept-Encoding": "br", "Cache-Control": "no-cache"})
	if n.Load() != 4 {
		t.Errorf("bypass: app saw %d requests, want 4", n.Load())
	}
}

// Past the memory cap entries move to disk, and come back from it.
func TestEdgeCacheDiskTier(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	r, front := newTestRouter(t, WithEdgeCache(dir, 20, 1<<20))
	b, n := assetBackend(t, "v1", nil)
	deploy(t, r, "us/site", []string{"site.localhost"}, b.addr)
	paths := []string{"/_nuxt/a.js", "/_nuxt/b.js", "/_nuxt/c.js"}
	for _, p := range paths {
		cget(t, front.URL, p, nil)
	}
	files, _ := os.ReadDir(dir)
	if len(files) == 0 {
		t.Fatalf("nothing spilled to disk (memory %d bytes)", r.cache.memBytes)
	}
	for _, p := range paths {
		if got, xc := cget(t, front.URL, p, nil); got != "v1:"+p+":" || xc != "HIT" {
			t.Errorf("%s: %q %q", p, got, xc)
		}
	}
	if n.Load() != 3 {
		t.Errorf("app saw %d requests, want 3", n.Load())
	}
}
