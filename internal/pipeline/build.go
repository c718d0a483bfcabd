// Package pipeline runs Slipway's jobs: Build (compose → build → image →
// publish) and, on top of it, the deploy stages.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/gitfs"
	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/imageref"
	"github.com/slipway-dev/slipway/internal/registry"
)

// imageFormat changes when what Slipway puts into images changes, so that
// images built by an older Slipway are rebuilt.
const imageFormat = "slipway-image-v1"

// LabelFingerprint records, in each image, the build fingerprint it was made from.
const LabelFingerprint = "dev.slipway.fingerprint"

// ImageStore is where images are published and found again: a remote registry or the embedded layout.
type ImageStore interface {
	registry.Publisher
	registry.Checker
	Image(ctx context.Context, ref name.Reference) (v1.Image, error)
	// Host is the registry host used in image names.
	Host() string
	// DriverRef is how a runtime fetches a published digest.
	DriverRef(d name.Digest) string
}

// RemoteStore is an ImageStore on an OCI registry.
type RemoteStore struct {
	*registry.Remote
	Registry string // host[:port][/prefix]
	// Insecure allows plain HTTP to a registry that is not on loopback; the runtime pulls the same way.
	Insecure bool
}

// Host implements ImageStore.
func (s RemoteStore) Host() string { return s.Registry }

// DriverRef implements ImageStore.
func (s RemoteStore) DriverRef(d name.Digest) string { return d.String() }

// LayoutHost names images kept in the embedded layout.
const LayoutHost = "slipway.local"

// LayoutStore is an ImageStore on the embedded OCI layout.
type LayoutStore struct{ *registry.Layout }

// Image implements ImageStore.
func (s LayoutStore) Image(_ context.Context, ref name.Reference) (v1.Image, error) {
	return s.Layout.Image(ref)
}

// Host implements ImageStore.
func (s LayoutStore) Host() string { return LayoutHost }

// DriverRef implements ImageStore.
func (s LayoutStore) DriverRef(d name.Digest) string {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return d.String() // a name.Digest always holds a valid digest
	}
	return imageref.InLayout(s.Dir(), h).String()
}

var (
	_ ImageStore = RemoteStore{}
	_ ImageStore = LayoutStore{}
)

// BuildOptions configure a Build job.
type BuildOptions struct {
	Config *config.Config
	Stores []string
	Store  ImageStore
	// Jobs is how many app builds run at once; default the number of cores.
	Jobs int
	// Verbose streams all build output.
	Verbose    bool
	AllowDirty bool
	// AllowNoGit builds a directory that is not a git repository, tagging the images "local".
	AllowNoGit bool
	// Log receives progress lines.
	Log io.Writer
	// Progress, when set, receives publish progress for live display.
	Progress func(registry.Progress)
	// Revision, when set, is the commit Config.Root holds (serve builds from a
	// snapshot of an exact commit, which is no git work tree); default: described from Root.
	Revision *gitfs.Revision
	// OutDir is where stores are composed; default <root>/.out.
	OutDir string
	// BuildIn is where detected stacks' steps run: "host" or "container"
	// (a container of the stack's image, on the Docker engine; see
	// BuildInEnv). Default: BuildInEnv, else host.
	BuildIn string
	// CacheDir keeps node_modules, package manager and framework caches
	// between builds (see build.Cache); default: cache/ in the state dir
	// (beside the embedded image store, else <root>/.slipway/cache).
	// "-" caches nothing.
	CacheDir string
}

// cacheDir resolves BuildOptions.CacheDir's default.
func (o BuildOptions) cacheDir() string {
	switch {
	case o.CacheDir == "-":
		return ""
	case o.CacheDir != "":
		return o.CacheDir
	}
	if ls, ok := o.Store.(LayoutStore); ok {
		return filepath.Join(filepath.Dir(ls.Dir()), "cache")
	}
	return filepath.Join(o.Config.Root, ".slipway", "cache")
}

// Phase is how long one part of an image's build took.
type Phase struct {
	Name   string `json:"name"`
	Millis int64  `json:"ms"`
}

