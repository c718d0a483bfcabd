package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sendfileSite writes files around sendfileMin and the memory limit: a
// small one (memory, writev), a middle one (memory and kept open), a big
// one with a precompressed sibling (kept open only).
func sendfileSite(t *testing.T) (dir string, files map[string]string) {
	t.Helper()
	dir = t.TempDir()
	files = map[string]string{
		"index.html":                          "<h1>home</h1>",
		"_next/static/a-1f2e3d4c5b6a7980.css": strings.Repeat("a{}", 300),
		"_next/static/m-0a1b2c3d4e5f6a7b.js":  strings.Repeat("mid();", 40<<10/6),
		"big-9f8e7d6c5b4a3921.js":             strings.Repeat("big(0123456789);", 200<<10/16),
		"big-9f8e7d6c5b4a3921.js.br":          strings.Repeat("BR", 50<<10),
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, files
}

// The Front's prebuilt heads and sendfile answer exactly what the header
// map path answers through net/http: same status, headers (but Date) and
// body, for every file size, encoding and method.
func TestFrontSendfileAnswersAsNetHTTP(t *testing.T) {
	if !canSendfile {
		t.Skip("no sendfile on this system")
	}
	rig, writes := filesRig(t)
	dir, files := sendfileSite(t)
	deployStatic(t, rig.r, "us/site", []string{"site.localhost"}, StaticSite{Dir: dir})
	plain := httptest.NewServer(rig.r) // the same router, net/http only
	t.Cleanup(plain.Close)
	site := rig.r.table.Load().lookup("site.localhost").active.Load().static
	if f := site.lookup("/big-9f8e7d6c5b4a3921.js"); f == nil || f.fd == nil || f.data != nil || f.variants[0].file.fd == nil {
		t.Fatalf("the big file and its variant are not kept open for sendfile: %+v", f)
	}
	if f := site.lookup("/_next/static/m-0a1b2c3d4e5f6a7b.js"); f == nil || f.fd == nil || f.data == nil {
		t.Fatalf("the middle file is not kept open and in memory: %+v", f)
	}

	c, br := rig.dial(t)
	type ask struct{ method, path, headers string }
	asks := []ask{
		{"GET", "/_next/static/a-1f2e3d4c5b6a7980.css", ""},
		{"GET", "/_next/static/m-0a1b2c3d4e5f6a7b.js", ""},
		{"GET", "/big-9f8e7d6c5b4a3921.js", ""},
		{"GET", "/big-9f8e7d6c5b4a3921.js", "Accept-Encoding: gzip, br\r\n"},
		{"GET", "/big-9f8e7d6c5b4a3921.js", "Accept-Encoding: br;q=0\r\n"},
		{"HEAD", "/big-9f8e7d6c5b4a3921.js", ""},
		{"GET", "/big-9f8e7d6c5b4a3921.js", "Range: bytes=100-199\r\n"},
		{"GET", "/_next/static/m-0a1b2c3d4e5f6a7b.js", "Range: bytes=-10\r\n"},
		{"GET", "/", ""},
	}
	before := writes.Load()
	for _, a := range asks {
		io.WriteString(c, a.method+" "+a.path+" HTTP/1.1\r\nHost: site.localhost\r\n"+a.headers+"\r\n")
		got, gotBody := readResp(t, br, a.method)
		req, _ := http.NewRequest(a.method, plain.URL+a.path, nil)
		req.Host = "site.localhost"
		for _, line := range strings.Split(strings.TrimSpace(a.headers), "\r\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				req.Header.Set(k, v)
			}
		}
		req.Header.Set("Accept-Encoding", req.Header.Get("Accept-Encoding")) // no transparent gzip
		want, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		wantBody, _ := io.ReadAll(want.Body)
		want.Body.Close()
		name := a.method + " " + a.path + " " + strings.TrimSpace(a.headers)
		if got.StatusCode != want.StatusCode || gotBody != string(wantBody) {
			t.Errorf("%s: front %d (%d bytes), net/http %d (%d bytes)", name, got.StatusCode, len(gotBody), want.StatusCode, len(wantBody))
		}
		for _, h := range []http.Header{got.Header, want.Header} {
			h.Del("Date")
		}
		if want.Header.Get("Content-Encoding") != "" && want.Header.Get("Content-Length") == "" {
			// http.ServeContent leaves the length out of an encoded
			// answer (and chunks it); the Front knows it and says it.
			if got.Header.Get("Content-Length") != strconv.Itoa(len(gotBody)) {
				t.Errorf("%s: Content-Length %q for %d bytes", name, got.Header.Get("Content-Length"), len(gotBody))
			}
			got.Header.Del("Content-Length")
		}
		if g, w := headerString(got.Header), headerString(want.Header); g != w {
			t.Errorf("%s: headers differ\nfront:    %s\nnet/http: %s", name, g, w)
		}
	}
	if f := files["big-9f8e7d6c5b4a3921.js"]; len(f) < 100<<10 {
		t.Fatal("the big file is not big")
	}
	if rig.f.handedOff.Load() != 0 || rig.f.served.Load() != uint64(len(asks)) {
		t.Errorf("front served %d of %d, handed off %d", rig.f.served.Load(), len(asks), rig.f.handedOff.Load())
	}
	// Plain writes: the small file, the two ranges, the HEAD and the
	// page; the sendfile answers write nothing through Write.
	if n := writes.Load() - before; n > 5 {
		t.Errorf("%d plain writes for %d answers, 4 of them sent with sendfile", n, len(asks))
	}
}

