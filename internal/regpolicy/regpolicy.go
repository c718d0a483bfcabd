// Package regpolicy is the one rule for talking to registries over plain HTTP:
// only to loopback hosts (127.0.0.0/8, ::1, localhost), unless the user said
// --insecure-registry. go-containerregistry on its own would also fall back to
// HTTP for private-range addresses, sending credentials in the clear.
package regpolicy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// ErrPlainHTTP is returned for a plain-HTTP request to a non-loopback host without insecure.
var ErrPlainHTTP = errors.New("plain HTTP is only allowed to loopback registries unless Insecure is set")

// IsLoopback reports whether host (optionally with a port, or the first
// element of a reference like host:port/repo) is 127.0.0.0/8, ::1 or localhost.
func IsLoopback(host string) bool {
	host, _, _ = strings.Cut(host, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Transport wraps inner so that plain-HTTP requests to non-loopback hosts fail
// unless insecure.
func Transport(inner http.RoundTripper, insecure bool) http.RoundTripper {
	if inner == nil {
		inner = http.DefaultTransport
	}
	return policy{inner: inner, insecure: insecure}
}

type policy struct {
	inner    http.RoundTripper
	insecure bool
}

func (p policy) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !p.insecure && !IsLoopback(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%w (%s)", ErrPlainHTTP, req.URL.Host)
	}
	return p.inner.RoundTrip(req)
}
