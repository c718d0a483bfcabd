package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
)

// deployCommitWaves is `deploy --commit SHA` as a staged rollout: serve
// builds the commit and deploys it, wave by wave. Each wave is one request
// to serve's job queue naming the wave's stores (each store is a job: fetch,
// compose, build, deploy); the next wave starts once every job of this one
// has ended, and the canary, failure limit and --rollback-wave work as for a
// rollout of images built here. The stores come from the config here
// (--all or --store-id), as for any rollout.
func deployCommitWaves(ctx context.Context, g *globals, o *deployOptions) error {
	if o.detach {
		return usagef("--detach does not go with a staged rollout (--canary, --wave): each wave waits for the jobs of the one before")
	}
	if o.fleet.dryRun {
		return usagef("--dry-run plans from the working tree here, not from a commit serve builds: run it without --commit in a checkout of %s", o.commit)
	}
	cfg, err := g.load()
	if err != nil {
		return fmt.Errorf("a staged rollout (--canary, --wave) needs the config here: %w", err)
	}
	ids, err := selectStores(cfg, o.storeIDs, o.all)
	if err != nil {
		return err
	}
	if err := o.fleet.check(ids); err != nil {
		return err
	}
	c, err := g.client(cfg)
	if err != nil {
		return err
	}
	if err := c.Ping(ctx); err != nil {
		return err
	}
	log := newLiveOutput(g.stderr)
	defer log.Close()
	cw := commitWave{c: c, commit: o.commit, deployOnly: o.deployOnly, log: log}
	fl := &fleet{out: g.stdout, log: log, target: func(s string) string { return targetName(cfg, s) },
		deploy: func(ctx context.Context, req pipeline.DeployRequest) (*state.Release, error) {
			outs, err := cw.deploy(ctx, []string{req.Store})
			if err != nil {
				return nil, err
			}
			return outs[0].release, outs[0].err
		},
		deployMany: cw.deploy,
		rollback: func(ctx context.Context, store string) (*state.Release, error) {
			return rollbackStore(ctx, cfg, c, store, log)
		},
	}
	reqs := map[string]pipeline.DeployRequest{}
	for _, s := range ids {
		reqs[s] = pipeline.DeployRequest{Store: s}
	}
	return finishFleet(g, fl.run(ctx, planWaves(ids, o.fleet), reqs, o.fleet))
}

// commitWave deploys stores by asking serve to build and deploy a commit.
type commitWave struct {
	c          *server.Client
	commit     string
	deployOnly bool
	log        io.Writer
}

// deploy queues one job per store of the wave in one request and follows
// them all to their end. The error is for the request (refused, unreachable).
func (cw commitWave) deploy(ctx context.Context, stores []string) ([]deployOutcome, error) {
	t0 := time.Now()
	ans, err := cw.c.DeployCommit(ctx, push.DeployRequest{Commit: cw.commit, Stores: stores, DeployOnly: cw.deployOnly})
	if err != nil {
		return nil, err
	}
	byStore := map[string]push.StoreDecision{}
	for _, d := range ans.Stores {
		byStore[d.Store] = d
	}
	outs := make([]deployOutcome, len(stores))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, s := range stores {
		d, ok := byStore[s]
		if !ok || d.Job == "" {
			why := "serve queued no job for it"
			if ok {
				why = strings.TrimSpace(d.Decision + " " + d.Note)
			}
			outs[i] = deployOutcome{store: s, err: fmt.Errorf("commit %s: %s", shortSHA(cw.commit), why), took: time.Since(t0)}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := cw.follow(ctx, s, d.Job, &mu)
			outs[i] = deployOutcome{store: s, release: rel, err: err, took: time.Since(t0)}
		}()
	}
	wg.Wait()
	return outs, nil
}

// follow streams a store's job and returns the release it made.
func (cw commitWave) follow(ctx context.Context, store, id string, mu *sync.Mutex) (*state.Release, error) {
	j, err := cw.c.FollowJob(ctx, id, 0, func(l jobs.Line) {
		mu.Lock()
		fmt.Fprintf(cw.log, "[%s] %s\n", store, l.Text)
		mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("following job %s: %w", id, err)
	}
	var rel *state.Release
	if j.Release != "" {
		rs, err := cw.c.Releases(ctx, store)
		if err != nil {
			return nil, fmt.Errorf("job %s: reading release %s: %w", id, j.Release, err)
		}
		for _, r := range rs {
			if r.ID == j.Release {
				rel = r
			}
		}
	}
	if j.Status != jobs.StatusSucceeded {
		msg := j.Status
		if j.Error != "" {
			msg += ": " + j.Error
		}
		return rel, fmt.Errorf("job %s %s", id, msg)
	}
	if rel == nil {
		return nil, errors.New("job " + id + " succeeded without a release")
	}
	return rel, nil
}
