package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkProxyGET measures one small GET through the router, client and
// backend included (all in this process, on loopback). Use allocs/op and
// comparisons between commits; ns/op depends on the machine.
func BenchmarkProxyGET(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, this is a small response body from the app\n")
	}))
	defer backend.Close()
	r, front := newTestRouter(b)
	deploy(b, r, "us/app", []string{"127.0.0.1"}, addrOf(backend))
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := front.URL + "/"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 512)
		for pb.Next() {
			res, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := res.Body.Read(buf); err != nil {
					break
				}
			}
			res.Body.Close()
		}
	})
}

// BenchmarkDirectGET is the same without the router, for scale.
func BenchmarkDirectGET(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, this is a small response body from the app\n")
	}))
	defer backend.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 512)
		for pb.Next() {
			res, err := c.Get(backend.URL)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := res.Body.Read(buf); err != nil {
					break
				}
			}
			res.Body.Close()
		}
	})
}
