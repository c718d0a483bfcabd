package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
)

// MaxRequestBytes bounds every API request body.
const MaxRequestBytes = 1 << 20

// DeployLine is one NDJSON line of a deploy response: an event, or the final result.
type DeployLine struct {
	Event   *pipeline.Event `json:"event,omitempty"`
	Release *state.Release  `json:"release,omitempty"`
	Error   string          `json:"error,omitempty"`
	// Done marks the last line.
	Done bool `json:"done,omitempty"`
}

// Status is what GET /v1/status returns.
type Status struct {
	Driver   string                    `json:"driver"`
	Router   string                    `json:"router"`
	Services []proxy.ServiceStatus     `json:"services"`
	Live     map[string]*state.Release `json:"live"`
}

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	route(mux, "POST /v1/deploy", auth.ScopeDeploy, s.handleDeploy)
	route(mux, "POST /v1/deploys", auth.ScopeDeploy, s.handleJob)
	route(mux, "GET /v1/status", auth.ScopeRead, s.handleStatus)
	route(mux, "GET /v1/certs", auth.ScopeRead, s.handleCerts)
	route(mux, "GET /v1/stores/{store}/releases", auth.ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		rs, err := s.State.Releases(r.Context(), r.PathValue("store"), 0)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if rs == nil {
			rs = []*state.Release{}
		}
		writeJSON(w, http.StatusOK, rs)
	})
	route(mux, "GET /v1/releases/{id}", auth.ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		rel, err := s.State.Release(r.Context(), r.PathValue("id"))
		if errors.Is(err, state.ErrNotFound) {
			writeError(w, http.StatusNotFound, err)
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if err := auth.CheckStore(r.Context(), auth.ScopeRead, rel.Store); err != nil {
			auth.WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rel)
	})
	s.mountRegistry(mux)
	s.mountEnv(mux)
	s.mountAuth(mux)
	s.mountExtra(mux)
	s.mountOps(mux)
	s.mountSecrets(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// handleDeploy streams the deploy's events as NDJSON. The deploy runs to
// completion even if the client goes away: a half-run pipeline is worse than
// an unread log.
func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request) {
	var req pipeline.DeployRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBytes)).Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeFieldError(w, api.Fieldf("body", "the request is larger than %d bytes", MaxRequestBytes))
			return
		}
		writeFieldError(w, api.Fieldf("body", "not a deploy request: %v", err))
		return
	}
	auth.Note(r.Context(), req.Store, "deploy "+req.Store+" ("+string(req.Kind)+")")
	if err := auth.CheckStore(r.Context(), auth.ScopeDeploy, req.Store); err != nil {
		auth.WriteError(w, err)
		return
	}
	if err := s.checkSpec(r.Context(), &req); err != nil {
		auth.NoteError(r.Context(), err.Error())
		writeFieldError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	gone := false
	// A client that stops reading must not stall the pipeline (and its lock):
	// a write that cannot finish within the deadline drops the client.
	send := func(l DeployLine) {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return
		}
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := enc.Encode(l); err != nil {
			gone = true
			return
		}
		if rc.Flush() != nil {
			gone = true
		}
	}
	// The client's context bounds only the wait for the lock (--wait); once the
	// lock is held, Deploy runs to the end whatever the client does.
	rel, err := s.Deployer.Deploy(r.Context(), req, func(e pipeline.Event) {
		s.log.Info(e.Message, "store", e.Store, "stage", e.Stage)
		send(DeployLine{Event: &e})
	})
	last := DeployLine{Release: rel, Done: true}
	if err != nil {
		last.Error = err.Error()
		auth.NoteError(r.Context(), last.Error)
	}
	send(last)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := Status{Driver: s.Driver.Capabilities().Name, Router: s.HTTPAddr(), Services: s.Router.Services(), Live: map[string]*state.Release{}}
	stores := map[string]bool{}
	visible := st.Services[:0]
	for _, svc := range st.Services {
		if store, _, _ := strings.Cut(svc.Name, "/"); auth.CheckStore(r.Context(), auth.ScopeRead, store) == nil {
			visible = append(visible, svc)
		}
	}
	st.Services = visible
	for _, svc := range st.Services {
		store := svc.Name
		for i := range store {
			if store[i] == '/' {
				store = store[:i]
				break
			}
		}
		stores[store] = true
	}
	names := make([]string, 0, len(stores))
	for n := range stores {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if auth.CheckStore(r.Context(), auth.ScopeRead, n) != nil {
			continue
		}
		if rel, err := s.State.Current(r.Context(), n); err == nil {
			st.Live[n] = rel
		}
	}
	writeJSON(w, http.StatusOK, st)
}
