package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/imageref"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/redact"
	"github.com/slipway-dev/slipway/internal/state"
)

// Stage names, in the order they run.
const (
	StagePreDeploy  = "pre-deploy"
	StageInstall    = "install"
	StageDeploy     = "deploy"
	StagePostDeploy = "post-deploy"
	StageVerify     = "verify"
)

// AppDeploy is one app of a store to deploy.
type AppDeploy struct {
	App string `json:"app"`
	// Image is the driver reference (digest) to run.
	Image driver.Image `json:"image"`
	// Ref and Digest are recorded in the release.
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	// Port the app listens on; Health gates its instances.
	Port   int               `json:"port"`
	Health proxy.HealthCheck `json:"health"`
	// Hosts route to this app.
	Hosts []string `json:"hosts"`
	// Instances to run; default 1.
	Instances int `json:"instances,omitempty"`
	// Env is the app's own env (store env wins over it).
	Env map[string]string `json:"env,omitempty"`
	// Processes are the app's non-web process types (Procfile, config).
	Processes []Process `json:"processes,omitempty"`
	// Base and MissingInterpreter come from the build (BuiltImage); with
	// ConfigFile they let a container runtime refuse an image that cannot start.
	Base               string `json:"base,omitempty"`
	MissingInterpreter string `json:"missingInterpreter,omitempty"`
	ConfigFile         string `json:"configFile,omitempty"`
	// Static (`static: DIR`) serves the image's DIR as a static site from
	// the router instead of running the image; SPA falls back to index.html.
	Static string `json:"static,omitempty"`
	SPA    bool   `json:"spa,omitempty"`
}

