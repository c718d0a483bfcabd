// Package push deploys on git push: serve's repository source, the webhooks
// at /hooks/{github,gitlab,gitea}, the job queue's API (/v1/jobs) and the
// runner that builds an exact commit and deploys it. A trigger (webhook, CLI,
// console) says what to deploy; this package decides which stores changed
// since each one's live commit and queues one job per store.
package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/state"
)

// Options configure a Service.
type Options struct {
	// DataDir is serve's state dir: jobs.db and the source cache go below it.
	DataDir string
	// Source is the repository; empty URL: no repository (webhooks and commit deploys are refused).
	Source source.Options
	// SecretFiles maps a provider (source.GitHub, ...) to its webhook secret file.
	SecretFiles map[string]string
	// Jobs bounds how many jobs run at once; default 1.
	Jobs int
	// DecideBudget bounds how long a webhook's answer waits for its decisions; default DecideBudget.
	DecideBudget time.Duration
	// Notify, when set, receives every job that ended.
	Notify func(*jobs.Job)
	Log    *slog.Logger
}

// Deps are the parts of serve a job uses.
type Deps struct {
	State    *state.DB
	Deployer *pipeline.Deployer
	Images   *registry.Layout
}

// Service is the push side of serve.
type Service struct {
	o       Options
	d       Deps
	log     *slog.Logger
	Repo    *source.Repo
	Queue   *jobs.Queue
	sched   *jobs.Scheduler
	secrets map[string][]byte
	outDir  string
	// now is the clock for answer deadlines (tests).
	now func() time.Time
	// budget is Options.DecideBudget.
	budget time.Duration
	// rollouts are the fleet rollouts CLIs report, for the console.
	rollouts rollouts
}

// Open reads the secrets, opens the cache and the queue, and settles jobs a
// previous serve left running. Call after serve recovered its releases.
func Open(ctx context.Context, o Options, d Deps) (*Service, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Service{o: o, d: d, log: o.Log, secrets: map[string][]byte{}, now: time.Now,
		outDir: filepath.Join(o.DataDir, "source", "out"), budget: o.DecideBudget}
	if s.budget <= 0 {
		s.budget = DecideBudget
	}
	for _, p := range source.Providers {
		f := o.SecretFiles[p]
		if f == "" {
			continue
		}
		sec, err := source.ReadSecret(f)
		if err != nil {
			return nil, fmt.Errorf("--%s-secret-file: %w", p, err)
		}
		s.secrets[p] = sec
	}
	if o.Source.URL != "" {
		o.Source.CacheDir = filepath.Join(o.DataDir, "source")
		r, err := source.Open(ctx, o.Source)
		if err != nil {
			return nil, fmt.Errorf("repository source: %w", err)
		}
		s.Repo = r
	} else if len(s.secrets) > 0 {
		return nil, errors.New("webhook secrets are set but no repository is: give --repo (or source.repo in the config)")
	}
	q, err := jobs.Open(ctx, filepath.Join(o.DataDir, "jobs.db"))
	if err != nil {
		return nil, err
	}
	s.Queue = q
	if _, err := q.Recover(ctx, s.liveAt); err != nil {
		q.Close()
		return nil, fmt.Errorf("recovering jobs: %w", err)
	}
	q.PruneDeliveries(ctx, 30*24*time.Hour)
	s.sched = q.NewScheduler(s, o.Jobs)
	s.sched.OnFinish = o.Notify
	return s, nil
}

// liveAt reports whether a job's release is live (its cutover happened before a restart).
func (s *Service) liveAt(store, commit, release string) bool {
	cur, err := s.d.State.Current(context.Background(), store)
	if err != nil || cur == nil {
		return false
	}
	if release != "" {
		return cur.ID == release
	}
	return cur.Commit == commit
}

// Start runs waiting jobs until Stop, and decides the webhook deliveries a
// previous serve answered but did not decide.
func (s *Service) Start(ctx context.Context) {
	s.sched.Start(ctx)
	if s.Repo != nil {
		go s.resumePending(ctx)
	}
}

// Stop stops starting jobs, interrupts those before their deploy (queued
// again on the next start) and waits for deploys under way until ctx ends.
func (s *Service) Stop(ctx context.Context) {
	s.sched.Stop(ctx)
	s.Queue.Close()
	if s.Repo != nil {
		s.Repo.Close()
	}
}

// Router is where routes go: serve's API mux (server.Server implements it).
type Router interface {
	Handle(pattern string, scope auth.Scope, h http.Handler)
	HandlePublic(pattern string, h http.Handler)
}

// Mount adds the webhooks and the jobs API.
func (s *Service) Mount(r Router) {
	for _, p := range source.Providers {
		r.HandlePublic("POST /hooks/"+p, s.hook(p))
	}
	r.Handle("GET /v1/jobs", auth.ScopeRead, http.HandlerFunc(s.listJobs))
	r.Handle("GET /v1/jobs/{id}", auth.ScopeRead, http.HandlerFunc(s.getJob))
	r.Handle("GET /v1/jobs/{id}/log", auth.ScopeRead, http.HandlerFunc(s.jobLog))
	r.Handle("POST /v1/jobs/{id}/cancel", auth.ScopeDeploy, http.HandlerFunc(s.cancelJob))
	r.Handle("POST /v1/source/deploy", auth.ScopeDeploy, http.HandlerFunc(s.deployCommit))
	r.Handle("PUT /v1/rollouts/{id}", auth.ScopeDeploy, http.HandlerFunc(s.putRollout))
	r.Handle("GET /v1/rollouts", auth.ScopeRead, http.HandlerFunc(s.listRollouts))
}
