package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestStorePagesFor502And503(t *testing.T) {
	r, front := newTestRouter(t)
	b := newBackend(t, "v1")
	deploy(t, r, "us/web", []string{"shop.example.com", "*.eu.example.com"}, b.addr)
	deploy(t, r, "de/web", []string{"de.example.com"}, newBackend(t, "v1").addr)
	r.SetPages([]string{"shop.example.com", "*.eu.example.com"}, Pages{BadGateway: "<h1>us broke</h1>", Unavailable: "<h1>us resting</h1>"})
	b.srv.Close() // the instance dies: 502
	get := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", front.URL+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("shop.example.com"); code != 502 || body != "<h1>us broke</h1>" {
		t.Fatalf("502 page: %d %q", code, body)
	}
	if code, body := get("a.eu.example.com"); code != 502 || body != "<h1>us broke</h1>" {
		t.Fatalf("502 page on a wildcard host: %d %q", code, body)
	}
	// Another store keeps the plain default, and 404s are the router's own.
	if code, body := get("nowhere.example.com"); code != 404 || strings.Contains(body, "us broke") {
		t.Fatalf("404: %d %q", code, body)
	}
	// Nothing live: 503 with the store's page.
	r.services["us/web"].active.Load().targets[0].down.Store(true)
	if code, body := get("shop.example.com"); code != 503 || body != "<h1>us resting</h1>" {
		t.Fatalf("503 page: %d %q", code, body)
	}
	// Empty pages go back to the default.
	r.SetPages([]string{"shop.example.com"}, Pages{})
	if code, body := get("shop.example.com"); code != 503 || !strings.Contains(body, "503 Service Unavailable") {
		t.Fatalf("default 503: %d %q", code, body)
	}
}
