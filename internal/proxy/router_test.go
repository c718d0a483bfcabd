package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRequestHost(t *testing.T) {
	for in, want := range map[string]string{
		"us.localhost":       "us.localhost",
		"US.LocalHost:8080":  "us.localhost",
		"shop.example.com.":  "shop.example.com",
		"shop.example.com.:": "shop.example.com",
		"[::1]:8080":         "::1",
		"[::1]":              "::1",
		"127.0.0.1:80":       "127.0.0.1",
		"":                   "",
	} {
		if got := requestHost(in); got != want {
			t.Errorf("requestHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostPatterns(t *testing.T) {
	for _, bad := range []string{"", "*.", "a..b", "shop.example.com:8080", "http://x", "a/b", "*", "x.*.com", "ü.example"} {
		if _, err := normalizeHostPattern(bad); !errors.Is(err, ErrInvalidHost) {
			t.Errorf("normalizeHostPattern(%q) = %v, want ErrInvalidHost", bad, err)
		}
	}
	if got, _ := normalizeHostPattern(" Shop.Example.COM. "); got != "shop.example.com" {
		t.Errorf("got %q", got)
	}
	for _, bad := range []string{"", "3000", "https://127.0.0.1:3000", "http://127.0.0.1:3000/app", "127.0.0.1"} {
		if _, err := normalizeTarget(bad); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("normalizeTarget(%q) = %v, want ErrInvalidTarget", bad, err)
		}
	}
	if got, _ := normalizeTarget("http://LocalHost:3000/"); got != "localhost:3000" {
		t.Errorf("got %q", got)
	}
}

func TestHostRouting(t *testing.T) {
	r, front := newTestRouter(t)
	us, de, wild := newBackend(t, "us"), newBackend(t, "de"), newBackend(t, "wild")
	deploy(t, r, "us/storefront", []string{LocalHost("us"), "Shop.Example.com"}, us.addr)
	deploy(t, r, "de/storefront", []string{LocalHost("DE")}, de.addr)
	deploy(t, r, "wild/storefront", []string{"*.wild.test", "*.deep.wild.test"}, wild.addr)

	for host, want := range map[string]string{
		"us.localhost":           "us",
		"US.LOCALHOST:8080":      "us",
		"shop.example.com":       "us",
		"shop.example.com.":      "us",
		"de.localhost":           "de",
		"a.wild.test":            "wild",
		"a.b.wild.test":          "wild",
		"x.deep.wild.test":       "wild",
		"wild.test":              "",
		"fr.localhost":           "",
		"example.com":            "",
		"evil-shop.example.com":  "",
		"shop.example.com.evil":  "",
		"127.0.0.1":              "",
		"us.localhost.wild.test": "wild",
	} {
		code, body, h := get(t, front, host, "/")
		if want == "" {
			if code != http.StatusNotFound || !strings.Contains(body, "<h1>404 Not Found</h1>") || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				t.Errorf("%s: got %d %q, want the 404 page", host, code, body)
			}
			continue
		}
		if code != 200 || body != want {
			t.Errorf("%s: got %d %q, want 200 %q", host, code, body, want)
		}
	}

	// A host belongs to one service.
	_, err := r.Deploy(context.Background(), DeployRequest{Service: "other", Hosts: []string{"us.localhost"}, Targets: []string{us.addr}, Health: fastHealth})
	if !errors.Is(err, ErrHostInUse) || !strings.Contains(err.Error(), `"us/storefront"`) {
		t.Errorf("claiming another service's host: %v", err)
	}
	if _, err := r.Deploy(context.Background(), DeployRequest{Service: "new", Targets: []string{us.addr}}); !errors.Is(err, ErrNoHosts) {
		t.Errorf("new service without hosts: %v", err)
	}
	// Hosts may be left out to keep them, or replaced.
	deploy(t, r, "de/storefront", nil, de.addr)
	if code, body, _ := get(t, front, "de.localhost", "/"); code != 200 || body != "de" {
		t.Errorf("after deploy keeping hosts: %d %q", code, body)
	}
	deploy(t, r, "de/storefront", []string{"de.example.com"}, de.addr)
	if code, _, _ := get(t, front, "de.localhost", "/"); code != 404 {
		t.Errorf("old host after replacing hosts: %d", code)
	}
	if code, body, _ := get(t, front, "de.example.com", "/"); code != 200 || body != "de" {
		t.Errorf("new host: %d %q", code, body)
	}
}

func TestUnavailablePage(t *testing.T) {
	r, front := newTestRouter(t, WithRetryAfter(7*time.Second))
	b := newBackend(t, "a")
	deploy(t, r, "us/app", []string{"us.localhost"}, b.addr)
	// Deploying no targets takes the service offline.
	res := deploy(t, r, "us/app", nil)
	if len(res.Old) != 1 || res.Old[0] != b.addr {
		t.Errorf("Old = %v", res.Old)
	}
	code, body, h := get(t, front, "us.localhost", "/")
	if code != 503 || h.Get("Retry-After") != "7" || !strings.Contains(body, "503 Service Unavailable") {
		t.Errorf("got %d Retry-After=%q %q", code, h.Get("Retry-After"), body)
	}
	req, _ := http.NewRequest(http.MethodHead, front.URL, nil)
	req.Host = "us.localhost"
	hr, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 503 {
		t.Errorf("HEAD: %d", hr.StatusCode)
	}
	if n := b.hits.Load(); n != 0 {
		t.Errorf("offline backend got %d requests", n)
	}
}

func TestForwardedHeaders(t *testing.T) {
	r, front := newTestRouter(t)
	got := make(chan http.Header, 1)
	var gotHost string
	echo := newBackend(t, "echo")
	echo.handle(func(w http.ResponseWriter, req *http.Request) {
		gotHost = req.Host + " " + req.URL.RequestURI()
		got <- req.Header.Clone()
	})
	deploy(t, r, "us/app", []string{"us.localhost"}, echo.addr)

	req, _ := http.NewRequest(http.MethodGet, front.URL+"/p/a%2Fb?x=1;y=2&z", nil)
	req.Host = "us.localhost:8443"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Forwarded-Proto", "https") // not trusted by default
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "must not pass")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic secret")
	req.Header.Set("X-App", "kept")
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	h := <-got
	// From an untrusted peer the client's own chain is replaced.
	if v := h.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the peer only", v)
	}
	if v := h.Get("X-Forwarded-Proto"); v != "http" {
		t.Errorf("X-Forwarded-Proto = %q", v)
	}
	if v := h.Get("X-Forwarded-Host"); v != "us.localhost:8443" {
		t.Errorf("X-Forwarded-Host = %q", v)
	}
	if gotHost != "us.localhost:8443 /p/a%2Fb?x=1;y=2&z" {
		t.Errorf("Host and URI at the backend = %q", gotHost)
	}
	for _, hop := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization"} {
		if v := h.Get(hop); v != "" {
			t.Errorf("hop-by-hop %s reached the backend: %q", hop, v)
		}
	}
	if h.Get("X-App") != "kept" {
		t.Errorf("end-to-end header lost")
	}

	// Behind a trusted terminator the inbound proto and host are kept.
	r2, front2 := newTestRouter(t, WithTrustForwardedHeaders(true))
	deploy(t, r2, "us/app", []string{"us.localhost"}, echo.addr)
	req, _ = http.NewRequest(http.MethodGet, front2.URL, nil)
	req.Host = "us.localhost"
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "shop.example.com")
	res, err = testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	h = <-got
	if h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Forwarded-Host") != "shop.example.com" {
		t.Errorf("trusted forwarded headers: proto %q host %q", h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
	}
}

