package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func scrape(t *testing.T, r *Router) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.MetricsHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	return rec.Body.String()
}

func TestMetricsContent(t *testing.T) {
	r, front := newTestRouter(t)
	b := newBackend(t, "v1")
	deploy(t, r, "us/web", []string{"us.localhost"}, b.addr)
	for i := 0; i < 3; i++ {
		get(t, front, "us.localhost", "/")
	}
	b.handle(func(w http.ResponseWriter, req *http.Request) { w.WriteHeader(503) })
	get(t, front, "us.localhost", "/")
	get(t, front, "nobody.localhost", "/")
	r.SetCertificateExpiry("shop.example.com", time.Unix(1900000000, 0))
	out := scrape(t, r)
	for _, want := range []string{
		"# TYPE slipway_http_requests_total counter",
		`slipway_http_requests_total{store="us",app="web",code="2xx"} 3`,
		`slipway_http_requests_total{store="us",app="web",code="5xx"} 1`,
		`slipway_http_requests_total{store="",app="",code="404"} 1`,
		"# TYPE slipway_http_request_duration_seconds histogram",
		`slipway_http_request_duration_seconds_bucket{store="us",app="web",le="+Inf"} 4`,
		`slipway_http_request_duration_seconds_count{store="us",app="web"} 4`,
		`slipway_http_response_bytes_total{store="us",app="web"} 6`, // "v1" three times
		`slipway_target_up{store="us",app="web",target="` + b.addr + `"} 1`,
		`slipway_certificate_expiry_timestamp_seconds{name="shop.example.com"} 1.9e+09`,
		`slipway_last_deploy_timestamp_seconds{store="us",app="web"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	// Every sample line parses as name{labels} value.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); len(f) != 2 || !strings.HasPrefix(f[0], "slipway_") {
			t.Errorf("malformed sample line %q", line)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLogJSONRedactsSecrets(t *testing.T) {
	var buf syncBuffer
	r, front := newTestRouter(t, WithAccessLog(&buf))
	b := newBackend(t, "v1")
	deploy(t, r, "us/web", []string{"us.localhost"}, b.addr)
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/account?id=7&token=s3cr3t&api_key=k3y&code=c0de", nil)
	req.Host = "us.localhost"
	req.Header.Set("Authorization", "Bearer hunter2")
	req.Header.Set("Cookie", "session=cookie-secret")
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	r.Close() // flushes
	line := strings.TrimSpace(buf.String())
	for _, secret := range []string{"s3cr3t", "k3y", "c0de", "hunter2", "cookie-secret"} {
		if strings.Contains(line, secret) {
			t.Errorf("access log shows %q: %s", secret, line)
		}
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("not one JSON line: %v: %q", err, line)
	}
	want := map[string]any{"store": "us", "app": "web", "status": 200.0, "bytes": 2.0, "target": b.addr,
		"path": "/account", "query": "id=7&token=REDACTED&api_key=REDACTED&code=REDACTED", "method": "GET"}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, e[k], v, line)
		}
	}
	if d, ok := e["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms = %v", e["duration_ms"])
	}
}
