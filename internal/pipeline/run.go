package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/redact"
	"github.com/slipway-dev/slipway/internal/state"
)

// deployRun is one run of the deploy pipeline for one store: what each
// stage hands to the next. Deploy calls the stages in order; a stage that
// fails before the swap ends the run through fail, which stops what the
// run started and records the release failed, so traffic never moved.
type deployRun struct {
	d    *Deployer
	req  DeployRequest
	red  *redact.Redactor
	emit func(Event)

	lock    *state.Lock
	current *state.Release      // the live release before this run; nil on a first deploy
	rel     *state.Release      // this run's release, once created
	started []*startedApp       // new instances; stopped again if the run fails before the swap
	deploy  state.Stage         // the deploy stage's record, completed at the swap
	cut     proxy.CutoverResult // what the swap replaced and removed
	// promoteErr is a failure to record the release live at the swap (the
	// record is kept and retried; the release serves).
	promoteErr error
}

// stage is one step before the swap; a failure fails the release at name.
type stage struct {
	name string
	run  func(context.Context) error
}

// Deploy runs the pipeline for one store: lock, pre-deploy (in the running
// release), install (in the new image, before any traffic), start the new
// instances, gate them all, swap every app's route, drain and stop the old
// instances, post-deploy (in the new release), verify. Traffic moves only when
// every new instance is healthy; a failure before that leaves the old release
// serving untouched.
func (d *Deployer) Deploy(ctx context.Context, req DeployRequest, emit func(Event)) (*state.Release, error) {
	r, err := d.newRun(ctx, req, emit)
	if err != nil {
		return nil, err
	}
	if err := r.resolveImages(ctx); err != nil {
		return nil, err
	}
	if err := r.takeLock(ctx); err != nil {
		return nil, err
	}
	defer r.lock.Release()
	// From here on the pipeline runs to its end: a half-run deploy is worse than
	// a caller that stopped listening.
	ctx = context.WithoutCancel(ctx)
	if err := r.createRelease(ctx); err != nil {
		return nil, err
	}
	for _, s := range []stage{
		{StagePreDeploy, r.preDeploy},
		{StageInstall, r.install},
		{StageDeploy, r.startInstances},
		{StageDeploy, r.configureEdge},
		{StageDeploy, r.swap}, // gate, swap (recordLive), drain
	} {
		if err := s.run(ctx); err != nil {
			return r.fail(ctx, s.name, err)
		}
	}
	if err := r.afterSwap(); err != nil {
		return r.rel, err
	}
	r.cleanup(ctx)
	postErr := r.postDeploy(ctx)
	verifyErr := r.d.verify(ctx, r.rel, r.req, r.say)
	return r.finish(ctx, postErr, verifyErr)
}

// newRun adds the secrets serve keeps for the store and sets up redaction.
func (d *Deployer) newRun(ctx context.Context, req DeployRequest, emit func(Event)) (*deployRun, error) {
	req, err := d.withStoredSecrets(ctx, req)
	if err != nil {
		return nil, err
	}
	var secretVals []string
	for _, k := range req.Secrets {
		secretVals = append(secretVals, req.Env[k])
	}
	if len(req.Apps) == 0 {
		return nil, fmt.Errorf("deploying %s: no apps", req.Store)
	}
	return &deployRun{d: d, req: req, red: redact.New(secretVals...), emit: emit}, nil
}

// say reports progress (redacted) to the caller and the store's log.
func (r *deployRun) say(stage, format string, args ...any) {
	e := Event{Time: time.Now(), Store: r.req.Store, Stage: stage, Message: r.red.String(fmt.Sprintf(format, args...))}
	r.d.logEvent(e)
	if r.emit != nil {
		r.emit(e)
	}
}

// resolveImages reads the images' build metadata (process types, web
// instances, interpreter), refuses images the runtime cannot start and a
// host too short of disk, all before anything is recorded.
func (r *deployRun) resolveImages(ctx context.Context) error {
	if err := r.d.loadImageMeta(ctx, &r.req); err != nil {
		r.say("", "FAILED: %v", err)
		return err
	}
	if err := r.d.checkInterpreters(r.req); err != nil {
		r.say("", "FAILED: %v", err)
		return err
	}
	if err := r.d.checkDisk(); err != nil {
		r.say("", "refused: %v", err)
		return err
	}
	return nil
}

