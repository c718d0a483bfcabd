package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// appDir writes a small .deploy tree.
func appDir(t testing.TB, content string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"server.js":         "console.log(" + content + ")\n",
		"public/index.html": "<h1>" + content + "</h1>\n",
	}
	for n, body := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build makes an image from dir on base (nil = scratch).
func build(t testing.TB, base v1.Image, dir string) v1.Image {
	t.Helper()
	spec := image.Spec{Base: base, Dir: dir, Cmd: []string{"/bin/sh", "-c", "true"}, Created: time.Unix(1700000000, 0)}
	if base == nil {
		spec.Platform = &v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	img, err := image.Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// proxy is a counting reverse proxy in front of a real registry; fail, if
// set, may answer a request itself instead of forwarding it.
type proxy struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	fail   func(r *http.Request) int // status to answer with, 0 = forward
}

func newProxy(t testing.TB, reg *testenv.Registry) *proxy {
	t.Helper()
	target, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[classify(r)]++
		fail := p.fail
		p.mu.Unlock()
		if fail != nil {
			if code := fail(r); code != 0 {
				// Drain first so the client reads our answer rather than a reset.
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(code)
				w.Write([]byte("proxy says " + http.StatusText(code)))
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// Addr is host:port of the proxy.
func (p *proxy) Addr() string { return strings.TrimPrefix(p.URL, "http://") }

// classify names a request: "blob-mount" for a cross-repository mount,
// "blob-upload" for other POST/PUT/PATCH under /blobs/, "manifest-put", "blob-head", "manifest-get", "manifest-head", ...
func classify(r *http.Request) string {
	switch {
	case r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" && r.URL.Query().Get("from") != "":
		return "blob-mount"
	case strings.Contains(r.URL.Path, "/blobs/") && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch):
		return "blob-upload"
	case strings.Contains(r.URL.Path, "/blobs/"):
		return "blob-" + strings.ToLower(r.Method)
	case strings.Contains(r.URL.Path, "/manifests/"):
		return "manifest-" + strings.ToLower(r.Method)
	default:
		return "other-" + strings.ToLower(r.Method)
	}
}

func (p *proxy) count(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[kind]
}

func (p *proxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = map[string]int{}
}

func (p *proxy) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}
