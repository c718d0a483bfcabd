package server

import (
	"net/http"
	"strings"

	"github.com/slipway-dev/slipway/internal/auth"
)

// registryAuth guards the /v2/ listener (serve --registry-listen): every pull
// needs a slipway token with read scope, as the registry password (docker
// login ADDR -u anything --password-stdin) or as a bearer token. Serve's own
// drivers never pull through it: they read the image store from disk.
func (s *Server) registryAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := ""
		if _, pw, ok := r.BasicAuth(); ok {
			secret = pw
		} else if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			secret = strings.TrimSpace(b)
		}
		if secret == "" || s.Tokens == nil {
			s.registryDenied(w, http.StatusUnauthorized, "a read token is needed: docker login with a token from `slipway token create --scope read` as the password")
			return
		}
		id, err := s.Tokens.Verify(r.Context(), secret)
		if err != nil {
			s.registryDenied(w, http.StatusUnauthorized, "the token is not valid (revoked, expired or not a slipway token)")
			return
		}
		if !id.Scope.Allows(auth.ScopeRead) {
			s.registryDenied(w, http.StatusForbidden, "the token has no read scope")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) registryDenied(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("WWW-Authenticate", `Basic realm="slipway"`)
	ecode := "UNAUTHORIZED"
	if code == http.StatusForbidden {
		ecode = "DENIED"
	}
	registryError(w, code, ecode, msg)
}
