package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeSite writes a Next.js-like export under dir/site and a secret next
// to it (outside the site), and returns the site directory.
func writeSite(t testing.TB, dir, release string) string {
	t.Helper()
	site := filepath.Join(dir, "site")
	files := map[string]string{
		"index.html":       "<h1>home " + release + "</h1>",
		"about.html":       "<h1>about</h1>",
		"docs/index.html":  "<h1>docs</h1>",
		"404.html":         "<h1>custom not found</h1>",
		"robots.txt":       "User-agent: *",
		"favicon.ico":      "ico",
		"fonts/a.woff2":    "woff2",
		".env":             "SECRET=dotfile",
		"empty/keep.txt.x": "x",
		"_next/static/chunks/main-3c2f7a1b9e4d5f60.js":    "console.log('main')",
		"_next/static/chunks/main-3c2f7a1b9e4d5f60.js.br": "BROTLI",
		"_next/static/chunks/main-3c2f7a1b9e4d5f60.js.gz": "GZIP",
		"assets/index-BPvgi06w.js":                        "vite()",
		"app.css":                                         "body{}",
	}
	for name, body := range files {
		p := filepath.Join(site, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB: served from disk
	os.WriteFile(filepath.Join(site, "big.bin"), []byte(big), 0o644)
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("TOP-SECRET"), 0o644)
	// Symlinks inside the image: leaving the site, absolute, and a fair one.
	os.Symlink("../secret.txt", filepath.Join(site, "escape.txt"))
	os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(site, "abs.txt"))
	os.Symlink("/etc/passwd", filepath.Join(site, "passwd"))
	os.Symlink("robots.txt", filepath.Join(site, "robots-link.txt"))
	return site
}

func deployStatic(t testing.TB, r *Router, service string, hosts []string, site StaticSite) {
	t.Helper()
	if _, err := r.Deploy(context.Background(), DeployRequest{Service: service, Hosts: hosts, Static: &site}); err != nil {
		t.Fatalf("deploy static: %v", err)
	}
}

func staticGet(t *testing.T, front string, path string, h map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, front+path, nil)
	req.Host = "site.localhost"
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(strings.NewReader(string(b)))
	res.Header.Set("X-Test-Body", string(b))
	return res
}

func body(res *http.Response) string { return res.Header.Get("X-Test-Body") }

func TestStaticContentTypesAndCaching(t *testing.T) {
	r, front := newTestRouter(t)
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: writeSite(t, t.TempDir(), "v1")})
	immutable := "public, max-age=31536000, immutable"
	for _, tc := range []struct{ path, ctype, cache, body string }{
		{"/", "text/html; charset=utf-8", "public, max-age=0, must-revalidate", "<h1>home v1</h1>"},
		{"/about", "text/html; charset=utf-8", "public, max-age=0, must-revalidate", "<h1>about</h1>"},
		{"/docs/", "text/html; charset=utf-8", "public, max-age=0, must-revalidate", "<h1>docs</h1>"},
		{"/_next/static/chunks/main-3c2f7a1b9e4d5f60.js", "text/javascript; charset=utf-8", immutable, "console.log('main')"},
		{"/assets/index-BPvgi06w.js", "text/javascript; charset=utf-8", immutable, "vite()"},
		{"/app.css", "text/css; charset=utf-8", "public, max-age=300", "body{}"},
		{"/fonts/a.woff2", "font/woff2", "public, max-age=300", "woff2"},
		{"/robots-link.txt", "text/plain; charset=utf-8", "public, max-age=300", "User-agent: *"},
	} {
		res := staticGet(t, front.URL, tc.path, nil)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != tc.ctype || res.Header.Get("Cache-Control") != tc.cache || body(res) != tc.body {
			t.Errorf("%s: %d type %q cache %q body %q", tc.path, res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"), body(res))
		}
	}
	if res := staticGet(t, front.URL, "/big.bin", nil); res.StatusCode != 200 || len(body(res)) != 128<<10 {
		t.Errorf("big file: %d, %d bytes", res.StatusCode, len(body(res)))
	}
	// Only GET and HEAD.
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/", strings.NewReader("x"))
	req.Host = "site.localhost"
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

func TestStaticConditionalRequests(t *testing.T) {
	r, front := newTestRouter(t)
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: writeSite(t, t.TempDir(), "v1")})
	for _, p := range []string{"/", "/big.bin", "/app.css"} {
		res := staticGet(t, front.URL, p, nil)
		etag, lm := res.Header.Get("ETag"), res.Header.Get("Last-Modified")
		if etag == "" || lm == "" {
			t.Fatalf("%s: ETag %q Last-Modified %q", p, etag, lm)
		}
		if res := staticGet(t, front.URL, p, map[string]string{"If-None-Match": etag}); res.StatusCode != 304 || body(res) != "" {
			t.Errorf("%s If-None-Match: %d %q", p, res.StatusCode, body(res))
		}
		if res := staticGet(t, front.URL, p, map[string]string{"If-Modified-Since": lm}); res.StatusCode != 304 {
			t.Errorf("%s If-Modified-Since: %d", p, res.StatusCode)
		}
		if res := staticGet(t, front.URL, p, map[string]string{"If-None-Match": `"other"`}); res.StatusCode != 200 {
			t.Errorf("%s stale ETag: %d", p, res.StatusCode)
		}
	}
}