// The backend must see the start of the body before the client has sent
// the end of it: the router streams request bodies.
func TestRequestBodyStreams(t *testing.T) {
	r, front := newTestRouter(t)
	gotFirst := make(chan struct{})
	b := newBackend(t, "a")
	b.handle(func(w http.ResponseWriter, req *http.Request) {
		br := bufio.NewReader(req.Body)
		first, _ := br.ReadString('\n')
		close(gotFirst)
		rest, _ := io.ReadAll(br)
		io.WriteString(w, first+string(rest))
	})
	deploy(t, r, "us/app", []string{"us.localhost"}, b.addr)

	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/upload", pr)
	req.Host = "us.localhost"
	done := make(chan string, 1)
	go func() {
		res, err := testClient.Do(req)
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		done <- string(body)
	}()
	io.WriteString(pw, "part1\n")
	select {
	case <-gotFirst:
	case <-time.After(3 * time.Second):
		t.Fatal("backend did not get the first part of the body while the client was still sending: body buffered?")
	}
	io.WriteString(pw, "part2\n")
	pw.Close()
	if got := <-done; got != "part1\npart2\n" {
		t.Errorf("echoed body = %q", got)
	}
}

// A streamed response reaches the client while the handler is still running.
func TestResponseStreams(t *testing.T) {
	r, front := newTestRouter(t)
	proceed := make(chan struct{})
	b := newBackend(t, "a")
	for _, ct := range []string{"text/event-stream", "application/octet-stream"} {
		b.handle(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Type", ct)
			io.WriteString(w, "data: 1\n\n")
			http.NewResponseController(w).Flush()
			select {
			case <-proceed:
			case <-time.After(3 * time.Second):
			}
			io.WriteString(w, "data: 2\n\n")
		})
		deploy(t, r, "us/app", []string{"us.localhost"}, b.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/events", nil)
		req.Host = "us.localhost"
		res, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(res.Body)
		start := time.Now()
		line, err := br.ReadString('\n')
		if err != nil || line != "data: 1\n" {
			t.Fatalf("%s: first event: %q %v", ct, line, err)
		}
		if wait := time.Since(start); wait > 2*time.Second {
			t.Errorf("%s: first event took %s: held back until the handler finished", ct, wait)
		}
		proceed <- struct{}{}
		rest, _ := io.ReadAll(br)
		if string(rest) != "\ndata: 2\n\n" {
			t.Errorf("%s: rest = %q", ct, rest)
		}
		res.Body.Close()
		cancel()
	}
}

