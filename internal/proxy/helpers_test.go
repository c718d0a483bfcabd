package proxy

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastHealth keeps gates short in tests.
var fastHealth = HealthCheck{Path: "/health", Interval: 20 * time.Millisecond, Timeout: 500 * time.Millisecond, Deadline: 3 * time.Second}

// backend is a tiny app instance: it answers with its release name, counts
// the requests it served (health checks apart), and has a few test routes.
type backend struct {
	srv     *httptest.Server
	release string
	addr    string
	hits    atomic.Int64 // every request except health checks
	checks  atomic.Int64
	// healthStatus is what /health answers (200 by default).
	healthStatus atomic.Int32
	// healthBlock, when set, makes /health wait for it to close.
	healthBlock chan struct{}
	// slowStarted receives a value when a /slow request arrives.
	slowStarted chan struct{}
	// custom, when set, answers everything but /health.
	custom atomic.Pointer[http.HandlerFunc]
}

// handle makes the backend answer everything but /health with h.
func (b *backend) handle(h http.HandlerFunc) { b.custom.Store(&h) }

func newBackend(t testing.TB, release string) *backend {
	t.Helper()
	b := &backend{release: release, slowStarted: make(chan struct{}, 100)}
	b.healthStatus.Store(200)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		b.checks.Add(1)
		if b.healthBlock != nil {
			select {
			case <-b.healthBlock:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(int(b.healthStatus.Load()))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		select {
		case b.slowStarted <- struct{}{}:
		default:
		}
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("X-Release", b.release)
		io.WriteString(w, b.release)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		wsEcho(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Release", b.release)
		io.WriteString(w, b.release)
	})
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := b.custom.Load(); h != nil && r.URL.Path != "/health" {
			(*h)(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	b.addr = strings.TrimPrefix(b.srv.URL, "http://")
	t.Cleanup(b.srv.Close)
	return b
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestRouter returns a router with no state file and an httptest server
// in front of it, served as in production: through a Front, which hands
// what it does not take to the httptest server's net/http.
func newTestRouter(t testing.TB, opts ...Option) (*Router, *httptest.Server) {
	t.Helper()
	r, err := NewRouter("", append([]Option{WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	front, _ := serveFront(t, r)
	return r, front
}

// serveFront serves r through a Front on an httptest server.
func serveFront(t testing.TB, r *Router) (*httptest.Server, *Front) {
	t.Helper()
	srv := httptest.NewUnstartedServer(r)
	f := NewFront(r, Limits{}, nil)
	srv.Listener = f.Listener(srv.Listener)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Wait(ctx); err != nil {
			t.Errorf("front: requests still running after 5s: %v", err)
		}
		r.Close()
	})
	return srv, f
}

func deploy(t testing.TB, r *Router, service string, hosts []string, targets ...string) DeployResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.Deploy(ctx, DeployRequest{Service: service, Hosts: hosts, Targets: targets, Health: fastHealth, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("deploy %s: %v", service, err)
	}
	return res
}

var testClient = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	Timeout:   10 * time.Second,
}

// get sends GET path to the front server with the given Host and returns
// status, body and headers.
func get(t testing.TB, front *httptest.Server, host, path string) (int, string, http.Header) {
	t.Helper()
	code, body, h, err := tryGet(front, host, path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	return code, body, h
}

func tryGet(front *httptest.Server, host, path string) (int, string, http.Header, error) {
	req, err := http.NewRequest(http.MethodGet, front.URL+path, nil)
	if err != nil {
		return 0, "", nil, err
	}
	req.Host = host
	res, err := testClient.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header, err
}

// wsEcho is a minimal websocket server: a correct handshake, then it
// echoes raw bytes (the proxy does not care about framing).
func wsEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "want websocket", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	brw.Flush()
	buf := make([]byte, 4096)
	for {
		n, err := brw.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsDial opens a websocket through the front server and checks the handshake.
func wsDial(t testing.TB, front *httptest.Server, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(front.URL, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, key)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("websocket handshake: %v", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("websocket handshake: status %d", res.StatusCode)
	}
	if got := res.Header.Get("Sec-WebSocket-Accept"); got != wsAccept(key) {
		t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, wsAccept(key))
	}
	return conn, br
}