func TestStaticPrecompressed(t *testing.T) {
	r, front := newTestRouter(t)
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: writeSite(t, t.TempDir(), "v1")})
	const p = "/_next/static/chunks/main-3c2f7a1b9e4d5f60.js"
	etags := map[string]bool{}
	for _, tc := range []struct{ ae, enc, body string }{
		{"gzip, deflate, br", "br", "BROTLI"},
		{"gzip", "gzip", "GZIP"},
		{"br;q=0, gzip", "gzip", "GZIP"},
		{"identity", "", "console.log('main')"},
		{"", "", "console.log('main')"},
	} {
		res := staticGet(t, front.URL, p, map[string]string{"Accept-Encoding": tc.ae})
		if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != tc.enc || body(res) != tc.body ||
			res.Header.Get("Vary") != "Accept-Encoding" || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("Accept-Encoding %q: %d encoding %q vary %q type %q body %q", tc.ae, res.StatusCode,
				res.Header.Get("Content-Encoding"), res.Header.Get("Vary"), res.Header.Get("Content-Type"), body(res))
		}
		etags[res.Header.Get("ETag")] = true
	}
	if len(etags) != 3 {
		t.Errorf("each representation needs its own ETag: %v", etags)
	}
}

func TestStaticNotFoundSPAAndNoListings(t *testing.T) {
	r, front := newTestRouter(t)
	site := writeSite(t, t.TempDir(), "v1")
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: site})
	for _, p := range []string{"/nope", "/empty/", "/empty", "/fonts/", "/.env", "/missing.js"} {
		if res := staticGet(t, front.URL, p, nil); res.StatusCode != 404 || body(res) != "<h1>custom not found</h1>" {
			t.Errorf("%s: %d %q, want the site's 404.html", p, res.StatusCode, body(res))
		}
	}
	// With SPA fallback, page-like paths get index.html; assets still 404.
	r2, front2 := newTestRouter(t)
	deployStatic(t, r2, "us/site", []string{"site.localhost"}, StaticSite{Dir: site, SPA: true})
	if res := staticGet(t, front2.URL, "/products/42", nil); res.StatusCode != 200 || body(res) != "<h1>home v1</h1>" {
		t.Errorf("SPA route: %d %q", res.StatusCode, body(res))
	}
	if res := staticGet(t, front2.URL, "/missing.js", nil); res.StatusCode != 404 {
		t.Errorf("SPA missing asset: %d", res.StatusCode)
	}
	// Without a 404.html: the router's plain page.
	os.Remove(filepath.Join(site, "404.html"))
	r3, front3 := newTestRouter(t)
	deployStatic(t, r3, "us/site", []string{"site.localhost"}, StaticSite{Dir: site})
	if res := staticGet(t, front3.URL, "/nope", nil); res.StatusCode != 404 || !strings.Contains(body(res), "404 Not Found") {
		t.Errorf("default 404: %d %q", res.StatusCode, body(res))
	}
}

