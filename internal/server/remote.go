package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
)

// ErrInsecureAPI refuses plain HTTP for the API on a non-loopback address.
var ErrInsecureAPI = errors.New("--api on a non-loopback address needs --api-cert and --api-key (or --api-insecure, behind a TLS proxy you trust)")

// listenAPI binds --api: TLS with the given certificate, plain HTTP only on
// loopback (tokens would cross the network in clear) unless APIInsecure.
func (s *Server) listenAPI() error {
	addr := s.o.APIAddr
	tlsOn := s.o.APICert != "" || s.o.APIKey != ""
	if tlsOn && (s.o.APICert == "" || s.o.APIKey == "") {
		return errors.New("--api-cert and --api-key go together")
	}
	autoTLS, err := s.apiAutoTLS()
	if err != nil {
		return err
	}
	if tlsOn && autoTLS != nil {
		return errors.New("--api-domain and --api-cert/--api-key exclude each other")
	}
	if !tlsOn && autoTLS == nil && !s.o.APIInsecure && !loopback(addr) {
		return fmt.Errorf("--api %s: %w", addr, ErrInsecureAPI)
	}
	ln, err := s.listen("remote-api", "tcp", addr)
	if err != nil {
		return fmt.Errorf("api listen on %s: %w", addr, err)
	}
	if tlsOn {
		cert, err := tls.LoadX509KeyPair(s.o.APICert, s.o.APIKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("loading --api-cert/--api-key: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		s.apiScheme = "https"
	} else if autoTLS != nil {
		ln = tls.NewListener(ln, autoTLS) // the edge's certificate for --api-domain
		s.apiScheme = "https"
	} else {
		s.apiScheme = "http"
	}
	s.remoteLn = ln
	return nil
}

// loopback reports whether addr's host is a loopback name or address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// APIURL is the --api listener's base URL once Listen returned, "" without --api.
func (s *Server) APIURL() string {
	if s.remoteLn == nil {
		return ""
	}
	return s.apiScheme + "://" + s.remoteLn.Addr().String()
}

// remoteServer serves the API to token holders on --api.
func (s *Server) remoteServer(h http.Handler) *http.Server {
	return &http.Server{Handler: s.gate.Remote(h), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
}

// openAuth opens the token and audit tables and the Gate that uses them.
func (s *Server) openAuth(ctx context.Context) error {
	var err error
	if s.Tokens, err = auth.OpenTokens(ctx, s.State); err != nil {
		return err
	}
	if s.Audit, err = auth.OpenAudit(ctx, s.State); err != nil {
		return err
	}
	s.gate = &auth.Gate{Tokens: s.Tokens, Audit: s.Audit, Log: s.log}
	return nil
}