// BuiltImage is the outcome for one app of one store.
type BuiltImage struct {
	Store       string `json:"store"`
	App         string `json:"app"`
	Ref         string `json:"ref"`
	Digest      string `json:"digest"`
	DriverRef   string `json:"driverRef"`
	Insecure    bool   `json:"insecure,omitempty"`
	Fingerprint string `json:"fingerprint"`
	UpToDate    bool   `json:"upToDate"`
	Port        int    `json:"port"`
	// Base is the base image reference; MissingInterpreter names the
	// entrypoint's program when the image has no such file in its PATH
	// (fine on the process runtime, which falls back to the host's PATH;
	// a container cannot start).
	Base               string `json:"base,omitempty"`
	MissingInterpreter string `json:"missingInterpreter,omitempty"`
	// Phases are the build steps, then "image" and "publish", as timed.
	Phases []Phase `json:"phases,omitempty"`
	// Processes are the app's non-web process types, each with its image;
	// Release is the Procfile's release: command; WebInstances the web
	// process's configured instances (0 = default).
	Processes    []ProcessImage `json:"processes,omitempty"`
	Release      string         `json:"release,omitempty"`
	WebInstances int            `json:"webInstances,omitempty"`
	Duration     time.Duration  `json:"-"`
	Millis       int64          `json:"durationMs"`
	Err          error          `json:"-"`
	Error        string         `json:"error,omitempty"`
}

// BuildResult is the outcome of a Build job.
type BuildResult struct {
	Revision gitfs.Revision
	Tag      string
	Images   []BuiltImage
}

// Failed reports whether any image failed.
func (r *BuildResult) Failed() bool {
	for _, im := range r.Images {
		if im.Err != nil {
			return true
		}
	}
	return false
}

type buildUnit struct {
	store *config.Store
	app   *config.App
	dir   string
	procs *procPlan
	// docker is set for an app built from a Dockerfile (dockerfile.go).
	docker *dockerUnit
	// base is the runtime image's base; buildImage, when set, the image
	// the build steps run in (stack.go).
	base, buildImage string
	fp               string
	env              map[string]string
	repo             name.Repository
	out              *BuiltImage
}