func headerString(h http.Header) string {
	var b strings.Builder
	h.Write(&b)
	return strings.ReplaceAll(b.String(), "\r\n", " | ")
}

// "Connection: close" gets its answer with the same header, then the
// connection ends, on the sendfile path as on the others.
func TestFrontSendfileConnectionClose(t *testing.T) {
	rig, _ := filesRig(t)
	dir, files := sendfileSite(t)
	deployStatic(t, rig.r, "us/site", []string{"site.localhost"}, StaticSite{Dir: dir})
	c, br := rig.dial(t)
	io.WriteString(c, "GET /big-9f8e7d6c5b4a3921.js HTTP/1.1\r\nHost: site.localhost\r\nConnection: close\r\n\r\n")
	res, b := readResp(t, br, "GET")
	if res.StatusCode != 200 || b != files["big-9f8e7d6c5b4a3921.js"] || !res.Close {
		t.Errorf("got %d, %d bytes, close %v", res.StatusCode, len(b), res.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close the connection stayed open: %v", err)
	}
}

// A replaced release's kept files are closed after its drain, and a
// client that leaves in the middle of a sendfile costs the next one
// nothing.
func TestKeptFilesClosedAtDrain(t *testing.T) {
	rig, _ := filesRig(t, WithDrainTimeout(2*time.Second))
	dir, files := sendfileSite(t)
	deployStatic(t, rig.r, "us/site", []string{"site.localhost"}, StaticSite{Dir: dir})
	old := rig.r.table.Load().lookup("site.localhost").active.Load().static
	old.fdMu.Lock()
	kept := append([]*os.File(nil), old.fds...)
	old.fdMu.Unlock()
	if canSendfile && len(kept) != 3 { // the middle, the big and its .br (shared by both paths)
		t.Fatalf("%d files kept open, want 3", len(kept))
	}
	c, _ := rig.dial(t)
	io.WriteString(c, "GET /big-9f8e7d6c5b4a3921.js HTTP/1.1\r\nHost: site.localhost\r\n\r\n")
	c.Close() // gone before reading a byte

	dir2, _ := sendfileSite(t)
	deployStatic(t, rig.r, "us/site", []string{"site.localhost"}, StaticSite{Dir: dir2})
	waitUntil(t, func() bool {
		for _, fh := range kept {
			if _, err := fh.Stat(); !errors.Is(err, os.ErrClosed) {
				return false
			}
		}
		return true
	})
	c2, br := rig.dial(t)
	io.WriteString(c2, "GET /big-9f8e7d6c5b4a3921.js HTTP/1.1\r\nHost: site.localhost\r\n\r\n")
	if res, b := readResp(t, br, "GET"); res.StatusCode != 200 || b != files["big-9f8e7d6c5b4a3921.js"] {
		t.Errorf("after the cutover: %d, %d bytes", res.StatusCode, len(b))
	}
}
