package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter counts the connections a test server accepted.
func connCounter(srv *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func startServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	n := connCounter(srv)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, n
}

func addrOf(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

func TestUpstreamReusesConnections(t *testing.T) {
	r, front := newTestRouter(t)
	srv, conns := startServer(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			io.Copy(io.Discard, req.Body)
		}
		io.WriteString(w, "ok")
	})
	deploy(t, r, "us/app", []string{"us.localhost"}, addrOf(srv))
	before := conns.Load() // the health checks' connections
	for i := 0; i < 50; i++ {
		method := []string{http.MethodGet, http.MethodHead}[i%2]
		req, _ := http.NewRequest(method, front.URL, nil)
		req.Host = "us.localhost"
		res, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || (method == http.MethodGet && string(b) != "ok") || (method == http.MethodHead && len(b) != 0) {
			t.Fatalf("%s: %d %q", method, res.StatusCode, b)
		}
	}
	if n := conns.Load() - before; n != 1 {
		t.Errorf("50 sequential GET/HEAD requests used %d connections to the target, want 1", n)
	}
}

// A target that closes a keep-alive connection after answering (without
// saying so) makes the next request on it fail before any answer; GET is
// sent again on a new connection.
func TestUpstreamRetriesStaleConnection(t *testing.T) {
	r, front := newTestRouter(t)
	srv, _ := startServer(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/health" {
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		brw.Flush()
		conn.Close()
	})
	deploy(t, r, "us/app", []string{"us.localhost"}, addrOf(srv))
	for i := 0; i < 10; i++ {
		code, body, _ := get(t, front, "us.localhost", "/")
		if code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
}

func TestUpstreamResponseHeaderTimeout(t *testing.T) {
	r, front := newTestRouter(t, WithResponseHeaderTimeout(150*time.Millisecond))
	b := newBackend(t, "a")
	deploy(t, r, "us/app", []string{"us.localhost"}, b.addr)
	start := time.Now()
	code, body, _ := get(t, front, "us.localhost", "/slow?ms=2000")
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "504") {
		t.Errorf("got %d %q", code, body)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("timeout after %s", took)
	}
	// The timeout covers the headers only: a body may take longer.
	b.handle(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", "4")
		io.WriteString(w, "ab")
		http.NewResponseController(w).Flush()
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "cd")
	})
	if code, body, _ := get(t, front, "us.localhost", "/"); code != 200 || body != "abcd" {
		t.Errorf("slow body: %d %q", code, body)
	}
}

// A client that hangs up makes the router close its connection to the
// target, so the app sees its request cancelled.
func TestUpstreamClientGoneCancelsTarget(t *testing.T) {
	r, front := newTestRouter(t)
	cancelled := make(chan struct{})
	started := make(chan struct{})
	srv, _ := startServer(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/health" {
			return
		}
		close(started)
		select {
		case <-req.Context().Done():
			close(cancelled)
		case <-time.After(5 * time.Second):
		}
	})
	deploy(t, r, "us/app", []string{"us.localhost"}, addrOf(srv))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/long-poll", nil)
	req.Host = "us.localhost"
	go func() {
		<-started
		cancel()
	}()
	if _, err := testClient.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the app's request was not cancelled after the client left")
	}
	deadline := time.Now().Add(2 * time.Second)
	for r.Services()[0].Counters.ClientGone != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c := r.Services()[0].Counters; c.ClientGone != 1 || c.Status5xx != 0 {
		t.Errorf("counters: %+v", c)
	}
}

func TestUpstreamEarlyHintsChunkedAndTrailers(t *testing.T) {
	r, front := newTestRouter(t)
	srv, _ := startServer(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(200)
		io.WriteString(w, "chunk1,")
		http.NewResponseController(w).Flush()
		io.WriteString(w, "chunk2")
		w.Header().Set("X-Checksum", "42")
	})
	deploy(t, r, "us/app", []string{"us.localhost"}, addrOf(srv))
	var hints []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, front.URL, nil)
	req.Host = "us.localhost"
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "chunk1,chunk2" || res.Trailer.Get("X-Checksum") != "42" {
		t.Errorf("body %q trailer %v", body, res.Trailer)
	}
	if len(hints) != 1 || hints[0] != 103 {
		t.Errorf("1xx seen by the client: %v", hints)
	}
}

func TestUpstreamIdleSweep(t *testing.T) {
	r, front := newTestRouter(t)
	srv, _ := startServer(t, func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "ok") })
	deploy(t, r, "us/app", []string{"us.localhost"}, addrOf(srv))
	r.mu.Lock()
	up := r.services["us/app"].active.Load().targets[0].up
	r.mu.Unlock()
	up.idleMu.Lock()
	up.idleTimeout = 100 * time.Millisecond
	up.idleMu.Unlock()
	get(t, front, "us.localhost", "/")
	pooled := func() (idle, open int) {
		up.idleMu.Lock()
		idle = len(up.idle)
		up.idleMu.Unlock()
		up.connsMu.Lock()
		open = len(up.conns)
		up.connsMu.Unlock()
		return
	}
	if idle, open := pooled(); idle != 1 || open != 1 {
		t.Fatalf("after one request: %d idle, %d open connections; want 1, 1", idle, open)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		idle, open := pooled()
		if idle == 0 && open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the idle timeout: %d idle, %d open connections", idle, open)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And the pool still works afterwards.
	if code, body, _ := get(t, front, "us.localhost", "/"); code != 200 || body != "ok" {
		t.Errorf("after sweep: %d %q", code, body)
	}
}

// Requests with a body, and other methods, go through http.Transport and
// still stream and reuse connections.
func TestUpstreamFallbackPath(t *testing.T) {
	r, front := newTestRouter(t)
	srv, _ := startServer(t, func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		io.WriteString(w, req.Method+":"+string(b))
	})
	deploy(t, r, "us/app", []string{"us.localhost"}, addrOf(srv))
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		req, _ := http.NewRequest(m, front.URL, strings.NewReader("x=1"))
		req.Host = "us.localhost"
		res, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(bufio.NewReader(res.Body))
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != m+":x=1" {
			t.Errorf("%s: %d %q", m, res.StatusCode, b)
		}
	}
}