// Build composes the stores, then for each store/app either finds an image
// already published for the same inputs (its fingerprint) or builds, packs and
// publishes one, tagged with the commit. A failing app fails only itself.
func Build(ctx context.Context, o BuildOptions) (*BuildResult, error) {
	cfg := o.Config
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	var rev gitfs.Revision
	var err error
	if o.Revision != nil {
		rev = *o.Revision
	} else {
		rev, err = gitfs.Describe(ctx, cfg.Root)
	}
	if err != nil && o.AllowNoGit {
		rev, err = gitfs.Revision{Commit: "local", Time: time.Unix(0, 0).UTC()}, nil
	}
	if err != nil {
		return nil, err
	}
	tag, err := rev.Tag(o.AllowDirty)
	if err != nil {
		return nil, err
	}
	res := &BuildResult{Revision: rev, Tag: tag}
	created := rev.Time
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		created = time.Unix(sec, 0).UTC()
	}

	var copts []compose.Option
	if o.OutDir != "" {
		copts = append(copts, compose.WithOutDir(o.OutDir))
	}
	composer := compose.New(cfg, copts...)
	composed, err := composer.Compose(ctx, o.Stores)
	if err != nil {
		return nil, err
	}
	bases := &baseCache{m: map[string]*baseEntry{}}
	engine := newBuilders(o.cacheDir())
	defer engine.close()
	var units []*buildUnit
	for _, sr := range composed {
		st := cfg.Store(sr.Store)
		for _, ar := range sr.Apps {
			app := cfg.App(ar.App)
			u := &buildUnit{store: st, app: app, dir: ar.Dir, env: buildEnv(cfg, st.ID, app),
				out: &BuiltImage{Store: st.ID, App: app.ID, Port: app.Port}}
			if rs, ok := o.Store.(RemoteStore); ok {
				u.out.Insecure = rs.Insecure
			}
			units = append(units, u)
			repo, err := name.NewRepository(o.Store.Host()+"/"+st.ProjectName+"/"+app.ID, name.WeakValidation)
			if err != nil {
				u.out.Err = fmt.Errorf("image name for %s/%s: %w", st.ID, app.ID, err)
				continue
			}
			u.repo = repo
			if done, err := planDockerUnit(ctx, cfg, engine, u, o.cacheDir()); done {
				if err != nil {
					u.out.Err = err
				}
				continue
			}
			u.base, u.buildImage = o.stackImages(cfg, app, ar.Dir)
			base, err := bases.get(ctx, u.base)
			if err != nil {
				u.out.Err = err
				continue
			}
			if u.procs, err = planProcesses(ar.Dir, app); err != nil {
				u.out.Err = fmt.Errorf("%s/%s: %w", st.ID, app.ID, err)
				continue
			}
			u.out.Release, u.out.WebInstances = u.procs.release, u.procs.webN
			u.fp = fingerprint(builtIn(ar.Fingerprint, u.buildImage), cfg.Project, workDir(cfg, app), app, u.env, base.digest)
			u.out.Fingerprint = u.fp
		}
	}

	// 1. Find what is already published: registry round trips, so all at once.
	done := make([]bool, len(units))
	var cwg sync.WaitGroup
	csem := make(chan struct{}, 8)
	for i, u := range units {
		if u.out.Err != nil {
			continue
		}
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			csem <- struct{}{}
			defer func() { <-csem }()
			ok, err := reuse(ctx, o.Store, u, tag)
			if err != nil {
				u.out.Err = err
				return
			}
			done[i] = ok
		}()
	}
	cwg.Wait()
	for i, u := range units {
		if done[i] && u.out.Err == nil && u.docker == nil {
			if err := checkReused(ctx, o.Store, u, bases, u.base); err != nil {
				u.out.Err = err
			}
		}
	}
	var toBuild []*buildUnit
	for i, u := range units {
		switch {
		case u.out.Err != nil:
		case done[i]:
			logf("[%s/%s] up to date (%s)", u.store.ID, u.app.ID, short(u.out.Digest))
		default:
			toBuild = append(toBuild, u)
		}
	}

	// 2. Build what is not, in parallel.
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = max(1, runtimeCPUs())
	}
	runner := &build.Runner{Jobs: jobs, Verbose: o.Verbose, Out: o.Log, Commit: rev.Commit, BaseEnv: buildBaseEnv(cfg, os.Environ())}
	if d := o.cacheDir(); d != "" {
		runner.Cache = &build.Cache{Dir: d}
	}
	closeContainers, err := o.connectContainers(ctx, runner, toBuild)
	if err != nil {
		return nil, err
	}
	defer closeContainers()
	var tasks []build.Task
	var scripted, fromDockerfile []*buildUnit
	for _, u := range toBuild {
		if u.docker != nil {
			logf("[%s/%s] building %s with %s", u.store.ID, u.app.ID, u.docker.spec.Dockerfile, u.docker.builder.Name())
			fromDockerfile = append(fromDockerfile, u)
			continue
		}
		scripted = append(scripted, u)
		logf("[%s/%s] building in %s", u.store.ID, u.app.ID, u.dir)
		tasks = append(tasks, build.Task{Store: u.store.ID, App: u.app.ID, Dir: u.dir, Command: u.app.Build, Env: u.env, Image: u.buildImage})
	}
	results := runner.Run(ctx, tasks)

	// 3. Pack and publish the successful builds, in parallel.
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(2, jobs))
	for _, u := range fromDockerfile {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := packDocker(ctx, o, u, rev, tag, created); err != nil {
				u.out.Err = err
				logf("[%s/%s] failed: %v", u.store.ID, u.app.ID, err)
				return
			}
			logf("[%s/%s] published %s", u.store.ID, u.app.ID, u.out.Ref+"@"+short(u.out.Digest))
		}()
	}
	for i, r := range results {
		u := scripted[i]
		if r.Err != nil {
			u.out.Err = r.Err
			continue
		}
		u.out.Duration = r.Duration
		for i, st := range r.Steps {
			u.out.Phases = append(u.out.Phases, Phase{Name: st, Millis: r.StepTimes[i].Milliseconds()})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := pack(ctx, o, u, bases, rev, tag, created); err != nil {
				u.out.Err = err
				logf("[%s/%s] failed: %v", u.store.ID, u.app.ID, err)
				return
			}
			logf("[%s/%s] published %s", u.store.ID, u.app.ID, u.out.Ref+"@"+short(u.out.Digest))
		}()
	}
	wg.Wait()
	for _, u := range units {
		u.out.Millis = u.out.Duration.Milliseconds()
		if u.out.Err != nil {
			u.out.Error = u.out.Err.Error()
		}
		res.Images = append(res.Images, *u.out)
	}
	return res, nil
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// buildBaseEnv is the deploying shell's environment minus what a build (and
// every install script of every dependency it runs) must never see: registry
// credentials and the stores' secrets.
func buildBaseEnv(cfg *config.Config, environ []string) []string {
	drop := map[string]bool{}
	for _, s := range cfg.Stores {
		for _, name := range s.Secrets {
			drop[name], drop[name+"_FILE"] = true, true
		}
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if drop[k] || strings.HasPrefix(k, "SLIPWAY_REGISTRY_") {
			continue
		}
		out = append(out, kv)
	}
	return withQuietTools(out)
}

