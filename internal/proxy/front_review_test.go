package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawAnswer makes the backend answer every request but /health with the
// raw bytes of resp (a target that frames its answer oddly).
func rawAnswer(t *testing.T, b *backend, resp string) {
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		bw.WriteString(resp)
		bw.Flush()
	})
}

// A target that sends both Content-Length and Transfer-Encoding: chunked
// is read as chunked (RFC 9112 6.3), and the proxy must not pass its
// Content-Length on (it would frame the decoded body wrongly, and the
// next answer on the connection would start inside this one).
func TestReviewFrontDropsContentLengthOfAChunkedAnswer(t *testing.T) {
	rig := newFrontRig(t, Limits{}, nil, nil)
	b := newBackend(t, "v1")
	rawAnswer(t, b, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)

	c, br := rig.dial(t)
	fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /b HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	for _, p := range []string{"/a", "/b"} {
		res, body := readResp(t, br, "GET")
		if res.StatusCode != 200 || body != "hello" {
			t.Fatalf("GET %s = %d %q, want 200 \"hello\"", p, res.StatusCode, body)
		}
	}
}

// Content-Length is digits only (RFC 9110 8.6): "+5" from a target is a
// bad answer (502), not a length passed on to clients that read it
// differently.
func TestReviewFrontRefusesASignedContentLength(t *testing.T) {
	rig := newFrontRig(t, Limits{}, nil, nil)
	b := newBackend(t, "v1")
	rawAnswer(t, b, "HTTP/1.1 200 OK\r\nContent-Length: +5\r\nConnection: close\r\n\r\nhello")
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)

	c, br := rig.dial(t)
	fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(br), &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("the client cannot read the answer: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("GET = %d, want 502", res.StatusCode)
	}
}

// The front's writer holds a handler to the Content-Length it declared,
// as net/http's does: bytes past it are refused (they would be read as
// the start of the next answer), and an answer cut short of it closes the
// connection instead of leaving the client waiting for the rest.
func TestReviewFrontWriterKeepsToContentLength(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write string
		keep  bool
	}{{"exact", "abc", true}, {"over", "hello", false}, {"short", "ab", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			fc := &frontConn{bw: bufio.NewWriter(&out)}
			w := &frontWriter{fc: fc, req: &http.Request{Method: "GET"}, h: http.Header{}, shutting: new(atomic.Bool)}
			w.Header().Set("Content-Length", "3")
			w.Write([]byte(tc.write))
			if keep := w.finish(); keep != tc.keep {
				t.Errorf("finish() = %v, want %v", keep, tc.keep)
			}
			_, body, _ := strings.Cut(out.String(), "\r\n\r\n")
			if len(body) > 3 {
				t.Errorf("body sent %q: more than the Content-Length of 3", body)
			}
		})
	}
}

// Odd but valid target framings reach a keep-alive client whole, and the
// next request on the connection still gets its own answer.
func TestReviewFrontRelaysTargetFramings(t *testing.T) {
	for name, tc := range map[string]struct{ resp, want string }{
		"close-delimited": {"HTTP/1.0 200 OK\r\n\r\nuntil close", "200 until close"},
		"early hints":     {"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "200 hi"},
		"204":             {"HTTP/1.1 204 No Content\r\n\r\n", "204 "},
		"304 with length": {"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "304 "},
	} {
		t.Run(name, func(t *testing.T) {
			rig := newFrontRig(t, Limits{}, nil, nil)
			b := newBackend(t, "v1")
			rawAnswer(t, b, tc.resp)
			deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
			c, br := rig.dial(t)
			fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /b HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			for i := 0; i < 2; i++ {
				res, body := readResp(t, br, "GET")
				for res.StatusCode < 200 {
					res, body = readResp(t, br, "GET") // what clients do with a 1xx
				}
				if got := fmt.Sprint(res.StatusCode, " ", body); got != tc.want {
					t.Fatalf("answer %d = %q, want %q", i+1, got, tc.want)
				}
			}
		})
	}
}

// A client that leaves in the middle of a streamed answer the front
// serves ends the target's request too, and leaves no goroutine behind.
func TestReviewFrontClientLeavingMidBodyLeaksNothing(t *testing.T) {
	rig := newFrontRig(t, Limits{}, nil, nil)
	b := newBackend(t, "v1")
	ended := make(chan struct{}, 10)
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		ended <- struct{}{}
	})
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	base := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		c, br := rig.dial(t)
		fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		if _, err := http.ReadResponse(br, nil); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for i := 0; i < 5; i++ {
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 5 target requests still running after their clients left", 5-i)
		}
	}
	if n := rig.f.served.Load(); n != 5 {
		t.Errorf("front served %d requests, want 5", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		t.Errorf("%d goroutines after the clients left, %d before", n, base)
	}
}

