package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/source"
)

var storeIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func jobError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, jobs.ErrFinished):
		writeError(w, http.StatusConflict, err)
	default:
		var ae *auth.Error
		if errors.As(err, &ae) {
			auth.WriteError(w, err)
			return
		}
		writeError(w, http.StatusInternalServerError, err)
	}
}

// listJobs serves GET /v1/jobs?store=&status=&limit=, only the stores the caller may read.
func (s *Service) listJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := jobs.Filter{Store: q.Get("store"), Status: q.Get("status"), Delivery: q.Get("delivery")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a positive number", l))
			return
		}
		f.Limit = n
	}
	list, err := s.Queue.List(r.Context(), f)
	if err != nil {
		jobError(w, err)
		return
	}
	out := []*jobs.Job{}
	for _, j := range list {
		if auth.CheckStore(r.Context(), auth.ScopeRead, j.Store) == nil {
			out = append(out, j)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) job(r *http.Request, need auth.Scope) (*jobs.Job, error) {
	j, err := s.Queue.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if err := auth.CheckStore(r.Context(), need, j.Store); err != nil {
		return nil, err
	}
	return j, nil
}

func (s *Service) getJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.job(r, auth.ScopeRead)
	if err != nil {
		jobError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Service) cancelJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.job(r, auth.ScopeDeploy)
	if err != nil {
		jobError(w, err)
		return
	}
	auth.Note(r.Context(), j.Store, "cancel "+j.ID)
	j, err = s.Queue.Cancel(r.Context(), j.ID, callerName(r.Context()))
	if err != nil {
		jobError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func callerName(ctx context.Context) string {
	if id := auth.FromContext(ctx); id != nil && id.Name != "" {
		return id.Name
	}
	return "unknown"
}

// LogEvent is one server-sent event of a job's log stream: a line, or the job's final state.
type LogEvent struct {
	Line *jobs.Line `json:"line,omitempty"`
	Job  *jobs.Job  `json:"job,omitempty"`
}

// jobLog serves GET /v1/jobs/{id}/log: JSON lines after ?after=N, or, with
// Accept: text/event-stream, a live stream that resumes after Last-Event-ID
// and ends with an "end" event carrying the finished job.
func (s *Service) jobLog(w http.ResponseWriter, r *http.Request) {
	j, err := s.job(r, auth.ScopeRead)
	if err != nil {
		jobError(w, err)
		return
	}
	after := int64(0)
	if a := r.URL.Query().Get("after"); a != "" {
		if after, err = strconv.ParseInt(a, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("after %q: want a number", a))
			return
		}
	}
	if r.Header.Get("Accept") != "text/event-stream" {
		lines, err := s.Queue.Logs(r.Context(), j.ID, after, 0)
		if err != nil {
			jobError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, lines)
		return
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			after = n
		}
	}
	StreamLog(w, r, s.Queue, j.ID, after)
}

// StreamLog writes a job's log as server-sent events (id = line number) until the job ends or the client goes.
func StreamLog(w http.ResponseWriter, r *http.Request, q *jobs.Queue, id string, after int64) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	ch, stop := q.Subscribe(id)
	defer stop()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		lines, err := q.Logs(r.Context(), id, after, 500)
		if err != nil {
			return
		}
		for _, l := range lines {
			b, _ := json.Marshal(LogEvent{Line: &l})
			fmt.Fprintf(w, "id: %d\nevent: line\ndata: %s\n\n", l.Seq, b)
			after = l.Seq
		}
		if len(lines) == 500 {
			rc.Flush()
			continue
		}
		j, err := q.Get(r.Context(), id)
		if err != nil {
			return
		}
		if j.Done() {
			// Lines written just before the end are in; send them, then the end.
			if more, _ := q.Logs(r.Context(), id, after, 500); len(more) > 0 {
				continue
			}
			b, _ := json.Marshal(LogEvent{Job: j})
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", b)
			rc.Flush()
			return
		}
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-ch:
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		}
	}
}

// DeployRequest is the body of POST /v1/source/deploy.
type DeployRequest struct {
	// Commit is a full commit id or a branch of the configured repository; default the configured branch.
	Commit string `json:"commit"`
	// Stores are deployed whether they changed or not; none: the stores that changed since their live commit.
	Stores     []string `json:"stores,omitempty"`
	DeployOnly bool     `json:"deployOnly,omitempty"`
}

// deployCommit serves POST /v1/source/deploy: `slipway deploy --commit`.
func (s *Service) deployCommit(w http.ResponseWriter, r *http.Request) {
	var req DeployRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the request: %w", err))
		return
	}
	if s.Repo == nil {
		writeError(w, http.StatusConflict, ErrNoSource)
		return
	}
	if err := s.checkRequest(r.Context(), &req); err != nil {
		auth.WriteError(w, err)
		return
	}
	ctx := context.WithoutCancel(r.Context())
	commit, err := s.resolve(ctx, req.Commit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	auth.Note(r.Context(), storeNote(req.Stores), "deploy commit "+short(commit))
	ds, err := s.decide(ctx, commit, Trigger{Kind: jobs.TriggerAPI, Who: callerName(r.Context()), Stores: req.Stores, DeployOnly: req.DeployOnly})
	if err != nil {
		auth.NoteError(r.Context(), err.Error())
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Answer{Status: "accepted", Commit: commit, Stores: ds})
}

func storeNote(stores []string) string {
	if len(stores) == 1 {
		return stores[0]
	}
	return ""
}

// checkRequest validates the request and the caller's right to every store it may touch.
func (s *Service) checkRequest(ctx context.Context, req *DeployRequest) error {
	bad := func(format string, args ...any) error {
		return &auth.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
	}
	if req.Commit != "" && !source.IsSHA(req.Commit) && source.CheckBranch(req.Commit) != nil {
		return bad("commit %q: give a full commit id (40 hex digits) or a branch name", req.Commit)
	}
	seen := map[string]bool{}
	for _, st := range req.Stores {
		if !storeIDRe.MatchString(st) || seen[st] {
			return bad("stores: %q is not a store id, or is given twice", st)
		}
		seen[st] = true
		if err := auth.CheckStore(ctx, auth.ScopeDeploy, st); err != nil {
			return err
		}
	}
	if len(req.Stores) == 0 {
		if req.DeployOnly {
			return bad("a deploy-only job needs the stores named (--store-id)")
		}
		if id := auth.FromContext(ctx); id != nil && id.Stores != "" && id.Stores != "*" {
			return &auth.Error{Code: http.StatusForbidden, Msg: fmt.Sprintf("token %s may act on stores %s only: name them with --store-id", id.Name, id.Stores)}
		}
	}
	return nil
}

// resolve fetches what rev names from the configured repository and returns its commit id.
func (s *Service) resolve(ctx context.Context, rev string) (string, error) {
	if rev == "" {
		rev = s.Repo.Branch()
	}
	if source.IsSHA(rev) {
		return rev, s.Repo.FetchCommit(ctx, rev)
	}
	return s.Repo.FetchBranch(ctx, rev)
}