// buildEnv is the env a build sees from config: the app's, then the store's (inherited).
func buildEnv(cfg *config.Config, store string, app *config.App) map[string]string {
	env := maps.Clone(app.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, cfg.Env(store))
	return env
}

// BaseImageEnv sets the base image of apps whose config names none: an
// alokai.config.json stays unchanged while its images get a Node.js base for
// a container runtime.
const BaseImageEnv = "SLIPWAY_IMAGE_BASE"

// baseRef is the app's base: its own image.base, the project's, the
// environment's (BaseImageEnv), else scratch.
func baseRef(cfg *config.Config, app *config.App) string {
	if app.Image.Base != "" {
		return app.Image.Base
	}
	if cfg.Image.Base != "" {
		return cfg.Image.Base
	}
	if b := os.Getenv(BaseImageEnv); b != "" {
		return b
	}
	return "scratch"
}

func workDir(cfg *config.Config, app *config.App) string {
	if app.Image.WorkDir != "" {
		return app.Image.WorkDir
	}
	if cfg.Image.WorkDir != "" {
		return cfg.Image.WorkDir
	}
	return image.DefaultWorkDir
}

// fingerprint covers everything an image depends on except the commit itself:
// the composed files, the app's build and image settings, the build env and the
// base image digest.
func fingerprint(composed, project, workdir string, app *config.App, env map[string]string, baseDigest string) string {
	h := sha256.New()
	settings, _ := json.Marshal(struct {
		Format, Composed, Base, Project   string
		ID, Framework, Build, Workdir     string
		Entrypoint, Include, Exclude, Env []string
		Port                              int
		Processes                         map[string]*config.ProcessSpec `json:",omitempty"`
	}{imageFormat, composed, baseDigest, project, app.ID, app.Framework, app.Build, workdir,
		app.Entrypoint, app.Deploy.Include, app.Deploy.Exclude, envList(env), app.Port, app.Processes})
	h.Write(settings)
	return hex.EncodeToString(h.Sum(nil))
}

func envList(env map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// reuse publishes the commit tag for an image already built from the same
// fingerprint; it writes nothing at all when the tag is already there.
func reuse(ctx context.Context, store ImageStore, u *buildUnit, tag string) (bool, error) {
	fpRef := u.repo.Tag("fp-" + u.fp)
	ref := u.repo.Tag(tag)
	d1, ok, err := store.Exists(ctx, fpRef)
	if err != nil || !ok {
		return false, err
	}
	d2, ok2, err := store.Exists(ctx, ref)
	if err != nil {
		return false, err
	}
	dig := u.repo.Digest(d1.String())
	if !ok2 || d2 != d1 {
		img, err := store.Image(ctx, fpRef)
		if err != nil {
			return false, err
		}
		if dig, err = store.Publish(ctx, ref, img); err != nil {
			return false, err
		}
	}
	if len(u.procs.others) > 0 {
		img, err := store.Image(ctx, fpRef)
		if err != nil {
			return false, err
		}
		if u.out.Processes, err = publishProcesses(ctx, store, u.repo, tag, img, u.procs.others); err != nil {
			return false, err
		}
	}
	u.out.UpToDate = true
	u.out.Ref = ref.String()
	u.out.Digest = dig.DigestStr()
	u.out.DriverRef = store.DriverRef(dig)
	return true, nil
}

func pack(ctx context.Context, o BuildOptions, u *buildUnit, bases *baseCache, rev gitfs.Revision, tag string, created time.Time) error {
	start := time.Now()
	cfg := o.Config
	prod, entry, err := collect(u, cfg.File)
	if err != nil {
		return err
	}
	base, err := bases.get(ctx, u.base)
	if err != nil {
		return err
	}
	labels := image.Labels(image.LabelInfo{Project: cfg.Project, Store: u.store.ID, App: u.app.ID, Revision: rev.Commit, Source: rev.Source, Created: created})
	labels[LabelFingerprint] = u.fp
	missing, err := base.missing(u.base, first(entry))
	if err != nil {
		return fmt.Errorf("%s/%s: looking for %s in the base image: %w", u.store.ID, u.app.ID, first(entry), err)
	}
	maps.Copy(labels, metaLabels(u, u.base, missing))
	env := map[string]string{"NODE_ENV": "production"}
	maps.Copy(env, prod.Env)
	spec := image.Spec{Base: base.img, Dir: prod.Dir, WorkDir: workDir(cfg, u.app), Entrypoint: entry,
		Env: env, ExposedPort: u.app.Port, Labels: labels, Created: created}
	if len(entry) == 0 { // a static site: nothing of the base's runs either
		spec.Entrypoint, spec.Cmd = []string{}, []string{}
	}
	if _, err := os.Stat(filepath.Join(prod.Dir, build.EntrypointCallback)); err == nil {
		spec.EntrypointScript = filepath.Join(prod.Dir, build.EntrypointCallback)
	}
	img, err := image.Build(ctx, spec)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", u.store.ID, u.app.ID, err)
	}
	tImage := time.Now()
	u.out.Base = u.base
	if u.out.MissingInterpreter, err = base.missing(u.out.Base, first(entry)); err != nil {
		return fmt.Errorf("%s/%s: looking for %s in the base image: %w", u.store.ID, u.app.ID, first(entry), err)
	}
	if c, ok := img.(io.Closer); ok {
		defer c.Close()
	}
	ref := u.repo.Tag(tag)
	dig, err := o.Store.Publish(ctx, ref, img)
	if err != nil {
		return err
	}
	if _, err := o.Store.Publish(ctx, u.repo.Tag("fp-"+u.fp), img); err != nil {
		return err
	}
	if u.out.Processes, err = publishProcesses(ctx, o.Store, u.repo, tag, img, u.procs.others); err != nil {
		return fmt.Errorf("%s/%s: %w", u.store.ID, u.app.ID, err)
	}
	u.out.Phases = append(u.out.Phases, Phase{Name: "image", Millis: tImage.Sub(start).Milliseconds()},
		Phase{Name: "publish", Millis: time.Since(tImage).Milliseconds()})
	u.out.Ref = ref.String()
	u.out.Digest = dig.DigestStr()
	u.out.DriverRef = o.Store.DriverRef(dig)
	u.out.Duration += time.Since(start)
	return nil
}

