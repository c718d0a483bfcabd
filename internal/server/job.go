package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/deployfile"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/state"
)

// JobLine is one NDJSON line of POST /v1/deploys: an event of a store, a
// store's result (StoreDone), or the end of the job (Done).
type JobLine struct {
	Store   string          `json:"store,omitempty"`
	Event   *pipeline.Event `json:"event,omitempty"`
	Release *state.Release  `json:"release,omitempty"`
	Error   string          `json:"error,omitempty"`
	// StoreDone marks a store's last line; Done the job's last line.
	StoreDone bool `json:"storeDone,omitempty"`
	Done      bool `json:"done,omitempty"`
}

// StoreResult is how one store of a job ended.
type StoreResult struct {
	Store   string
	Release *state.Release
	Err     error
}

// config loads the config serve deploys with, fresh for each job so an
// edited (or pulled) config applies without a restart.
func (s *Server) config() (*config.Config, error) {
	dir := s.o.ConfigDir
	if dir == "" {
		// serve on <repo>/.slipway, the default state dir, deploys <repo>.
		dir = filepath.Dir(s.o.DataDir)
	}
	cfg, err := config.Load(dir, s.o.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("serve has no config to deploy with (start it in the repository, or with -C DIR): %w", err)
	}
	return cfg, nil
}

// limits are serve's request limits with the config's registry allowed.
func (s *Server) limits(cfg *config.Config) api.Limits {
	l := s.o.Limits
	l.Registries = slices.Clone(l.Registries)
	if cfg != nil && cfg.Registry != "" {
		l.Registries = append(l.Registries, cfg.Registry)
	}
	return l
}

// handleJob is POST /v1/deploys: validate, plan every store (nothing runs if any
// store's plan is refused), then deploy the stores in parallel, each failing
// alone, streaming NDJSON.
func (s *Server) handleJob(w http.ResponseWriter, r *http.Request) {
	var jr api.JobRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jr); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeFieldError(w, api.Fieldf("body", "the request is larger than %d bytes", MaxRequestBytes))
			return
		}
		writeFieldError(w, api.Fieldf("body", "not a job request: %v", err))
		return
	}
	auth.Note(r.Context(), strings.Join(jr.Stores, ","), jr.Kind+" "+strings.Join(jr.Stores, ","))
	for _, st := range jr.Stores {
		if err := auth.CheckStore(r.Context(), auth.ScopeDeploy, st); err != nil {
			auth.WriteError(w, err)
			return
		}
	}
	reqs, err := s.PlanJob(r.Context(), jr)
	if err != nil {
		auth.NoteError(r.Context(), err.Error())
		if errors.Is(err, api.ErrInvalid) {
			writeFieldError(w, err)
			return
		}
		writeError(w, http.StatusConflict, err)
		return
	}
	send := ndjsonSender(w)
	var mu sync.Mutex
	var failed []string
	s.RunJob(r.Context(), reqs, func(l JobLine) {
		if l.StoreDone && l.Error != "" {
			mu.Lock()
			failed = append(failed, l.Store+": "+l.Error)
			mu.Unlock()
		}
		send(l)
	})
	if len(failed) > 0 {
		auth.NoteError(r.Context(), strings.Join(failed, "; "))
	}
	send(JobLine{Done: true})
}

// writeFieldError answers 400 with the field at fault.
func writeFieldError(w http.ResponseWriter, err error) {
	var fe *api.FieldError
	if errors.As(err, &fe) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fe.Error(), "field": fe.Field})
		return
	}
	writeError(w, http.StatusBadRequest, err)
}

// ndjsonSender returns a send function that writes and flushes one line at a
// time; a client that stops reading is dropped so it cannot stall a deploy.
func ndjsonSender(w http.ResponseWriter) func(any) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	var mu sync.Mutex
	gone := false
	return func(v any) {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return
		}
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if enc.Encode(v) != nil || rc.Flush() != nil {
			gone = true
		}
	}
}

