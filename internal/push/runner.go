package push

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/deployfile"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/state"
)

var _ jobs.Runner = (*Service)(nil)

// Run does one job: fetch the commit, snapshot it, compose and build the
// store from it, publish to the embedded image store, and deploy. Each step
// starts at a safe point where a cancel stops the job; once the deploy has
// started it runs to its end.
func (s *Service) Run(ctx context.Context, run *jobs.Run) error {
	j := run.Job
	if s.Repo == nil {
		return ErrNoSource
	}
	step := func(name string, fn func() error) error {
		if err := run.Stage(name); err != nil {
			return err
		}
		t := time.Now()
		err := fn()
		run.Time(name, time.Since(t))
		return err
	}
	if err := step(jobs.StageFetch, func() error { return s.Repo.FetchCommit(ctx, j.Commit) }); err != nil {
		return fmt.Errorf("fetching %s: %w", short(j.Commit), err)
	}
	var cfg *config.Config
	var release func()
	defer func() {
		if release != nil {
			release()
		}
	}()
	err := step(jobs.StageCompose, func() error {
		dir, rel, err := s.Repo.Snapshot(ctx, j.Commit)
		if err != nil {
			return err
		}
		release = rel
		cfg, err = config.Load(dir, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", short(j.Commit), err)
	}
	if st := cfg.Store(j.Store); st == nil || !st.Deployable() {
		return fmt.Errorf("store %s is not a deployable store at %s", j.Store, short(j.Commit))
	}
	var images []pipeline.BuiltImage
	switch j.Kind {
	case jobs.KindDeployOnly:
		images, err = s.liveImages(ctx, j.Store)
	case jobs.KindRollback:
		images, err = s.releaseImages(ctx, j.Store, j.Target)
	default:
		err = step(jobs.StageBuild, func() error {
			var berr error
			images, berr = s.build(ctx, run, cfg, j)
			return berr
		})
	}
	if err != nil {
		return err
	}
	req, err := s.request(ctx, cfg, j, images)
	if err != nil {
		return err
	}
	if err := run.Stage(jobs.StageDeploy); err != nil {
		return err
	}
	return s.deploy(ctx, run, req)
}

func (s *Service) build(ctx context.Context, run *jobs.Run, cfg *config.Config, j jobs.Job) ([]pipeline.BuiltImage, error) {
	rev, err := s.Repo.Revision(ctx, j.Commit)
	if err != nil {
		return nil, err
	}
	res, err := pipeline.Build(ctx, pipeline.BuildOptions{Config: cfg, Stores: []string{j.Store}, Store: pipeline.LayoutStore{Layout: s.d.Images},
		Jobs: max(1, s.o.Jobs), Log: run, Revision: &rev, OutDir: s.outDir})
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", j.Store, err)
	}
	var errs []error
	for _, im := range res.Images {
		logSteps(run, im)
		if im.Err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", im.Store, im.App, im.Err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("building %s: %w", j.Store, errors.Join(errs...))
	}
	return res.Images, nil
}

// logSteps puts an image's build steps in the job's log: whether the install
// ran or node_modules came from the build cache is what a slow job asks first.
func logSteps(run *jobs.Run, im pipeline.BuiltImage) {
	if im.UpToDate || len(im.Phases) == 0 {
		return
	}
	parts := make([]string, 0, len(im.Phases))
	for _, p := range im.Phases {
		parts = append(parts, fmt.Sprintf("%s %dms", p.Name, p.Millis))
	}
	run.Logf("[%s/%s] steps: %s", im.Store, im.App, strings.Join(parts, ", "))
}

// liveImages returns the store's live images, for a deploy-only job.
func (s *Service) liveImages(ctx context.Context, store string) ([]pipeline.BuiltImage, error) {
	live, err := s.d.State.Current(ctx, store)
	if err != nil || live == nil {
		return nil, fmt.Errorf("store %s has no live release: a deploy-only job needs one", store)
	}
	var out []pipeline.BuiltImage
	for app, im := range live.Images {
		drv, err := pipeline.DriverRef(s.d.Images.Dir(), im)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", live.ID, err)
		}
		out = append(out, pipeline.BuiltImage{Store: store, App: app, Ref: im.Ref, Digest: im.Digest, DriverRef: drv})
	}
	return out, nil
}