// Hook is a shell command run in a release's image.
type Hook struct {
	Command string `json:"command"`
	// App whose image runs the hook; default the store's first app.
	App string `json:"app,omitempty"`
	// Timeout kills the hook and everything it started; default 10 minutes.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Hooks are the user's pipeline commands; an empty Command does nothing.
type Hooks struct {
	PreDeploy          Hook `json:"preDeploy"`
	Install            Hook `json:"install"`
	DestructiveInstall Hook `json:"destructiveInstall"`
	PostDeploy         Hook `json:"postDeploy"`
}

// DeployRequest is everything the runtime side needs to deploy one store.
type DeployRequest struct {
	Project     string      `json:"project"`
	Store       string      `json:"store"`
	Commit      string      `json:"commit"`
	Kind        state.Kind  `json:"kind"`
	Destructive bool        `json:"destructive,omitempty"`
	Apps        []AppDeploy `json:"apps"`
	// Env is the store's env, secret values included: it lives in memory only.
	Env map[string]string `json:"env,omitempty"`
	// Secrets names the keys of Env whose values are secret.
	Secrets []string `json:"secrets,omitempty"`
	Hooks   Hooks    `json:"hooks"`
	// Wait for the store's deploy lock instead of failing at once.
	Wait bool `json:"wait,omitempty"`
	// DNS is what verify does with a domain that does not resolve: warn (default), error or off.
	DNS string `json:"dns,omitempty"`
	// Schedules run on cron schedules in the live release.
	Schedules []Schedule `json:"schedules,omitempty"`
	// DrainTimeout for old instances; default 30s.
	DrainTimeout time.Duration `json:"drainTimeout,omitempty"`
	// Site is the store's TLS, HSTS and error-page settings (edge.go).
	Site proxy.Site `json:"site,omitzero"`
}

// Event is a line of deploy progress.
type Event struct {
	Time    time.Time `json:"time"`
	Store   string    `json:"store"`
	Stage   string    `json:"stage,omitempty"`
	Message string    `json:"message"`
}

// Deployer runs deploy pipelines against a driver and a router, recording releases.
type Deployer struct {
	Driver driver.Driver
	Router *proxy.Router
	State  *state.DB
	// DataDir holds per-store persistent data (process runtime) and logs.
	DataDir string
	// LayoutDir is the embedded image store, for releases whose images live there.
	LayoutDir string
	// Secrets, when set, adds the secrets serve keeps for a store to its deploys.
	Secrets SecretSource
	// MinFree is the free space (bytes) a job needs on DataDir's file system;
	// 0 means DefaultMinFree, < 0 no check.
	MinFree int64
	// Release record writers; default the state's (tests make them fail).
	failRelease, promote func(context.Context, *state.Release) error
	pending              []pendingRecord // records that could not be written at once
	// Resolver checks that domains resolve in verify; default net.DefaultResolver.
	Resolver interface {
		LookupHost(ctx context.Context, host string) ([]string, error)
	}
	// Edge receives each store's site settings; nil: none (edge.go).
	Edge EdgeConfigurer
	// TLSVerify makes verify check served certificates; nil: no HTTPS.
	TLSVerify TLSVerifier

	// Log receives the supervisor's warnings about recording specs; nil drops them.
	Log *slog.Logger
	// Unpacker puts static sites' images on disk for the router; default
	// the driver, when it can.
	Unpacker driver.Unpacker

	mu         sync.Mutex
	supervised map[string]*supervised     // instances this process started, by id, for restarts
	watched    map[string]bool            // instances whose exit a goroutine waits for
	procs      map[string]*supervisedProc // non-web process instances, by id, for restarts
	// ReadImage, when set, reads an app's image so that its build metadata
	// labels (process types, interpreter check) apply to every deploy.
	ReadImage func(ctx context.Context, a AppDeploy) (v1.Image, error)
	schedules map[string][]*scheduled // per store, bound to its live release
}

// ErrDeployFailed marks a deploy that did not go live.
var ErrDeployFailed = errors.New("deploy failed")

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// envHash identifies the release env without revealing secret values.
func envHash(env map[string]string, secrets []string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		if slices.Contains(secrets, k) {
			v = "(secret)"
		}
		fmt.Fprintf(h, "%s=%s\x00", k, v)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func appFor(req DeployRequest, app string) AppDeploy {
	for _, a := range req.Apps {
		if a.App == app {
			return a
		}
	}
	return req.Apps[0]
}

// currentImage is the running release's image of app, as a runtime reference.
func (d *Deployer) currentImage(cur *state.Release, req DeployRequest, app string) (driver.Image, bool) {
	a := appFor(req, app)
	im, ok := cur.Images[a.App]
	if !ok {
		return driver.Image{}, false
	}
	ref, err := DriverRef(d.LayoutDir, im)
	if err != nil {
		return driver.Image{}, false
	}
	return driver.Image{Ref: ref, Insecure: a.Image.Insecure}, true
}

// DriverRef turns a recorded release image into what a runtime fetches: the
// digest in the embedded store (layoutDir) for images named slipway.local/…,
// else the digest in the registry it was pushed to.
func DriverRef(layoutDir string, im state.Image) (string, error) {
	ref, err := name.ParseReference(im.Ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", im.Ref, err)
	}
	if ref.Context().RegistryStr() == LayoutHost {
		return imageref.LayoutString(layoutDir, im.Digest)
	}
	return ref.Context().Digest(im.Digest).String(), nil
}

func allHosts(req DeployRequest) []string {
	var out []string
	for _, a := range req.Apps {
		out = append(out, a.Hosts...)
	}
	return out
}

// instanceEnv is what an instance or hook sees: app env, then store env, then Slipway's.
func instanceEnv(req DeployRequest, app AppDeploy, release string) map[string]string {
	env := maps.Clone(app.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, req.Env)
	env["SLIPWAY_STORE_ID"] = req.Store
	env["SLIPWAY_APP"] = app.App
	env["SLIPWAY_RELEASE"] = release
	env["SLIPWAY_COMMIT"] = req.Commit
	return env
}

func dataKey(req DeployRequest) string { return req.Project + "-" + req.Store }

func (d *Deployer) skip(rel *state.Release, name, note string) {
	now := time.Now()
	rel.Stages = append(rel.Stages, state.Stage{Name: name, Status: "skipped", Started: now, Finished: now, Note: note})
}

// runHook runs a hook command to completion, recording its stage.
func (d *Deployer) runHook(ctx context.Context, rel *state.Release, name string, h Hook, img driver.Image, req DeployRequest, red *redact.Redactor, say func(string, string, ...any)) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	st := state.Stage{Name: name, Started: time.Now()}
	say(name, "running %q", h.Command)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tail := &tailBuffer{max: 4096}
	lines := &lineEmitter{say: func(s string) { say(name, "%s", s) }}
	out := red.Writer(io.MultiWriter(tail, lines))
	app := appFor(req, h.App)
	code, err := d.Driver.Run(hctx, driver.RunSpec{
		Image: img, Name: fmt.Sprintf("%s-%s-%s-%s", req.Project, req.Store, name, rel.ID),
		Cmd: []string{h.Command}, Shell: true, Env: instanceEnv(req, app, rel.ID), DataKey: dataKey(req),
		Labels: driver.ManagedLabels(req.Project, req.Store, app.App, rel.ID, "hook"), Stdout: out, Stderr: out,
	})
	out.Close()
	lines.flush()
	st.Finished, st.ExitCode, st.Output = time.Now(), code, tail.String()
	switch {
	case hctx.Err() != nil && errors.Is(context.Cause(hctx), context.DeadlineExceeded) && ctx.Err() == nil:
		st.Status = "timeout"
		err = fmt.Errorf("%s hook timed out after %s and was killed", name, timeout)
	case err != nil:
		st.Status = "failed"
		err = fmt.Errorf("%s hook: %w", name, err)
	case code != 0:
		st.Status = "failed"
		err = fmt.Errorf("%s hook exited with status %d: %s", name, code, lastLine(st.Output))
	default:
		st.Status = "ok"
	}
	rel.Stages = append(rel.Stages, st)
	if uerr := d.State.SaveProgress(context.WithoutCancel(ctx), rel); uerr != nil && err == nil {
		err = uerr
	}
	if err == nil {
		say(name, "ok (%s)", st.Finished.Sub(st.Started).Round(time.Millisecond))
	}
	return err
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

type startedApp struct {
	app       AppDeploy
	instances []driver.Instance
	specs     []driver.Spec
	static    *proxy.StaticSite // served by the router; no instances
}

func (d *Deployer) startAll(ctx context.Context, rel *state.Release, req DeployRequest, say func(string, string, ...any)) ([]*startedApp, error) {
	var out []*startedApp
	for _, a := range req.Apps {
		sa := &startedApp{app: a}
		out = append(out, sa)
		site, err := d.staticSite(ctx, a)
		if err != nil {
			return out, err
		}
		if sa.static = site; site != nil {
			say(StageDeploy, "%s is a static site: the router serves %s", a.App, site.Dir)
			continue
		}
		n := max(1, a.Instances)
		for i := range n {
			spec := driver.Spec{
				Image: a.Image, Name: fmt.Sprintf("%s-%s-%s-%s-%d", req.Project, req.Store, a.App, rel.ID, i+1),
				Env: instanceEnv(req, a, rel.ID), Port: a.Port, DataKey: dataKey(req),
				Labels:  driver.ManagedLabels(req.Project, req.Store, a.App, rel.ID, "web"),
				Secrets: reqSecretValues(req),
			}
			inst, err := d.Driver.Start(ctx, spec)
			if err != nil {
				return out, fmt.Errorf("starting %s: %w", a.App, err)
			}
			sa.instances = append(sa.instances, inst)
			sa.specs = append(sa.specs, spec)
			say(StageDeploy, "started %s at %s", a.App, inst.Addr)
		}
	}
	return out, nil
}

// healthNote records in the release what the gate checked, per app.
func healthNote(started []*startedApp) string {
	var parts []string
	for _, sa := range started {
		p := fmt.Sprintf("%s: %s on %d instance(s)", sa.app.App, sa.app.Health.Rule(), len(sa.instances))
		if sa.app.Health.MaxStatus > 0 {
			p += " (default check: no health path configured)"
		}
		parts = append(parts, p)
	}
	return "health gate passed: " + strings.Join(parts, "; ")
}

func service(store, app string) string { return store + "/" + app }

func addrs(is []driver.Instance) []string {
	var out []string
	for _, i := range is {
		if len(i.Addrs) > 0 {
			// A swarm service with several replicas answers on each task's address.
			out = append(out, i.Addrs...)
			continue
		}
		out = append(out, i.Addr)
	}
	return out
}

// cutover is the router request that moves every app of the store to its
// new instances at once and removes the routes of apps the store no longer
// has (removed, renamed, another framework) in the same swap.
func (d *Deployer) cutover(req DeployRequest, started []*startedApp, swapped func()) proxy.Cutover {
	c := proxy.Cutover{DrainTimeout: req.DrainTimeout, Swapped: swapped, Remove: d.staleServices(req)}
	for _, sa := range started {
		c.Services = append(c.Services, proxy.DeployRequest{Service: service(req.Store, sa.app.App), Hosts: sa.app.Hosts,
			Targets: addrs(sa.instances), Health: sa.app.Health, Static: sa.static})
	}
	return c
}

// staleServices returns the store's routed services that the request does not deploy.
func (d *Deployer) staleServices(req DeployRequest) []string {
	wanted := map[string]bool{}
	for _, a := range req.Apps {
		wanted[service(req.Store, a.App)] = true
	}
	var stale []string
	for _, s := range d.Router.Services() {
		if strings.HasPrefix(s.Name, req.Store+"/") && !wanted[s.Name] {
			stale = append(stale, s.Name)
		}
	}
	return stale
}

// stopOld stops the store's instances that belong to other releases: the drained
// old ones, and any orphans a crashed deploy left behind.
func (d *Deployer) stopOld(ctx context.Context, req DeployRequest, release string, say func(string, string, ...any)) {
	insts, err := d.Driver.List(ctx, map[string]string{driver.LabelProject: req.Project, driver.LabelStore: req.Store, driver.LabelRole: "web"})
	if err != nil {
		say(StageDeploy, "listing old instances: %v", err)
		return
	}
	n := 0
	for _, in := range insts {
		if in.Labels[driver.LabelRelease] == release {
			continue
		}
		if err := d.Driver.Stop(ctx, in.ID); err != nil {
			say(StageDeploy, "stopping %s: %v", in.Name, err)
			continue
		}
		d.forget(in.ID)
		n++
	}
	if n > 0 {
		say(StageDeploy, "stopped %d old instance(s)", n)
	}
}

// KeepReleases is how many of each store's latest served releases keep their images on the host.
const KeepReleases = 5

// prune removes runtime images no recent release uses (current and previous always stay).
func (d *Deployer) prune(ctx context.Context, say func(string, string, ...any)) {
	p, ok := d.Driver.(driver.Pruner)
	if !ok {
		return
	}
	keep, err := d.State.KeepDigests(ctx, KeepReleases)
	if err != nil {
		say(StageDeploy, "pruning images: %v", err)
		return
	}
	removed, err := p.Prune(ctx, keep)
	if err != nil {
		say(StageDeploy, "pruning images: %v", err)
		return
	}
	sites, err := d.pruneStatic(ctx, keep)
	if err != nil {
		say(StageDeploy, "pruning static sites: %v", err)
	}
	removed = append(removed, sites...)
	if len(removed) > 0 {
		say(StageDeploy, "pruned %d image(s) older than the last %d releases", len(removed), KeepReleases)
	}
}

func (d *Deployer) stopAll(started []*startedApp) {
	for _, sa := range started {
		for _, in := range sa.instances {
			d.Driver.Stop(context.Background(), in.ID)
		}
	}
}

// resetData empties the store's persistent directory by running a hook-like
// one-off in the new image; the driver decides where /data lives.
func (d *Deployer) resetData(ctx context.Context, req DeployRequest) error {
	app := req.Apps[0]
	var out strings.Builder
	code, err := d.Driver.Run(ctx, driver.RunSpec{Image: app.Image, Name: req.Project + "-" + req.Store + "-reset-data",
		Cmd: []string{`d="${SLIPWAY_DATA_DIR:-/data}"; find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} +`}, Shell: true,
		Env: map[string]string{}, DataKey: dataKey(req), Labels: driver.ManagedLabels(req.Project, req.Store, app.App, "reset", "hook"),
		Stdout: &out, Stderr: &out})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("exit status %d: %s", code, lastLine(out.String()))
	}
	return nil
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// lineEmitter turns written bytes into one event per line.
type lineEmitter struct {
	mu  sync.Mutex
	say func(string)
	buf []byte
}

func (l *lineEmitter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		l.say(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineEmitter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.say(string(l.buf))
		l.buf = nil
	}
}

// ErrNoInterpreter marks an image that a container runtime cannot start.
var ErrNoInterpreter = errors.New("the image lacks its entrypoint's interpreter")

// checkInterpreters refuses, before anything runs, images whose entrypoint's
// program is not in the image: a container would fail with `exec: "node":
// executable file not found`. The process runtime uses the host's PATH too.
func (d *Deployer) checkInterpreters(req DeployRequest) error {
	if d.Driver.Capabilities().Isolation != "container" {
		return nil
	}
	var errs []error
	for _, a := range req.Apps {
		if a.MissingInterpreter == "" {
			continue
		}
		file := a.ConfigFile
		if file == "" {
			file = "the config"
		}
		want := "an image that has " + a.MissingInterpreter
		if a.MissingInterpreter == "node" {
			want = "a Node.js image (e.g. `image: {base: node:20-slim}`)"
		}
		errs = append(errs, fmt.Errorf("%w: %s/%s runs %q, which base image %q does not have in its PATH: set image.base in %s (or %s in the environment) to %s, or deploy on the process driver",
			ErrNoInterpreter, req.Store, a.App, a.MissingInterpreter, a.Base, file, BaseImageEnv, want))
	}
	return errors.Join(errs...)
}
