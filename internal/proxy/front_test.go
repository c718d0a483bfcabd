package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// frontRig is a router served through a Front on a hardened server, as
// `serve` runs its plain listener.
type frontRig struct {
	r    *Router
	f    *Front
	srv  *http.Server
	addr string
}

func newFrontRig(t *testing.T, l Limits, handler func(*Router) http.Handler, direct func(host, path string) bool) *frontRig {
	t.Helper()
	r, err := NewRouter("", WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = r
	if handler != nil {
		h = handler(r)
	}
	rig := &frontRig{r: r, f: NewFront(r, l, direct), srv: NewHardenedServer(h, l), addr: ln.Addr().String()}
	go rig.srv.Serve(rig.f.Listener(LimitListener(ln, l)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rig.srv.Shutdown(ctx)
		rig.f.Wait(ctx)
		r.Close()
	})
	return rig
}

// raw sends one raw request on a new connection and reads one response.
func (rig *frontRig) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", rig.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return res, string(b)
}

func TestFrontServesGETsItselfWithTheRouterRules(t *testing.T) {
	rig := newFrontRig(t, Limits{}, nil, nil)
	b := newBackend(t, "v1")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Saw-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Saw-Host", r.Host+" "+r.Header.Get("X-Forwarded-Host")+" "+r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Saw-Conn", r.Header.Get("Connection")+r.Header.Get("X-Hop"))
		io.WriteString(w, "hello "+r.URL.RequestURI())
	})
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)

	c, br := rig.dial(t)
	// Pipelined: two requests in one write, on one keep-alive connection.
	fmt.Fprintf(c, "GET /a?x=%%zz HTTP/1.1\r\nHost: Shop.Example:80\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: X-Hop\r\nX-Hop: secret\r\n\r\n"+
		"HEAD /b HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	res, body := readResp(t, br, "GET")
	if res.StatusCode != 200 || body != "hello /a?x=%zz" {
		t.Fatalf("GET = %d %q", res.StatusCode, body)
	}
	if got := res.Header.Get("X-Saw-XFF"); got != "127.0.0.1" {
		t.Errorf("the target saw X-Forwarded-For %q, want the peer only", got)
	}
	if got := res.Header.Get("X-Saw-Host"); got != "Shop.Example:80 Shop.Example:80 http" {
		t.Errorf("the target saw Host/X-Forwarded-Host/-Proto %q", got)
	}
	if got := res.Header.Get("X-Saw-Conn"); got != "" {
		t.Errorf("hop-by-hop headers reached the target: %q", got)
	}
	if res.Header.Get("Date") == "" || res.ContentLength != int64(len(body)) {
		t.Errorf("Date %q, Content-Length %d", res.Header.Get("Date"), res.ContentLength)
	}
	res, body = readResp(t, br, "HEAD")
	if res.StatusCode != 200 || body != "" || res.ContentLength != int64(len("hello /b")) {
		t.Errorf("HEAD = %d %q, length %d", res.StatusCode, body, res.ContentLength)
	}
	if n, h := rig.f.served.Load(), rig.f.handedOff.Load(); n != 2 || h != 0 {
		t.Errorf("front served %d and handed off %d connections, want 2 and 0", n, h)
	}
	st := rig.r.Services()[0].Counters
	if st.Requests != 2 || st.Status2xx != 2 {
		t.Errorf("counters = %+v", st)
	}
}

func TestFrontHandsOffWhatItDoesNotTake(t *testing.T) {
	rig := newFrontRig(t, Limits{MaxHeaderBytes: 8 << 10}, nil, nil)
	b := newBackend(t, "v1")
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	cases := []struct {
		name, req string
		status    int
	}{
		{"POST with a body", "POST / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 2\r\n\r\nhi", 200},
		{"chunked GET", "GET / HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: shop.example\r\n\r\n", 200},
		{"bare LF", "GET / HTTP/1.1\nHost: shop.example\n\n", 200},
		{"unknown host", "GET / HTTP/1.1\r\nHost: nobody.example\r\n\r\n", 404},
		{"two hosts", "GET / HTTP/1.1\r\nHost: shop.example\r\nHost: other\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: shop.example\r\nX-A : b\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"huge head", "GET / HTTP/1.1\r\nHost: shop.example\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := rig.f.handedOff.Load()
			c, br := rig.dial(t)
			io.WriteString(c, tc.req)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body) // 431 resets the connection: only the status matters
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d", res.StatusCode, tc.status)
			}
			if rig.f.handedOff.Load() != before+1 {
				t.Errorf("not handed off to net/http")
			}
			if tc.status != 200 || strings.Contains(tc.req, "HTTP/1.0") {
				return
			}
			// The connection stays with net/http and keeps working.
			io.WriteString(c, "GET /again HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			if res, body := readResp(t, br, "GET"); res.StatusCode != 200 || body != "v1" {
				t.Errorf("next request = %d %q", res.StatusCode, body)
			}
		})
	}
	t.Run("websocket", func(t *testing.T) {
		srv := &httptest.Server{URL: "http://" + rig.addr}
		conn, br := wsDial(t, srv, "shop.example")
		io.WriteString(conn, "ping")
		buf := make([]byte, 4)
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo = %q %v", buf, err)
		}
	})
}