// releaseImages returns the images of one of the store's releases that once served, for a rollback.
func (s *Service) releaseImages(ctx context.Context, store, id string) ([]pipeline.BuiltImage, error) {
	rel, err := s.d.State.Release(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", id, err)
	}
	if rel.Store != store || (rel.Status != state.StatusLive && rel.Status != state.StatusSuperseded) {
		return nil, fmt.Errorf("release %s is not a release of %s that served traffic", id, store)
	}
	var out []pipeline.BuiltImage
	for app, im := range rel.Images {
		drv, err := pipeline.DriverRef(s.d.Images.Dir(), im)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", rel.ID, err)
		}
		out = append(out, pipeline.BuiltImage{Store: store, App: app, Ref: im.Ref, Digest: im.Digest, DriverRef: drv})
	}
	return out, nil
}

// request assembles the deploy request as `slipway deploy` does: the commit's
// deploy files for hooks, the config's env, then the runtime env.
func (s *Service) request(ctx context.Context, cfg *config.Config, j jobs.Job, images []pipeline.BuiltImage) (pipeline.DeployRequest, error) {
	eff, err := deployfile.Load(cfg, j.Store, deployfile.WithGetenv(os.Getenv))
	if err != nil {
		return pipeline.DeployRequest{}, err
	}
	conv := func(h deployfile.Hook) pipeline.Hook {
		return pipeline.Hook{Command: h.Command, App: h.App, Timeout: h.Timeout}
	}
	env, err := s.d.State.Env(ctx, j.Store)
	if err != nil {
		return pipeline.DeployRequest{}, fmt.Errorf("reading the runtime env of %s: %w", j.Store, err)
	}
	kind := state.KindBuildDeploy
	hooks := pipeline.Hooks{PreDeploy: conv(eff.PreDeploy), Install: conv(eff.Install), DestructiveInstall: conv(eff.DestructiveInstall), PostDeploy: conv(eff.PostDeploy)}
	switch j.Kind {
	case jobs.KindDeployOnly:
		kind = state.KindDeployOnly
	case jobs.KindRollback:
		// Back to old images: today's migrations must not run against them.
		kind, hooks = state.KindRollback, pipeline.Hooks{}
	}
	return pipeline.NewDeployRequest(cfg, j.Store, images, pipeline.RequestOptions{Commit: j.Commit, Kind: kind, Wait: true, RuntimeEnv: env, Hooks: hooks})
}

var releaseRe = regexp.MustCompile(`^release (\S+) \(`)

// gateSwapRe reads the pipeline's "gate 412ms, swap 85µs" line.
var gateSwapRe = regexp.MustCompile(`^gate (\S+), swap (\S+)$`)

// deploy runs the pipeline; no cancel reaches it (a half-run cutover is worse than a late stop).
func (s *Service) deploy(ctx context.Context, run *jobs.Run, req pipeline.DeployRequest) error {
	start := time.Now()
	var live time.Time
	rel, err := s.d.Deployer.Deploy(context.WithoutCancel(ctx), req, func(e pipeline.Event) {
		if m := releaseRe.FindStringSubmatch(e.Message); m != nil {
			run.SetRelease(m[1])
		}
		if live.IsZero() && strings.HasPrefix(e.Message, "live: ") {
			live = time.Now()
		}
		if m := gateSwapRe.FindStringSubmatch(e.Message); m != nil {
			gate, err1 := time.ParseDuration(m[1])
			swap, err2 := time.ParseDuration(m[2])
			if err1 == nil && err2 == nil {
				run.Time("gate", gate)
				run.TimeMicros("swap", swap)
			}
		}
		stage := ""
		if e.Stage != "" {
			stage = e.Stage + ": "
		}
		run.Logf("%s%s", stage, e.Message)
	})
	if !live.IsZero() {
		run.Time("to-live", live.Sub(start))
	}
	run.Time("deploy", time.Since(start))
	if rel != nil {
		run.SetRelease(rel.ID)
	}
	if err != nil {
		return err
	}
	if rel != nil && rel.Status != state.StatusLive {
		return fmt.Errorf("release %s is %s: %s", rel.ID, rel.Status, rel.Error)
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
