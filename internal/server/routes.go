package server

import (
	"net/http"

	"github.com/slipway-dev/slipway/internal/auth"
)

// extraRoute is a route another part of serve (webhooks, console, ops) adds to the API.
type extraRoute struct {
	pattern string
	scope   auth.Scope // "" for a public route
	h       http.Handler
}

// Handle adds a route to the API mux (both the unix socket and --api) that
// only callers with scope may use; a {store} wildcard in the pattern is checked
// against the caller's stores glob. Mutating calls are audited: call
// auth.Note(ctx, store, action) to say what the call did. Call before Serve.
func (s *Server) Handle(pattern string, scope auth.Scope, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = append(s.routes, extraRoute{pattern: pattern, scope: scope, h: h})
}

// HandlePublic adds a route that needs no token (a webhook that checks its
// own signature, a login page). It is still audited when it mutates. Call before Serve.
func (s *Server) HandlePublic(pattern string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = append(s.routes, extraRoute{pattern: pattern, h: h})
}

// route registers h on mux behind a scope check.
func route(mux *http.ServeMux, pattern string, scope auth.Scope, h http.HandlerFunc) {
	mux.Handle(pattern, auth.RequireScope(scope, h))
}

func (s *Server) mountExtra(mux *http.ServeMux) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.routes {
		if r.scope == "" {
			mux.Handle(r.pattern, r.h)
			continue
		}
		mux.Handle(r.pattern, auth.RequireScope(r.scope, r.h))
	}
}