// The limits of serve's listener hold for connections the front keeps:
// the per-IP cap counts them, and a keep-alive connection whose next head
// stalls half-way is closed after ReadHeaderTimeout (slowloris).
func TestReviewFrontKeepsListenerLimits(t *testing.T) {
	rig := newFrontRig(t, Limits{MaxConnsPerIP: 2, ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 5 * time.Second}, nil, nil)
	b := newBackend(t, "v1")
	b.handle(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	var kept []*bufio.Reader
	for i := 0; i < 2; i++ {
		c, br := rig.dial(t)
		fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		if res, body := readResp(t, br, "GET"); res.StatusCode != 200 || body != "ok" {
			t.Fatalf("GET = %d %q", res.StatusCode, body)
		}
		kept = append(kept, br)
		if i == 1 {
			// Slowloris on a kept connection: half a head, then nothing.
			start := time.Now()
			fmt.Fprintf(c, "GET /b HTTP/1.1\r\nHost: sh")
			if _, err := br.ReadByte(); err == nil {
				t.Errorf("a stalled head got an answer")
			} else if d := time.Since(start); d > 2*time.Second {
				t.Errorf("a stalled head was closed after %v, want about the 300ms ReadHeaderTimeout", d)
			}
		}
	}
	// The server closed the stalled one; its slot comes back just after
	// the socket closes (limitedConn.Close), a moment that a loaded
	// machine (-race, CI) can stretch: until then a new connection is
	// reset, so try again for a while.
	var br *bufio.Reader
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond)
		c, err := net.DialTimeout("tcp", rig.addr, 2*time.Second)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br = bufio.NewReader(c)
			fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			res, rerr := http.ReadResponse(br, nil)
			if rerr == nil {
				b, _ := io.ReadAll(res.Body)
				if res.StatusCode != 200 || string(b) != "ok" {
					t.Fatalf("second connection while one is kept: %d %q", res.StatusCode, b)
				}
				break
			}
			err = rerr
		}
		if time.Now().After(deadline) {
			t.Fatalf("second connection while one is kept: %v", err)
		}
	}
	// The third is reset right after accept: a loaded machine may show
	// that already at connect, which is the same refusal.
	if c2, err := net.DialTimeout("tcp", rig.addr, 2*time.Second); err == nil {
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c2, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		if res, err := http.ReadResponse(bufio.NewReader(c2), nil); err == nil && res.StatusCode == 200 {
			t.Errorf("a third connection from one IP was served past MaxConnsPerIP 2")
		}
	}
	_ = kept
}

// A control character in a target's header value (NUL, ^A) is a bad
// answer, as http.Transport takes it (502): passed on, it broke strict
// clients' reading of the answer and reached lenient ones as a header
// they might split differently.
func TestReviewProxyRefusesControlCharsInTargetHeaders(t *testing.T) {
	rig := newFrontRig(t, Limits{}, nil, nil)
	b := newBackend(t, "v1")
	rawAnswer(t, b, "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	c, br := rig.dial(t)
	fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the client cannot read the answer: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("GET = %d, want 502", res.StatusCode)
	}
}
