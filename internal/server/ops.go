package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// OpLine is one NDJSON line of a day-two operation's answer (restart, stop,
// start, scale, remove, prune, run): an event, output of `run`, or the end.
type OpLine struct {
	Event *pipeline.Event `json:"event,omitempty"`
	// Stream ("stdout" or "stderr") and Data carry output of `run`.
	Stream string `json:"stream,omitempty"`
	Data   string `json:"data,omitempty"`
	Error  string `json:"error,omitempty"`
	// Exit is the exit code of `run`.
	Exit *int `json:"exit,omitempty"`
	// Removed lists what `prune` removed.
	Removed []string `json:"removed,omitempty"`
	Done    bool     `json:"done,omitempty"`
}

// ScaleRequest is the body of POST /v1/stores/{store}/scale.
type ScaleRequest struct {
	Instances map[string]int `json:"instances"`
}

// RunRequest is the body of POST /v1/stores/{store}/run.
type RunRequest struct {
	App string   `json:"app,omitempty"`
	Cmd []string `json:"cmd"`
}

// mountOps serves the day-two operations.
func (s *Server) mountOps(mux *http.ServeMux) {
	route(mux, "GET /v1/ps", auth.ScopeRead, s.handlePS)
	// Prune acts on every store's images: admins only.
	route(mux, "POST /v1/prune", auth.ScopeAdmin, func(w http.ResponseWriter, r *http.Request) {
		auth.Note(r.Context(), "", "prune")
		st := newOpStream(w)
		removed, err := s.Deployer.Prune(r.Context(), st.event)
		st.done(OpLine{Removed: removed}, err)
	})
	for op, fn := range map[string]func(context.Context, string, func(pipeline.Event)) error{
		"restart": s.Deployer.Restart, "stop": s.Deployer.Stop, "start": s.Deployer.Start, "remove": s.Deployer.Remove,
	} {
		route(mux, "POST /v1/stores/{store}/"+op, auth.ScopeDeploy, func(w http.ResponseWriter, r *http.Request) {
			store, ok := storeParam(w, r)
			if !ok {
				return
			}
			auth.Note(r.Context(), store, op)
			st := newOpStream(w)
			st.done(OpLine{}, fn(r.Context(), store, st.event))
		})
	}
	route(mux, "POST /v1/stores/{store}/scale", auth.ScopeDeploy, func(w http.ResponseWriter, r *http.Request) {
		store, ok := storeParam(w, r)
		if !ok {
			return
		}
		auth.Note(r.Context(), store, "scale")
		var req ScaleRequest
		if !decodeBody(w, r, &req) {
			return
		}
		if len(req.Instances) == 0 {
			writeError(w, http.StatusBadRequest, errors.New("instances: name at least one app, APP=N"))
			return
		}
		for app, n := range req.Instances {
			if n < 1 || n > pipeline.MaxInstances {
				writeError(w, http.StatusBadRequest, fmt.Errorf("instances.%s: %d is out of range 1-%d", app, n, pipeline.MaxInstances))
				return
			}
		}
		st := newOpStream(w)
		st.done(OpLine{}, s.Deployer.Scale(r.Context(), store, req.Instances, st.event))
	})
	route(mux, "POST /v1/stores/{store}/run", auth.ScopeDeploy, s.handleRun)
	s.mountLogs(mux)
}

func storeParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	store := r.PathValue("store")
	if !storeIDRe.MatchString(store) || len(store) > 128 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("store: %q is not a store id", store))
		return "", false
	}
	return store, true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the request: %w", err))
		return false
	}
	return true
}

func (s *Server) handlePS(w http.ResponseWriter, r *http.Request) {
	store := r.URL.Query().Get("store")
	if store != "" && !storeIDRe.MatchString(store) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("store: %q is not a store id", store))
		return
	}
	if store != "" {
		if err := auth.CheckStore(r.Context(), auth.ScopeRead, store); err != nil {
			auth.WriteError(w, err)
			return
		}
	}
	ps, err := s.Deployer.PS(r.Context(), store)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("listing instances: %w", err))
		return
	}
	// A token limited to some stores sees only theirs.
	visible := ps[:0]
	for _, p := range ps {
		if auth.CheckStore(r.Context(), auth.ScopeRead, p.Store) == nil {
			visible = append(visible, p)
		}
	}
	writeJSON(w, http.StatusOK, visible)
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	store, ok := storeParam(w, r)
	if !ok {
		return
	}
	auth.Note(r.Context(), store, "run")
	var req RunRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if len(req.Cmd) > 256 {
		writeError(w, http.StatusBadRequest, errors.New("cmd: more than 256 arguments"))
		return
	}
	st := newOpStream(w)
	// The command ends when the client goes away: a one-off with nobody
	// watching it is not worth running on.
	code, err := s.Deployer.Run(r.Context(), pipeline.RunSpec{Store: store, App: req.App, Cmd: req.Cmd,
		Stdout: st.output("stdout"), Stderr: st.output("stderr")})
	st.done(OpLine{Exit: &code}, err)
}

// opStream writes an operation's NDJSON answer. A client that stops reading
// is dropped rather than allowed to stall the operation (and its lock).
type opStream struct {
	mu   sync.Mutex
	w    http.ResponseWriter
	rc   *http.ResponseController
	enc  *json.Encoder
	gone bool
}

func newOpStream(w http.ResponseWriter) *opStream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	return &opStream{w: w, rc: http.NewResponseController(w), enc: json.NewEncoder(w)}
}

func (s *opStream) send(l OpLine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return
	}
	s.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if s.enc.Encode(l) != nil || s.rc.Flush() != nil {
		s.gone = true
	}
}

func (s *opStream) event(e pipeline.Event) { s.send(OpLine{Event: &e}) }

func (s *opStream) done(l OpLine, err error) {
	if err != nil {
		l.Error = err.Error()
	}
	l.Done = true
	s.send(l)
}

type streamWriter struct {
	s    *opStream
	name string
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.s.send(OpLine{Stream: w.name, Data: string(p)})
	return len(p), nil
}

func (s *opStream) output(name string) streamWriter { return streamWriter{s, name} }