// RunJob deploys each planned store, at most Options.DeployJobs at once
// (default DefaultDeployJobs). A store that fails (hooks, gate, lock) fails alone: the others
// run to their end. emit gets every event and one StoreDone line per store.
func (s *Server) RunJob(ctx context.Context, reqs []pipeline.DeployRequest, emit func(JobLine)) []StoreResult {
	out := make([]StoreResult, len(reqs))
	var g errgroup.Group
	g.SetLimit(s.o.deployJobs())
	for i, req := range reqs {
		g.Go(func() error {
			job := s.beginStoreJob(ctx, req)
			rel, err := s.Deployer.Deploy(ctx, req, func(e pipeline.Event) {
				s.log.Info(e.Message, "store", e.Store, "stage", e.Stage)
				job.event(e)
				emit(JobLine{Store: req.Store, Event: &e})
			})
			job.end(rel, err)
			out[i] = StoreResult{Store: req.Store, Release: rel, Err: err}
			l := JobLine{Store: req.Store, Release: rel, StoreDone: true}
			if err != nil {
				l.Error = err.Error()
			}
			emit(l)
			return nil // never cancel the other stores
		})
	}
	g.Wait()
	return out
}

// PlanJob validates a job and turns it into one deploy spec per store, all
// computed here: the config's env merged with the stored env and the secrets
// supplied, the hooks of the deploy files, the images resolved and checked,
// the release a rollback returns to. Any refusal means nothing runs.
func (s *Server) PlanJob(ctx context.Context, jr api.JobRequest) ([]pipeline.DeployRequest, error) {
	cfg, err := s.config()
	if err != nil {
		return nil, err
	}
	l := s.limits(cfg)
	if err := jr.Validate(cfg, l); err != nil {
		return nil, err
	}
	var reqs []pipeline.DeployRequest
	for i, store := range jr.Stores {
		req, err := s.planStore(ctx, cfg, l, jr, i, store)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, req)
	}
	return reqs, nil
}

func (s *Server) planStore(ctx context.Context, cfg *config.Config, l api.Limits, jr api.JobRequest, i int, store string) (pipeline.DeployRequest, error) {
	field := fmt.Sprintf("stores[%d]", i)
	images, commit, err := s.storeImages(ctx, l, jr, field, store)
	if err != nil {
		return pipeline.DeployRequest{}, err
	}
	o := pipeline.RequestOptions{Commit: commit, Kind: state.Kind(jr.Kind), Destructive: jr.Destructive, Wait: jr.Wait, Getenv: secretGetenv(jr.Secrets)}
	if o.RuntimeEnv, err = s.State.Env(ctx, store); err != nil {
		return pipeline.DeployRequest{}, fmt.Errorf("reading the env of %s: %w", store, err)
	}
	// Secrets serve keeps (`slipway secrets set`) need no value in the request;
	// the Deployer adds them, a value the caller sent winning.
	if s.Deployer.Secrets != nil {
		stored, err := s.Deployer.Secrets(ctx, store)
		if err != nil {
			return pipeline.DeployRequest{}, fmt.Errorf("reading the stored secrets of %s: %w", store, err)
		}
		o.StoredSecrets = slices.Sorted(maps.Keys(stored))
	}
	// A rollback returns to old images and must not run today's migrations against them; a restart runs none.
	if jr.Kind == api.KindBuildDeploy || jr.Kind == api.KindDeployOnly {
		eff, err := deployfile.Load(cfg, store, deployfile.WithGetenv(func(k string) string { return jr.Hooks[k] }))
		if err != nil {
			return pipeline.DeployRequest{}, api.Fieldf(field, "%v", err)
		}
		o.Hooks = hooksOf(eff)
	}
	req, err := pipeline.NewDeployRequest(cfg, store, images, o)
	if err != nil {
		return pipeline.DeployRequest{}, api.Fieldf(field, "%v", err)
	}
	for j := range req.Apps {
		if n := jr.Instances[req.Apps[j].App]; n > 0 {
			req.Apps[j].Instances = n
		}
	}
	if err := req.Validate(l, cfg.Store(store).Domains...); err != nil {
		var fe *api.FieldError
		if errors.As(err, &fe) {
			fe.Field = field + "." + fe.Field
		}
		return pipeline.DeployRequest{}, err
	}
	return req, nil
}

// secretGetenv reads secrets from the request only: never serve's own
// environment, and never a NAME_FILE path (that would read serve's files).
func secretGetenv(secrets map[string]string) func(string) string {
	return func(k string) string {
		if strings.HasSuffix(k, "_FILE") {
			return ""
		}
		return secrets[k]
	}
}

func hooksOf(e deployfile.Effective) pipeline.Hooks {
	conv := func(h deployfile.Hook) pipeline.Hook {
		return pipeline.Hook{Command: h.Command, App: h.App, Timeout: h.Timeout}
	}
	return pipeline.Hooks{PreDeploy: conv(e.PreDeploy), Install: conv(e.Install),
		DestructiveInstall: conv(e.DestructiveInstall), PostDeploy: conv(e.PostDeploy)}
}

