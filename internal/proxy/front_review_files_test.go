package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// Static answers from memory through the Front (ranges, conditionals,
// HEAD) match those net/http's server gives for the same router (status,
// Content-Range, body; a short error body may be chunked by the Front
// where net/http sets a length: both frame it right).
func TestReviewFrontStaticAnswersAsNetHTTP(t *testing.T) {
	rig, _ := filesRig(t)
	deployStatic(t, rig.r, "us/site", []string{"site.localhost"}, StaticSite{Dir: writeSite(t, t.TempDir(), "v1"), SPA: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := NewHardenedServer(rig.r, Limits{})
	go plain.Serve(ln)
	t.Cleanup(func() { plain.Close() })
	boundary := regexp.MustCompile(`[0-9a-f]{60}`)
	ask := func(addr, method, hdr string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "%s /_next/static/chunks/main-3c2f7a1b9e4d5f60.js HTTP/1.1\r\nHost: site.localhost\r\n%s\r\n", method, hdr)
		res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
		if err != nil {
			return "error " + err.Error()
		}
		b, _ := io.ReadAll(res.Body)
		return boundary.ReplaceAllString(fmt.Sprint(res.StatusCode, " ", res.Header.Get("Content-Range"), " ", string(b)), "B")
	}
	for _, tc := range []struct{ method, hdr string }{
		{"GET", "Range: bytes=0-3\r\n"},
		{"GET", "Range: bytes=0-1,4-6\r\n"},
		{"GET", "Range: bytes=999-\r\n"},
		{"HEAD", "Range: bytes=0-3\r\n"},
		{"HEAD", ""},
		{"GET", "If-None-Match: *\r\n"},
		{"GET", "If-Modified-Since: Mon, 01 Jan 20xx\r\n"},
	} {
		front, want := ask(rig.addr, tc.method, tc.hdr), ask(ln.Addr().String(), tc.method, tc.hdr)
		if front != want {
			t.Errorf("%s %q: front %q, net/http %q", tc.method, tc.hdr, front, want)
		}
	}
}