// takeLock takes the store's deploy lock and applies its persisted scale.
func (r *deployRun) takeLock(ctx context.Context) error {
	lock, err := r.d.State.Acquire(ctx, r.req.Store, state.LockOptions{Wait: r.req.Wait, Commit: r.req.Commit})
	if err != nil {
		return fmt.Errorf("taking the deploy lock of %s: %w", r.req.Store, err)
	}
	r.lock = lock
	r.say("", "lock taken")
	if err := r.d.applyScale(context.WithoutCancel(ctx), &r.req); err != nil {
		lock.Release()
		return err
	}
	return nil
}

// createRelease notes the live release and records this one, deploying.
func (r *deployRun) createRelease(ctx context.Context) error {
	req := r.req
	host, _ := os.Hostname()
	rel := &state.Release{Project: req.Project, Store: req.Store, Commit: req.Commit, Kind: req.Kind, Destructive: req.Destructive,
		Status: state.StatusDeploying, Images: map[string]state.Image{}, Host: host, PID: os.Getpid(),
		EnvHash: envHash(req.Env, req.Secrets), EnvNames: slices.Sorted(maps.Keys(req.Env))}
	for _, a := range req.Apps {
		rel.Images[a.App] = state.Image{Ref: a.Ref, Digest: a.Digest}
	}
	// The live release is read first: an error leaves nothing recorded.
	current, err := r.d.State.Current(ctx, req.Store)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("reading the live release of %s: %w", req.Store, err)
	}
	if err := r.d.State.CreateRelease(ctx, rel); err != nil {
		return err
	}
	r.rel, r.current = rel, current
	r.say("", "release %s (%s) for commit %s", rel.ID, req.Kind, shortSHA(req.Commit))
	return nil
}

// fail records the release failed at stage, then stops what the run
// started. The record comes first: it is the truth a reader or a restarted
// serve acts on (instances of a failed release are orphans the next deploy
// stops), and stopping takes up to the stop timeout. The record is written
// even when the caller went away; when it cannot be written (a full disk) it
// is kept and retried.
func (r *deployRun) fail(ctx context.Context, stage string, cause error) (*state.Release, error) {
	rel := r.rel
	rel.Stage = stage
	rel.Error = r.red.String(cause.Error())
	rel.FinishedAt = time.Now()
	recErr := r.d.recordOrDefer(ctx, "recording the failure", rel, r.d.recFail)
	r.d.stopAll(r.started)
	r.started = nil
	r.say(stage, "FAILED: %v", rel.Error)
	return rel, errors.Join(fmt.Errorf("%w: %s: %s", ErrDeployFailed, stage, rel.Error), recErr)
}

// preDeploy runs the pre-deploy hook in the running release's image.
func (r *deployRun) preDeploy(ctx context.Context) error {
	h := r.req.Hooks.PreDeploy
	if h.Command == "" {
		return nil
	}
	if r.current == nil {
		r.d.skip(r.rel, StagePreDeploy, "first deploy of the store: no running release to run it in")
		r.say(StagePreDeploy, "skipped: first deploy")
		return nil
	}
	img, ok := r.d.currentImage(r.current, r.req, h.App)
	if !ok {
		return nil
	}
	return r.d.runHook(ctx, r.rel, StagePreDeploy, h, img, r.req, r.red, r.say)
}

// install runs the install hook once, in the new image, before the new
// release gets traffic; a destructive deploy empties the store's /data first.
func (r *deployRun) install(ctx context.Context) error {
	h := r.req.Hooks.Install
	if r.req.Destructive {
		h = r.req.Hooks.DestructiveInstall
		if err := r.d.resetData(ctx, r.req); err != nil {
			return fmt.Errorf("resetting the store's data: %w", err)
		}
		r.say(StageInstall, "destructive: the store's /data was emptied")
	}
	if h.Command == "" {
		return nil
	}
	return r.d.runHook(ctx, r.rel, StageInstall, h, appFor(r.req, h.App).Image, r.req, r.red, r.say)
}

// startInstances starts every app's new instances (static sites: none).
func (r *deployRun) startInstances(ctx context.Context) error {
	r.deploy = state.Stage{Name: StageDeploy, Started: time.Now()}
	started, err := r.d.startAll(ctx, r.rel, r.req, r.say)
	r.started = started
	return err
}

