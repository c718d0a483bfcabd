package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// serveHardened serves h on a loopback LimitListener with l and returns its address.
func serveHardened(t *testing.T, h http.Handler, l Limits) (string, *ConnLimiter) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitListener(ln, l)
	srv := NewHardenedServer(h, l)
	go srv.Serve(lim)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), lim
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

func TestIdleKeepAliveClosedAfterIdleTimeout(t *testing.T) {
	addr, lim := serveHardened(t, okHandler, Limits{IdleTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("closed after %s, want about the 300ms idle timeout", d)
	}
	waitUntil(t, func() bool { return lim.Open() == 0 })
}

func TestHugeHeadersGet431(t *testing.T) {
	addr, _ := serveHardened(t, okHandler, Limits{MaxHeaderBytes: 4 << 10})
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(string(body), "Request Header Fields Too Large") {
		t.Fatalf("huge headers: %d %q, want 431", resp.StatusCode, body)
	}
	// A normal request still passes.
	resp, err = http.Get("http://" + addr + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("normal request: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestPerIPConnectionLimit(t *testing.T) {
	addr, lim := serveHardened(t, okHandler, Limits{MaxConnsPerIP: 3})
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waitUntil(t, func() bool { return lim.Open() == 3 })
	// The fourth from the same IP is reset before any HTTP (the reset may
	// even beat the end of connect on loopback).
	if c, err := net.Dial("tcp", addr); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			t.Fatal("a connection past the per-IP limit was served")
		}
		c.Close()
	}
	waitUntil(t, func() bool { return lim.Refused() == 1 })
	// Another client IP is not affected (127.0.0.2 is loopback too on Linux).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) }}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("other IP: %v %v", err, resp)
	}
	resp.Body.Close()
	tr.CloseIdleConnections()
	// Closing one frees its slot.
	held[0].Close()
	waitUntil(t, func() bool { return lim.Open() == 2 })
	resp, err = http.Get("http://" + addr + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a slot freed: %v %v", err, resp)
	}
	resp.Body.Close()
	for _, c := range held[1:] {
		c.Close()
	}
}

func TestWriteStallDeadlineKeepsMovingStreamsAlive(t *testing.T) {
	// A stream that keeps moving outlives the stall timeout many times over.
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 8; i++ {
			io.WriteString(w, "tick\n")
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	addr, _ := serveHardened(t, stream, Limits{WriteStallTimeout: 100 * time.Millisecond})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(b), "tick") != 8 {
		t.Fatalf("stream cut: %v, %d ticks", err, strings.Count(string(b), "tick"))
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLimitedConnServesBigFilesWhole(t *testing.T) {
	// net/http hands files to the connection's ReadFrom (sendfile); the
	// limiter copies them in slices, moving the stall deadline each time.
	path := t.TempDir() + "/big.bin"
	data := []byte(strings.Repeat("0123456789abcdef", 3<<16)) // 3 MiB
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, _ := serveHardened(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) }),
		Limits{WriteStallTimeout: 2 * time.Second})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != len(data) {
		t.Fatalf("got %d of %d bytes: %v", len(b), len(data), err)
	}
}

func TestWriteStallCutsAClientThatStopsReading(t *testing.T) {
	cut := make(chan time.Duration, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		start := time.Now()
		for time.Since(start) < 10*time.Second {
			if _, err := w.Write(chunk); err != nil {
				cut <- time.Since(start)
				return
			}
		}
		cut <- -1
	})
	addr, _ := serveHardened(t, h, Limits{WriteStallTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case d := <-cut:
		if d < 0 {
			t.Fatal("a client that never reads was not cut in 10s")
		}
		t.Logf("cut after %s", d)
	case <-time.After(15 * time.Second):
		t.Fatal("handler still writing after 15s")
	}
}
