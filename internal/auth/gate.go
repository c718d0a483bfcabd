package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Gate authenticates API calls and audits the mutating ones. One Gate serves
// both doors: Remote (bearer tokens, TCP) and Local (the unix socket, whose
// callers are the host's admin).
type Gate struct {
	Tokens *Tokens
	Audit  *Audit
	// Log receives audit write failures; default slog.Default().
	Log *slog.Logger
}

// Remote wraps next for the TCP listener: an Authorization: Bearer token is
// checked (a bad one is 401 at once); a call without one goes on anonymous,
// and RequireScope refuses it with 401 unless the route is public.
func (g *Gate) Remote(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := &Identity{Name: "anonymous", Via: "anonymous", Remote: r.RemoteAddr}
		if h := r.Header.Get("Authorization"); h != "" {
			secret, ok := strings.CutPrefix(h, "Bearer ")
			if !ok {
				g.serve(w, r, id, refuse(&Error{http.StatusUnauthorized, "Authorization must be \"Bearer <token>\""}))
				return
			}
			v, err := g.Tokens.Verify(r.Context(), strings.TrimSpace(secret))
			if err != nil {
				g.serve(w, r, id, refuse(err))
				return
			}
			v.Remote = r.RemoteAddr
			id = v
		}
		g.serve(w, r, id, next)
	})
}

// Local wraps next for the unix socket: whoever can open it (mode 0600, the
// serve user) is the host's admin. The peer's uid, when the kernel tells it,
// names the caller in the audit trail.
func (g *Gate) Local(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "unix"
		if p, ok := r.Context().Value(peerKey{}).(string); ok && p != "" {
			name = p
		}
		g.serve(w, r, &Identity{Name: name, Scope: ScopeAdmin, Via: "socket", Remote: "unix socket"}, next)
	})
}

func refuse(err error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { WriteError(w, err) })
}

// mutating methods are audited; reads are not (they change nothing).
func mutating(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

func (g *Gate) serve(w http.ResponseWriter, r *http.Request, id *Identity, next http.Handler) {
	ctx := WithIdentity(r.Context(), id)
	if !mutating(r.Method) || g.Audit == nil {
		next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	n := &note{}
	ctx = context.WithValue(ctx, noteKey{}, n)
	e := &Entry{At: time.Now(), Actor: id.Name, Via: id.Via, Remote: id.Remote, Method: r.Method, Path: r.URL.Path}
	if err := g.Audit.begin(ctx, e); err != nil {
		// An unaudited change is not allowed: refuse rather than act unrecorded.
		g.log().Error("audit", "error", err)
		// The cause (e.g. "database or disk is full") tells the operator what to fix.
		WriteError(w, fmt.Errorf("the audit trail cannot be written (%v); nothing was changed", err))
		return
	}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	// The mux fills path values into this request, so the store is readable after it ran.
	r = r.WithContext(ctx)
	defer func() {
		n.mu.Lock()
		e.Store, e.Action, e.Error = n.store, n.action, n.err
		n.mu.Unlock()
		e.Status, e.Took = sw.code, time.Since(e.At)
		if e.Store == "" {
			e.Store = r.PathValue("store")
		}
		if err := g.Audit.end(context.WithoutCancel(ctx), e); err != nil {
			g.log().Error("audit", "error", err)
		}
	}()
	next.ServeHTTP(sw, r)
}

func (g *Gate) log() *slog.Logger {
	if g.Log != nil {
		return g.Log
	}
	return slog.Default()
}

// statusWriter remembers the status code; Unwrap keeps Flush and deadlines
// reachable through http.ResponseController (deploys stream NDJSON).
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// RequireScope serves h only to callers with scope need; when the route has a
// {store} wildcard, the caller's stores glob must match it too.
func RequireScope(need Scope, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		if store := r.PathValue("store"); store != "" {
			err = CheckStore(r.Context(), need, store)
		} else {
			err = Check(r.Context(), need)
		}
		if err != nil {
			WriteError(w, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// WriteError answers {"error": msg} with the status an *Error carries (500 otherwise).
func WriteError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var ae *Error
	if errors.As(err, &ae) {
		code = ae.Code
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

type peerKey struct{}

// PeerConnContext is an http.Server ConnContext for the unix socket: it records
// the peer's uid (SO_PEERCRED) so the audit trail names the local caller.
func PeerConnContext(ctx context.Context, c net.Conn) context.Context {
	if uc, ok := c.(*net.UnixConn); ok {
		if p := peerName(uc); p != "" {
			return context.WithValue(ctx, peerKey{}, p)
		}
	}
	return ctx
}
