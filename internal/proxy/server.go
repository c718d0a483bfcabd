package proxy

import (
	"log"
	"net/http"
	"time"
)

// NewServer returns an http.Server for a router facing visitors. It bounds
// how long a client may take to send its headers (slowloris) and how long an
// idle keep-alive connection stays open, but sets no read or write timeout
// on the whole request: uploads, long polls, server-sent events and
// websockets may legitimately last minutes.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		// TLS handshake noise and clients hanging up are not worth a log line each.
		ErrorLog: log.New(discard{}, "", 0),
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