// storeImages chooses a store's images: the pushed ones (build-deploy), the
// live release's (deploy-only, restart) or an earlier release's (rollback).
func (s *Server) storeImages(ctx context.Context, l api.Limits, jr api.JobRequest, field, store string) ([]pipeline.BuiltImage, string, error) {
	var from *state.Release
	switch jr.Kind {
	case api.KindBuildDeploy:
		var out []pipeline.BuiltImage
		for k, im := range jr.Images {
			if im.Store != store {
				continue
			}
			b, err := s.resolveImage(ctx, fmt.Sprintf("images[%d]", k), im, l)
			if err != nil {
				return nil, "", err
			}
			out = append(out, b)
		}
		return out, jr.Commit, nil
	case api.KindDeployOnly, api.KindRestart:
		live, err := s.State.Current(ctx, store)
		if errors.Is(err, state.ErrNotFound) {
			return nil, "", api.Fieldf(field, "store %s has no live release: a %s job needs one (deploy it first)", store, jr.Kind)
		}
		if err != nil {
			return nil, "", err
		}
		from = live
	case api.KindRollback:
		rs, err := s.State.Releases(ctx, store, 0)
		if err != nil {
			return nil, "", err
		}
		if from, err = RollbackTarget(rs, jr.To); err != nil {
			return nil, "", api.Fieldf(field, "%v", err)
		}
	}
	var out []pipeline.BuiltImage
	for app, im := range from.Images {
		b, err := s.resolveImage(ctx, field+".images."+app, api.ImageRef{Store: store, App: app, Ref: im.Ref, Digest: im.Digest}, l)
		if err != nil {
			return nil, "", fmt.Errorf("release %s: %w", from.ID, err)
		}
		out = append(out, b)
	}
	return out, from.Commit, nil
}

// RollbackTarget picks the release to return to: the newest of commit prefix
// to that once served, or (to == "") the one that served before the live one.
func RollbackTarget(rs []*state.Release, to string) (*state.Release, error) {
	served := func(r *state.Release) bool { return r.Status == state.StatusLive || r.Status == state.StatusSuperseded }
	if to != "" {
		for _, r := range rs {
			if strings.HasPrefix(r.Commit, to) && served(r) {
				return r, nil
			}
		}
		return nil, fmt.Errorf("no release of commit %s ever went live", to)
	}
	seenLive := false
	for _, r := range rs {
		if r.Status == state.StatusLive {
			seenLive = true
			continue
		}
		if seenLive && served(r) {
			return r, nil
		}
	}
	return nil, errors.New("no earlier release to roll back to")
}

// DefaultDeployJobs caps the stores of one job deploying at once. A fleet
// wave is one job, and its size is the operator's choice of parallelism
// (`deploy --all --wave N`): a cap below it made a wave of 10 run as 8 and
// then 2, doubling its time. The cap only guards serve against a job of
// hundreds of stores.
const DefaultDeployJobs = 32

func (o Options) deployJobs() int {
	if o.DeployJobs > 0 {
		return o.DeployJobs
	}
	return DefaultDeployJobs
}

// resolveTimeout bounds one registry lookup while planning a job.
func (o Options) resolveTimeout() time.Duration { return 30 * time.Second }

// DeployStores sends a deploy job and streams its events to onEvent; it returns each store's
// result. The error is for the request itself (refused, 400 with the field, unreachable).
func (c *Client) DeployStores(ctx context.Context, jr api.JobRequest, onEvent func(pipeline.Event)) ([]StoreResult, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/deploys", jr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []StoreResult
	for sc.Scan() {
		var l JobLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return out, fmt.Errorf("%w: %v", ErrStreamBroken, err)
		}
		switch {
		case l.Done:
			return out, nil
		case l.StoreDone:
			r := StoreResult{Store: l.Store, Release: l.Release}
			if l.Error != "" {
				r.Err = errors.New(l.Error)
			}
			out = append(out, r)
		case l.Event != nil && onEvent != nil:
			onEvent(*l.Event)
		}
	}
	return out, ErrStreamBroken
}

// ErrStreamBroken means the server stopped answering in the middle of a job
// (it died or restarted): the stores with no result may or may not have deployed.
var ErrStreamBroken = errors.New("the server closed the deploy stream before the end: see `slipway releases` and the server log")
