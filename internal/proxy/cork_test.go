package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener hands out connections that count the writes going
// through Write. writev (net.Buffers) reaches the socket past Write, as
// the embedded *net.TCPConn offers it.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

type countingConn struct {
	*net.TCPConn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.TCPConn.Write(p)
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c.(*net.TCPConn), &l.writes}, nil
}

// visitorServer serves h as slipway serve does (hardened server on a
// LimitListener) and returns its address and write counter.
func visitorServer(t *testing.T, h http.Handler) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := NewHardenedServer(h, Limits{})
	var l net.Listener = LimitListener(cl, Limits{})
	if r, ok := h.(*Router); ok {
		// As serve does: the Front hands static and cached answers'
		// connections to srv.
		f := NewFront(r, Limits{}, nil)
		l = f.Listener(l)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			f.Wait(ctx)
		})
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &cl.writes
}

// readAnswers sends reqs on one connection at once (pipelined) and reads
// as many answers.
func readAnswers(t *testing.T, addr string, reqs []string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for i, r := range reqs {
		method, _, _ := strings.Cut(r, " ") // a HEAD answer has no body to read
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("answer %d: %.80v", i, err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("answer %d body: %v", i, err)
		}
		res.Body = io.NopCloser(bytes.NewReader(b))
		res.Header.Set("X-Test-Body", string(b))
		out = append(out, res)
	}
	return out
}

func TestCorkedAnswersAreWholeAndOneWrite(t *testing.T) {
	r, _ := newTestRouter(t)
	site := t.TempDir()
	sizes := map[string]int{"tiny.js": 100, "mid.js": 10 << 10, "edge.js": 60 << 10, "disk.js": 200 << 10}
	want := map[string]string{}
	for name, n := range sizes {
		b := []byte(strings.Repeat(name[:1], n))
		for i := range b {
			b[i] += byte(i % 7) // no two offsets alike: a misplaced slice shows
		}
		want[name] = string(b)
		if err := os.WriteFile(filepath.Join(site, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>home</h1>"), 0o644)
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: site})
	addr, writes := visitorServer(t, r)

	get := func(p, method string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: site.localhost\r\n\r\n", method, p)
	}
	// Warm the site's file table, then count writes per in-memory answer.
	readAnswers(t, addr, []string{get("/mid.js", "GET"), get("/edge.js", "GET")})
	before := writes.Load()
	reqs := []string{get("/mid.js", "GET"), get("/edge.js", "GET"), get("/tiny.js", "GET"), get("/mid.js", "HEAD"), get("/nope.js", "GET"), get("/disk.js", "GET"), get("/edge.js", "GET")}
	res := readAnswers(t, addr, reqs)
	for i, name := range []string{"mid.js", "edge.js", "tiny.js", "", "", "disk.js", "edge.js"} {
		if name == "" {
			continue
		}
		if res[i].StatusCode != 200 || body(res[i]) != want[name] || res[i].ContentLength != int64(len(want[name])) {
			t.Errorf("%s: %d, %d bytes (Content-Length %d), want %d", name, res[i].StatusCode, len(body(res[i])), res[i].ContentLength, len(want[name]))
		}
	}
	if res[3].StatusCode != 200 || body(res[3]) != "" || res[3].Header.Get("Content-Length") != fmt.Sprint(10<<10) {
		t.Errorf("HEAD: %d %q Content-Length %q", res[3].StatusCode, body(res[3]), res[3].Header.Get("Content-Length"))
	}
	if res[4].StatusCode != 404 {
		t.Errorf("missing file: %d", res[4].StatusCode)
	}
	// Corked answers of 10 and 60 KiB take no plain write at all (head
	// and body go out in one writev), the tiny one one write. net/http
	// alone writes its 4 KiB buffer, then the rest: 2 each.
	if n := writes.Load() - before; n > 5 {
		t.Errorf("%d writes for 7 answers; the three corked ones should take none", n)
	}
	t.Logf("%d plain writes for 7 answers", writes.Load()-before)
}

func TestCorkedEdgeCacheHit(t *testing.T) {
	r, _ := newTestRouter(t, WithEdgeCache("", 1<<20, 0))
	big := strings.Repeat("0123456789", 3<<10) // 30 KiB
	b := newBackend(t, "v1")
	b.handle(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		io.WriteString(w, big)
	})
	deploy(t, r, "us/site", []string{"site.localhost"}, b.addr)
	addr, _ := visitorServer(t, r)
	req := "GET " + asset + " HTTP/1.1\r\nHost: site.localhost\r\n\r\n"
	res := readAnswers(t, addr, []string{req, req, req})
	for i, x := range res {
		xc := "HIT"
		if i == 0 {
			xc = "MISS"
		}
		if x.StatusCode != 200 || body(x) != big || x.Header.Get("X-Cache") != xc {
			t.Errorf("answer %d: %d, %d bytes, X-Cache %q", i, x.StatusCode, len(body(x)), x.Header.Get("X-Cache"))
		}
	}
}

func TestHeldWriteKeepsOrder(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	lc := &limitedConn{Conn: a, l: &ConnLimiter{}}
	body := []byte("BODYBODYBODY")
	lc.cork.on, lc.cork.buf, lc.cork.body = true, corkBufs.Get().(*[]byte), body
	got := make(chan string)
	go func() { x, _ := io.ReadAll(b); got <- string(x) }()
	lc.Write([]byte("head;"))
	lc.Write(body[4:]) // the tail, kept by reference
	lc.Write([]byte(";after"))
	big := bytes.Repeat([]byte("z"), corkMax) // past the cap: out it goes, in order
	lc.Write(big)
	lc.uncork()
	a.Close()
	if s := <-got; s != "head;BODYBODY;after"+string(big) {
		t.Errorf("wire has %d bytes, starting %.30q", len(s), s)
	}
}
