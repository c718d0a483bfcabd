package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/pipeline"
)

// /metrics is served on the API (the socket is the admin's) and on the
// --metrics listener, with the router's figures and the release counts.
func TestMetricsOnAPIAndMetricsListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	h := serveWith(t, Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", Driver: "process", Log: io.Discard, StopOnExit: true,
		Edge: EdgeOptions{MetricsAddr: maddr}})

	if _, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}}); err != nil {
		t.Fatal(err)
	}
	if code, _ := h.get("us.localhost", "/release"); code != 200 {
		t.Fatalf("GET through the router: %d", code)
	}
	unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", SocketPath(dir))
	}}}
	for name, url := range map[string]string{"api": "http://slipway/metrics", "--metrics": "http://" + maddr + "/metrics"} {
		c := http.DefaultClient
		if name == "api" {
			c = unix
		}
		res, err := c.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		out := string(b)
		for _, want := range []string{
			`slipway_http_requests_total{store="us",app="web",code="2xx"} `, // verify's request and ours
			`slipway_releases{store="us",status="live"} 1`,
			`slipway_target_up{store="us",app="web",target=`,
		} {
			if res.StatusCode != 200 || !strings.Contains(out, want) {
				t.Errorf("%s: %d, lacks %q:\n%s", name, res.StatusCode, want, out)
			}
		}
		if strings.Contains(out, `code="2xx"} 0`) {
			t.Errorf("%s: the GET is not counted:\n%s", name, out)
		}
	}
}
