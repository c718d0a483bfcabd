package regpolicy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPolicy(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:80": true, "localhost:5000/repo": true,
		"10.0.0.1:5000": false, "192.168.1.2": false, "172.16.0.1": false, "registry.example.com": false} {
		if IsLoopback(host) != want {
			t.Errorf("IsLoopback(%q) = %v", host, !want)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := &http.Client{Transport: Transport(nil, false)}
	if _, err := c.Get(srv.URL); err != nil {
		t.Errorf("loopback refused: %v", err)
	}
	// Refused before any connection is made (nothing is sent off this machine).
	if _, err := c.Get("http://10.255.255.1:5000/v2/"); !errors.Is(err, ErrPlainHTTP) {
		t.Errorf("private range allowed over http: %v", err)
	}
	insecure := &http.Client{Transport: Transport(roundTrip(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}), true)}
	if _, err := insecure.Get("http://10.255.255.1:5000/v2/"); err != nil {
		t.Errorf("insecure: %v", err)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
