package proxy

import (
	"net/http"
)

// NewServer returns an http.Server for a router facing visitors, with the
// default Limits (see NewHardenedServer): it bounds how long a client may
// take to send its headers (slowloris) and how long an idle keep-alive
// connection stays open, but sets no read or write timeout on the whole
// request. Serve it on LimitListener(ln, Limits{}) for the per-IP limit and
// the write-stall deadline.
func NewServer(addr string, h http.Handler) *http.Server {
	srv := NewHardenedServer(h, Limits{})
	srv.Addr = addr
	return srv
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
