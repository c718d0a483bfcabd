package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// filesRig is a router with opts behind a Front, as serve runs it, whose
// accepted connections count their plain writes.
func filesRig(t *testing.T, opts ...Option) (*frontRig, *atomic.Int64) {
	t.Helper()
	r, err := NewRouter("", append([]Option{WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	rig := &frontRig{r: r, f: NewFront(r, Limits{}, nil), srv: NewHardenedServer(r, Limits{}), addr: ln.Addr().String()}
	go rig.srv.Serve(rig.f.Listener(LimitListener(cl, Limits{})))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rig.srv.Shutdown(ctx)
		rig.f.Wait(ctx)
		r.Close()
	})
	return rig, &cl.writes
}

// The Front answers static files in memory itself, with every static
// rule, in one write each; a file on disk goes to net/http (sendfile).
func TestFrontServesStaticFilesFromMemory(t *testing.T) {
	rig, writes := filesRig(t)
	deployStatic(t, rig.r, "us/site", []string{"site.localhost"}, StaticSite{Dir: writeSite(t, t.TempDir(), "v1"), SPA: true})
	c, br := rig.dial(t)
	get := func(p string, h ...string) *http.Response {
		t.Helper()
		method := "GET"
		if p == "HEAD /" {
			method, p = "HEAD", "/"
		}
		io.WriteString(c, method+" "+p+" HTTP/1.1\r\nHost: site.localhost\r\n"+strings.Join(h, "")+"\r\n")
		res, b := readResp(t, br, method)
		res.Header.Set("X-Test-Body", b)
		return res
	}
	before, served := writes.Load(), rig.f.served.Load()
	immutable := "public, max-age=31536000, immutable"
	res := get("/_next/static/chunks/main-3c2f7a1b9e4d5f60.js")
	if res.StatusCode != 200 || body(res) != "console.log('main')" || res.Header.Get("Cache-Control") != immutable ||
		res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || res.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("asset: %d %q %v", res.StatusCode, body(res), res.Header)
	}
	etag := res.Header.Get("Etag")
	if res := get("/_next/static/chunks/main-3c2f7a1b9e4d5f60.js", "Accept-Encoding: gzip, br\r\n"); body(res) != "BROTLI" || res.Header.Get("Content-Encoding") != "br" {
		t.Errorf("br: %q %q", body(res), res.Header.Get("Content-Encoding"))
	}
	if res := get("/_next/static/chunks/main-3c2f7a1b9e4d5f60.js", "If-None-Match: "+etag+"\r\n"); res.StatusCode != 304 || body(res) != "" {
		t.Errorf("If-None-Match: %d %q", res.StatusCode, body(res))
	}
	if res := get("HEAD /"); res.StatusCode != 200 || body(res) != "" || res.ContentLength != int64(len("<h1>home v1</h1>")) {
		t.Errorf("HEAD: %d %q %d", res.StatusCode, body(res), res.ContentLength)
	}
	if res := get("/about"); res.StatusCode != 200 || body(res) != "<h1>about</h1>" || res.Header.Get("Cache-Control") != "public, max-age=0, must-revalidate" {
		t.Errorf("page: %d %q", res.StatusCode, body(res))
	}
	if got := rig.f.served.Load() - served; got != 5 {
		t.Errorf("the Front served %d of 5 answers from memory", got)
	}
	if n := writes.Load() - before; n > 5 {
		t.Errorf("%d plain writes for 5 answers", n)
	}
	// A file too big for memory is kept open and sent by the Front with
	// sendfile: no plain write, no hand-off.
	before = writes.Load()
	bigBody := strings.Repeat("0123456789abcdef", 8<<10)
	if res := get("/big.bin"); res.StatusCode != 200 || len(body(res)) != 128<<10 || body(res) != bigBody {
		t.Errorf("big file: %d, %d bytes", res.StatusCode, len(body(res)))
	}
	if rig.f.handedOff.Load() != 0 {
		t.Errorf("handed off %d connections for a kept file", rig.f.handedOff.Load())
	}
	if n := writes.Load() - before; canSendfile && n != 0 {
		t.Errorf("%d plain writes for a file sent with sendfile", n)
	}
	// An SPA route: the connection is net/http's now, and every rule
	// still holds.
	if res := get("/account/orders"); res.StatusCode != 200 || body(res) != "<h1>home v1</h1>" {
		t.Errorf("SPA route: %d %q", res.StatusCode, body(res))
	}
	if rig.f.handedOff.Load() != 1 {
		t.Errorf("handed off %d connections, want 1 (the SPA route's)", rig.f.handedOff.Load())
	}
	if res := get("/big.bin"); res.StatusCode != 200 || body(res) != bigBody {
		t.Errorf("big file through net/http: %d, %d bytes", res.StatusCode, len(body(res)))
	}
	if res := get("/account/orders"); res.StatusCode != 200 || body(res) != "<h1>home v1</h1>" {
		t.Errorf("SPA route after the hand-off: %d %q", res.StatusCode, body(res))
	}
	if res := get("/nope.js"); res.StatusCode != 404 || body(res) != "<h1>custom not found</h1>" {
		t.Errorf("missing asset: %d %q", res.StatusCode, body(res))
	}
}

// Edge-cache misses and hits through the Front.
func TestFrontServesEdgeCache(t *testing.T) {
	rig, _ := filesRig(t, WithEdgeCache("", 1<<20, 0))
	big := strings.Repeat("0123456789", 3<<10)
	b := newBackend(t, "v1")
	var n atomic.Int64
	b.handle(func(w http.ResponseWriter, req *http.Request) {
		n.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		io.WriteString(w, big)
	})
	deploy(t, rig.r, "us/site", []string{"site.localhost"}, b.addr)
	c, br := rig.dial(t)
	for i, want := range []string{"MISS", "HIT", "HIT"} {
		io.WriteString(c, "GET "+asset+" HTTP/1.1\r\nHost: site.localhost\r\n\r\n")
		res, got := readResp(t, br, "GET")
		if res.StatusCode != 200 || got != big || res.Header.Get("X-Cache") != want {
			t.Errorf("answer %d: %d, %d bytes, X-Cache %q", i, res.StatusCode, len(got), res.Header.Get("X-Cache"))
		}
	}
	if n.Load() != 1 || rig.f.served.Load() != 3 || rig.f.handedOff.Load() != 0 {
		t.Errorf("app asked %d times, front served %d, handed off %d", n.Load(), rig.f.served.Load(), rig.f.handedOff.Load())
	}
}