func TestFrontStreamsChunkedBodiesWithTrailers(t *testing.T) {
	rig := newFrontRig(t, Limits{}, nil, nil)
	b := newBackend(t, "v1")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		for i := range 3 {
			fmt.Fprintf(w, "part%d;", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", "3")
	})
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	req, _ := http.NewRequest("GET", "http://"+rig.addr+"/stream", nil)
	req.Host = "shop.example"
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(body) != "part0;part1;part2;" {
		t.Fatalf("body %q %v", body, err)
	}
	if len(res.TransferEncoding) != 1 || res.Trailer.Get("X-Sum") != "3" {
		t.Errorf("transfer encoding %v, trailer %v", res.TransferEncoding, res.Trailer)
	}
	if rig.f.served.Load() != 1 {
		t.Errorf("front served %d", rig.f.served.Load())
	}
}

func TestFrontErrorPagesAndCutBodies(t *testing.T) {
	rig := newFrontRig(t, Limits{}, nil, nil)
	b := newBackend(t, "v1")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cut" {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "short")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(204)
	})
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	c, br := rig.dial(t)
	io.WriteString(c, "GET /empty HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	if res, body := readResp(t, br, "GET"); res.StatusCode != 204 || body != "" {
		t.Fatalf("204 = %d %q", res.StatusCode, body)
	}
	// A body cut short by the target ends the client connection too.
	io.WriteString(c, "GET /cut HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Errorf("a cut body read as whole")
	}
	// A dead target: the router's 502 page, from the front.
	b.srv.Close()
	c2, br2 := rig.dial(t)
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	if res, body := readResp(t, br2, "GET"); res.StatusCode != 502 || !strings.Contains(body, "502 Bad Gateway") {
		t.Errorf("dead target = %d %q", res.StatusCode, body)
	}
}

func TestFrontClosesIdleAndWaitsForRequests(t *testing.T) {
	rig := newFrontRig(t, Limits{IdleTimeout: 300 * time.Millisecond}, nil, nil)
	b := newBackend(t, "v1")
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	c, br := rig.dial(t)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	readResp(t, br, "GET")
	start := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the idle connection sent data")
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle connection closed after %s, want about 300ms", d)
	}

	// Shutdown: an idle connection is closed, one in a request finishes it.
	idle, ibr := rig.dial(t)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	readResp(t, ibr, "GET")
	busy, bbr := rig.dial(t)
	io.WriteString(busy, "GET /slow?ms=500 HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	<-b.slowStarted
	// A connection accepted just before, whose request comes late, is
	// still answered (server/handoff.go's quiesce counts on it).
	fresh, fbr := rig.dial(t)
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		rig.srv.Shutdown(ctx)
		waited <- rig.f.Wait(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	io.WriteString(fresh, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	if res, body := readResp(t, fbr, "GET"); res.StatusCode != 200 || body != "v1" || !res.Close {
		t.Errorf("late first request = %d %q, close %v", res.StatusCode, body, res.Close)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if res, body := readResp(t, bbr, "GET"); res.StatusCode != 200 || body != "v1" || !res.Close {
		t.Errorf("request during shutdown = %d %q, Connection: close %v (want it, so that the client sends no other)", res.StatusCode, body, res.Close)
	}
	if _, err := ibr.ReadByte(); err == nil {
		t.Error("idle connection still open after Wait")
	}
}

func TestFrontLeavesRedirectsToTheHandler(t *testing.T) {
	redirect := func(r *Router) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if requestHost(req.Host) == "secure.example" {
				http.Redirect(w, req, "https://secure.example/", http.StatusPermanentRedirect)
				return
			}
			r.ServeHTTP(w, req)
		})
	}
	direct := func(host, path string) bool { return requestHost(host) != "secure.example" }
	rig := newFrontRig(t, Limits{}, redirect, direct)
	b := newBackend(t, "v1")
	deploy(t, rig.r, "us/app", []string{"secure.example", "plain.example"}, b.addr)
	c, br := rig.dial(t)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: plain.example\r\n\r\n")
	if res, _ := readResp(t, br, "GET"); res.StatusCode != 200 {
		t.Fatalf("plain = %d", res.StatusCode)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: secure.example\r\n\r\n")
	if res, _ := readResp(t, br, "GET"); res.StatusCode != 308 {
		t.Fatalf("secure = %d, want the handler's 308", res.StatusCode)
	}
}

func TestFrontDropsAHeadThatNeverEnds(t *testing.T) {
	rig := newFrontRig(t, Limits{ReadHeaderTimeout: 300 * time.Millisecond}, nil, nil)
	b := newBackend(t, "v1")
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	c, br := rig.dial(t)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop.example\r\nX-Slow: ")
	start := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("an answer to half a head")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %s, want about the 300ms header timeout", d)
	}
	if rig.f.handedOff.Load() != 0 {
		t.Error("a slow head was handed to net/http, which would give it a second header timeout")
	}
}
