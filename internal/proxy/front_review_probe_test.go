package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// firstAnswers sends raw on a new connection to addr and returns the
// status lines it gets back before the connection closes or goes quiet.
func firstAnswers(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(raw))
	c.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
	br := bufio.NewReader(c)
	var got []string
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		b := new(strings.Builder)
		bufio.NewReader(res.Body).WriteTo(b)
		res.Body.Close()
		got = append(got, res.Status+" "+b.String()[:min(b.Len(), 12)])
	}
	return strings.Join(got, " | ")
}

// Odd and hostile request heads get the same answers through the front
// as from net/http's server alone (the front takes only heads it parses
// strictly and hands the rest over unread).
func TestReviewFrontAnswersOddHeadsAsNetHTTP(t *testing.T) {
	rig := newFrontRig(t, Limits{}, nil, nil)
	b := newBackend(t, "v1")
	b.handle(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok " + r.URL.Path)) })
	deploy(t, rig.r, "us/app", []string{"shop.example"}, b.addr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := NewHardenedServer(rig.r, Limits{})
	go plain.Serve(ln)
	t.Cleanup(func() { plain.Close() })

	const h = "Host: shop.example\r\n"
	for name, raw := range map[string]string{
		"cl+te":           "GET /a HTTP/1.1\r\n" + h + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\n" + h + "\r\n",
		"two cl":          "GET /a HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
		"obs-fold":        "GET /a HTTP/1.1\r\n" + h + "X-A: 1\r\n 2\r\n\r\n",
		"bare lf":         "GET /a HTTP/1.1\n" + h + "\n",
		"space colon":     "GET /a HTTP/1.1\r\nHost : shop.example\r\n\r\n",
		"nul value":       "GET /a HTTP/1.1\r\n" + h + "X-A: a\x00b\r\n\r\n",
		"bad name":        "GET /a HTTP/1.1\r\n" + h + "X(A): 1\r\n\r\n",
		"get body":        "GET /a HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n" + h + "\r\n",
		"pipelined":       "GET /a HTTP/1.1\r\n" + h + "\r\nGET /b HTTP/1.1\r\n" + h + "\r\nGET /c HTTP/1.1\r\n" + h + "\r\n",
		"http10":          "GET /a HTTP/1.0\r\n" + h + "\r\nGET /b HTTP/1.0\r\n" + h + "\r\n",
		"close":           "GET /a HTTP/1.1\r\n" + h + "Connection: close\r\n\r\nGET /b HTTP/1.1\r\n" + h + "\r\n",
		"no host":         "GET /a HTTP/1.1\r\n\r\n",
		"two hosts":       "GET /a HTTP/1.1\r\n" + h + h + "\r\n",
		"absolute":        "GET http://shop.example/a HTTP/1.1\r\nHost: other.example\r\n\r\n",
		"bad host":        "GET /a HTTP/1.1\r\nHost: shop.example/x\r\n\r\n",
		"te only":         "GET /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"long uri":        "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\n" + h + "\r\n",
		"lower method":    "get /a HTTP/1.1\r\n" + h + "\r\n",
		"http2 preface":   "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"expect":          "GET /a HTTP/1.1\r\n" + h + "Expect: 100-continue\r\n\r\n",
		"leading crlf":    "\r\nGET /a HTTP/1.1\r\n" + h + "\r\n",
		"te chunked, cl0": "DELETE /a HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			front, want := firstAnswers(t, rig.addr, raw), firstAnswers(t, ln.Addr().String(), raw)
			if front != want {
				t.Errorf("front answered %q, net/http %q", front, want)
			}
			if name == "pipelined" && front != "200 OK ok /a | 200 OK ok /b | 200 OK ok /c" {
				t.Errorf("pipelined answers %q, want three in order", front)
			}
		})
	}
}
