package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// X-Forwarded-For from an untrusted peer is replaced by the peer's address;
// from a trusted proxy the chain is kept and the peer appended. Both paths
// (synchronous GET, ReverseProxy POST) follow the same rule.
func TestForwardedForTrustedProxies(t *testing.T) {
	got := make(chan http.Header, 1)
	echo := newBackend(t, "echo")
	echo.handle(func(w http.ResponseWriter, req *http.Request) { got <- req.Header.Clone() })
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		opts  []Option
		xff   string
		proto string
	}{
		{"untrusted", nil, "127.0.0.1", "http"},
		{"trusted", []Option{WithTrustedProxies(trusted)}, "198.51.100.7, 10.1.2.3, 127.0.0.1", "https"},
	} {
		r, front := newTestRouter(t, tc.opts...)
		deploy(t, r, "us/app", []string{"us.localhost"}, echo.addr)
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequest(method, front.URL+"/", strings.NewReader(map[string]string{"GET": "", "POST": "x"}[method]))
			if method == http.MethodGet {
				req.Body = nil
			}
			req.Host = "us.localhost"
			req.Header.Add("X-Forwarded-For", "198.51.100.7")
			req.Header.Add("X-Forwarded-For", "10.1.2.3")
			req.Header.Set("X-Forwarded-Proto", "https")
			res, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			h := <-got
			if v := strings.Join(h.Values("X-Forwarded-For"), ", "); v != tc.xff {
				t.Errorf("%s %s: X-Forwarded-For = %q, want %q", tc.name, method, v, tc.xff)
			}
			if v := h.Get("X-Forwarded-Proto"); v != tc.proto {
				t.Errorf("%s %s: X-Forwarded-Proto = %q, want %q", tc.name, method, v, tc.proto)
			}
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	p, err := ParseTrustedProxies("10.0.0.0/8,::1, 192.168.1.7")
	if err != nil || len(p) != 3 || p[2].String() != "192.168.1.7/32" {
		t.Fatalf("%v %v", p, err)
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8,not-an-ip"); err == nil || !strings.Contains(err.Error(), `"not-an-ip"`) {
		t.Errorf("bad entry: %v", err)
	}
}

// A GET whose target refuses the connection is sent once to another live
// target; the visitor never sees the dead one.
func TestRetryOnConnectionRefused(t *testing.T) {
	r, front := newTestRouter(t)
	dead, live := newBackend(t, "dead"), newBackend(t, "live")
	deploy(t, r, "us/app", []string{"us.localhost"}, dead.addr, live.addr)
	dead.srv.Close() // refused from now on; no health monitor notices
	for i := 0; i < 20; i++ {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(m, front.URL+"/", nil)
			req.Host = "us.localhost"
			res, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || res.Header.Get("X-Release") != "live" {
				t.Fatalf("%s %d: %d from %q", m, i, res.StatusCode, res.Header.Get("X-Release"))
			}
		}
	}
	// With no other target left the refusal is a 502.
	r2, front2 := newTestRouter(t)
	only := newBackend(t, "only")
	deploy(t, r2, "us/app", []string{"us.localhost"}, only.addr)
	only.srv.Close()
	if code, _, _ := get(t, front2, "us.localhost", "/"); code != http.StatusBadGateway {
		t.Errorf("single dead target: %d, want 502", code)
	}
}