type baseEntry struct {
	img    v1.Image
	digest string
	err    error
	once   sync.Once

	mu    sync.Mutex
	found map[string]bool // program name -> in the base's PATH
}

// missing returns prog when the base lacks it. Only bare program names of
// local bases (scratch, oci-layout:, tarball:) are looked for: reading a
// registry base's layers would download what publishing never needs.
func (e *baseEntry) missing(ref, prog string) (string, error) {
	if !isLocalBase(ref) || prog == "" || strings.Contains(prog, "/") {
		return "", nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ok, seen := e.found[prog]
	if !seen {
		var err error
		if ok, err = image.LookPath(e.img, prog); err != nil {
			return "", err
		}
		if e.found == nil {
			e.found = map[string]bool{}
		}
		e.found[prog] = ok
	}
	if ok {
		return "", nil
	}
	return prog, nil
}

// baseCache loads each distinct base image once per job.
type baseCache struct {
	mu sync.Mutex
	m  map[string]*baseEntry
}

func (b *baseCache) get(ctx context.Context, ref string) (*baseEntry, error) {
	b.mu.Lock()
	e, ok := b.m[ref]
	if !ok {
		e = &baseEntry{}
		b.m[ref] = e
	}
	b.mu.Unlock()
	e.once.Do(func() {
		e.img, e.err = image.LoadBase(ctx, ref)
		if e.err == nil {
			var d v1.Hash
			d, e.err = e.img.Digest()
			e.digest = d.String()
		}
		if e.err != nil {
			e.err = fmt.Errorf("base image %s: %w", ref, e.err)
		}
	})
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// checkReused records, for an image found up to date, whether its base
// lacks the entrypoint's program (as pack does for a new one), so that a
// container runtime refuses it before starting anything.
func checkReused(ctx context.Context, store ImageStore, u *buildUnit, bases *baseCache, ref string) error {
	u.out.Base = ref
	if !isLocalBase(ref) {
		return nil
	}
	be, err := bases.get(ctx, ref)
	if err != nil {
		return err
	}
	img, err := store.Image(ctx, u.repo.Tag("fp-"+u.fp))
	if err != nil {
		return fmt.Errorf("%s/%s: reading the image: %w", u.store.ID, u.app.ID, err)
	}
	cf, err := img.ConfigFile()
	if err != nil || len(cf.Config.Entrypoint) == 0 {
		return err
	}
	u.out.MissingInterpreter, err = be.missing(ref, cf.Config.Entrypoint[0])
	return err
}

func isLocalBase(ref string) bool {
	return ref == image.ScratchRef || strings.HasPrefix(ref, image.OCILayoutPrefix) || strings.HasPrefix(ref, image.TarballPrefix)
}