// rawGet sends a request line as written, so that no client cleans it.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: site.localhost\r\nConnection: close\r\n\r\n", target)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err.Error()
	}
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestStaticPathTraversal(t *testing.T) {
	r, front := newTestRouter(t)
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: writeSite(t, t.TempDir(), "v1")})
	addr := strings.TrimPrefix(front.URL, "http://")
	if code, b := rawGet(t, addr, "/docs/%2e%2e/robots.txt"); code != 200 || b != "User-agent: *" {
		t.Fatalf("a dot-dot inside the site: %d %q", code, b) // proves the raw requests reach the site
	}
	for _, target := range []string{
		"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
		"/docs/../../secret.txt", "/docs/%2e%2e/%2e%2e/secret.txt", "/..%5csecret.txt", "/%252e%252e/secret.txt",
		"/escape.txt", "/abs.txt", "/passwd", "/%00/secret.txt", "/.%2e/secret.txt", "//../secret.txt",
	} {
		code, b := rawGet(t, addr, target)
		if strings.Contains(b, "TOP-SECRET") || strings.Contains(b, "root:") || code == 200 {
			t.Errorf("GET %s: %d %q", target, code, b)
		}
	}
}

// Cutover between static releases is one pointer swap: under load every
// answer is whole and from one release, and after Deploy returns only the
// new one answers.
func TestStaticCutoverIsAtomic(t *testing.T) {
	r, front := newTestRouter(t)
	v1 := writeSite(t, t.TempDir(), "v1")
	v2 := writeSite(t, t.TempDir(), "v2")
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: v1})
	var stop atomic.Bool
	var bad atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest(http.MethodGet, front.URL+"/", nil)
				req.Host = "site.localhost"
				res, err := testClient.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || (string(b) != "<h1>home v1</h1>" && string(b) != "<h1>home v2</h1>") {
					bad.Add(1)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	deployStatic(t, r, "us/site", nil, StaticSite{Dir: v2})
	for range 20 {
		if res := staticGet(t, front.URL, "/", nil); body(res) != "<h1>home v2</h1>" {
			t.Fatalf("after the swap: %q", body(res))
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d bad answers during the cutover", bad.Load())
	}
	// A static site survives a router restart (state file).
	dir := t.TempDir()
	state := filepath.Join(dir, "router.json")
	r1, err := NewRouter(state, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	deployStatic(t, r1, "us/site", []string{"site.localhost"}, StaticSite{Dir: v2, SPA: true})
	r1.Close()
	r2, err := NewRouter(state, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if s := r2.Services(); len(s) != 1 || s[0].Static != v2 {
		t.Fatalf("restored: %+v", s)
	}
}

func TestStaticGateRefusesEmptyDir(t *testing.T) {
	r, _ := newTestRouter(t)
	if _, err := r.Deploy(context.Background(), DeployRequest{Service: "us/site", Hosts: []string{"site.localhost"}, Static: &StaticSite{Dir: t.TempDir()}}); err == nil {
		t.Error("an empty directory passed the gate")
	}
	if _, err := r.Deploy(context.Background(), DeployRequest{Service: "us/site", Hosts: []string{"site.localhost"}, Static: &StaticSite{Dir: "/nonexistent/dir"}}); err == nil {
		t.Error("a missing directory passed the gate")
	}
}

func TestFingerprinted(t *testing.T) {
	for p, want := range map[string]bool{
		"/_next/static/chunks/app.js": true, "/_nuxt/entry.js": true, "/main.3f2a9c1b.js": true,
		"/assets/index-BPvgi06w.js": true, "/img/logo.png": false, "/bootstrap5.css": false,
		"/app.css": false, "/index.html": false, "/assets/chunk-deadbeef12.css": true, "/library.js": false,
	} {
		if got := Fingerprinted(p); got != want {
			t.Errorf("Fingerprinted(%q) = %v, want %v", p, got, want)
		}
	}
}