func TestWebsocketThroughRouter(t *testing.T) {
	r, front := newTestRouter(t)
	b := newBackend(t, "a")
	deploy(t, r, "us/app", []string{"us.localhost"}, b.addr)
	conn, br := wsDial(t, front, "us.localhost")
	for _, msg := range []string{"hello\n", "world\n"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo: %q %v", got, err)
		}
	}
	conn.Close()
	// The upgrade counts as one request with a 1xx status.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if c := r.Services()[0].Counters; c.Status1xx == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("counters: %+v", r.Services()[0].Counters)
}

func TestBackendFailureGives502(t *testing.T) {
	r, front := newTestRouter(t)
	b := newBackend(t, "a")
	b.handle(func(w http.ResponseWriter, req *http.Request) {
		// Read the request, then die without answering.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	deploy(t, r, "us/app", []string{"us.localhost"}, b.addr)
	code, body, h := get(t, front, "us.localhost", "/")
	if code != 502 || !strings.Contains(body, "502 Bad Gateway") || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("got %d %q", code, body)
	}
	st := r.Services()[0]
	if st.Counters.Requests != 1 || st.Counters.Status5xx != 1 {
		t.Errorf("counters: %+v", st.Counters)
	}
}

func TestServicesAndRemove(t *testing.T) {
	r, front := newTestRouter(t)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	deploy(t, r, "us/app", []string{"us.localhost"}, a.addr, b.addr)
	for range 10 {
		if code, _, _ := get(t, front, "us.localhost", "/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	// Ten sequential requests to two idle targets: least-in-flight with
	// rotating ties spreads them.
	if a.hits.Load() == 0 || b.hits.Load() == 0 || a.hits.Load()+b.hits.Load() != 10 {
		t.Errorf("spread a=%d b=%d", a.hits.Load(), b.hits.Load())
	}
	get(t, front, "us.localhost", "/slow?ms=0")
	// Counters are updated when the handler returns, a moment after the
	// client has its answer.
	st := r.Services()
	for i := 0; i < 100 && st[0].Counters.Requests < 11; i++ {
		time.Sleep(5 * time.Millisecond)
		st = r.Services()
	}
	if len(st) != 1 || st[0].Name != "us/app" || st[0].Counters.Requests != 11 || st[0].Counters.Status2xx != 11 || len(st[0].Targets) != 2 {
		t.Fatalf("Services() = %+v", st)
	}
	if st[0].Health.Path != "/health" || st[0].LastDeploy.IsZero() {
		t.Errorf("Services() health/lastDeploy: %+v", st[0])
	}
	if _, err := json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	old, err := r.Remove(context.Background(), "us/app")
	if err != nil || len(old) != 2 {
		t.Fatalf("Remove: %v %v", old, err)
	}
	if code, _, _ := get(t, front, "us.localhost", "/"); code != 404 {
		t.Errorf("after Remove: %d", code)
	}
	if _, err := r.Remove(context.Background(), "us/app"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("Remove twice: %v", err)
	}
	if len(r.Services()) != 0 {
		t.Errorf("Services() after Remove: %+v", r.Services())
	}
}

// The background monitor takes a failing target out of rotation after
// three failed checks and back after one good one; with none left the
// host answers 503.
func TestHealthMonitor(t *testing.T) {
	r, front := newTestRouter(t, WithHealthMonitor(30*time.Millisecond))
	a, b := newBackend(t, "a"), newBackend(t, "b")
	deploy(t, r, "us/app", []string{"us.localhost"}, a.addr, b.addr)
	healthy := func(addr string) bool {
		for _, ts := range r.Services()[0].Targets {
			if ts.Address == addr {
				return ts.Healthy
			}
		}
		return false
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	b.healthStatus.Store(500)
	waitFor("b out of rotation", func() bool { return !healthy(b.addr) })
	before := b.hits.Load()
	for range 10 {
		if code, body, _ := get(t, front, "us.localhost", "/"); code != 200 || body != "a" {
			t.Fatalf("with b down: %d %q", code, body)
		}
	}
	if b.hits.Load() != before {
		t.Errorf("a target out of rotation got requests")
	}

	a.healthStatus.Store(500)
	waitFor("a out of rotation", func() bool { return !healthy(a.addr) })
	if code, _, h := get(t, front, "us.localhost", "/"); code != 503 || h.Get("Retry-After") == "" {
		t.Errorf("with every target down: %d", code)
	}

	b.healthStatus.Store(200)
	waitFor("b back", func() bool { return healthy(b.addr) })
	if code, body, _ := get(t, front, "us.localhost", "/"); code != 200 || body != "b" {
		t.Errorf("with b back: %d %q", code, body)
	}
}