// configureEdge hands the store's TLS and pages to the edge before the swap:
// a new domain's certificate is ordered meanwhile, and a bad certificate
// fails the deploy before any traffic moves.
func (r *deployRun) configureEdge(ctx context.Context) error {
	return r.d.configureEdge(ctx, r.req, r.say)
}

// swap is one cutover of every app of the store: gate every new instance,
// swap every route at once (recordLive runs then), drain the old ones.
func (r *deployRun) swap(ctx context.Context) error {
	cut, err := r.d.Router.DeployAll(ctx, r.d.cutover(r.req, r.started, func() { r.recordLive(ctx) }))
	if err != nil {
		return err
	}
	r.cut = cut
	// Push-to-live reports read this line to show the gate and the swap apart.
	r.say(StageDeploy, "gate %s, swap %s", cut.GateTook.Round(time.Millisecond), cut.SwapTook.Round(time.Microsecond))
	return nil
}

// recordLive runs at the swap: the release is live from that moment on,
// recorded now, not after the drain.
func (r *deployRun) recordLive(ctx context.Context) {
	r.deploy.Status, r.deploy.Finished = "ok", time.Now()
	r.deploy.Note = healthNote(r.started)
	r.rel.Stages = append(r.rel.Stages, r.deploy)
	r.rel.Stage = StageDeploy
	r.promoteErr = r.d.recordOrDefer(ctx, "recording the release live", r.rel, r.d.recPromote)
	r.say(StageDeploy, "live: %s", strings.Join(allHosts(r.req), ", "))
}

// afterSwap reports what the swap did; it fails the run (the release
// serves) when the release could not be recorded live.
func (r *deployRun) afterSwap() error {
	if err := r.lock.Err(); err != nil {
		// Our lease lapsed and someone else may be deploying: say so loudly.
		r.say(StageDeploy, "warning: %v", err)
	}
	for _, n := range r.cut.Removed {
		r.say(StageDeploy, "%s is no longer part of the store: its route is removed", n)
	}
	if r.promoteErr != nil {
		return fmt.Errorf("recording %s as live (it serves): %w", r.rel.ID, r.promoteErr)
	}
	return nil
}

// cleanup hands the new instances to the supervisor, stops the old ones,
// replaces the other process types and schedules, and prunes images.
func (r *deployRun) cleanup(ctx context.Context) {
	d, req, id := r.d, r.req, r.rel.ID
	for _, sa := range r.started {
		d.remember(sa, req, sa.specs)
	}
	d.setLive(req, id)
	d.stopOld(ctx, req, id, r.say)
	// Other process types are replaced once the new web is live.
	if err := d.startProcesses(ctx, id, req, r.say); err != nil {
		r.say(StageDeploy, "warning: %v", err)
	}
	d.stopOldProcesses(ctx, req, id, r.say)
	if err := d.setSchedules(req, id); err != nil {
		r.say(StageDeploy, "warning: %v", err)
	}
	d.prune(ctx, r.say)
}

// postDeploy runs the post-deploy hook in the new, active release; a
// failure leaves it live.
func (r *deployRun) postDeploy(ctx context.Context) error {
	h := r.req.Hooks.PostDeploy
	if h.Command == "" {
		return nil
	}
	return r.d.runHook(ctx, r.rel, StagePostDeploy, h, appFor(r.req, h.App).Image, r.req, r.red, r.say)
}

// finish records the end of the deploy: the release stays live, with the
// stage that failed after the cutover, if any.
func (r *deployRun) finish(ctx context.Context, postErr, verifyErr error) (*state.Release, error) {
	rel := r.rel
	rel.FinishedAt = time.Now()
	switch {
	case postErr != nil:
		rel.Stage, rel.Error = StagePostDeploy, r.red.String(postErr.Error())
	case verifyErr != nil:
		rel.Stage, rel.Error = StageVerify, r.red.String(verifyErr.Error())
	default:
		rel.Stage = ""
	}
	if err := r.d.State.Finish(ctx, rel); err != nil {
		return rel, err
	}
	if postErr != nil {
		return rel, fmt.Errorf("%w: deployed, post-deploy failed: %s", ErrDeployFailed, rel.Error)
	}
	if verifyErr != nil {
		return rel, fmt.Errorf("%w: deployed, verify failed: %s", ErrDeployFailed, rel.Error)
	}
	r.say("", "done")
	return rel, nil
}
