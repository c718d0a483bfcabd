package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/dockerbuild"
	"github.com/slipway-dev/slipway/internal/gitfs"
	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/redact"
)

// dockerfileFormat changes when what goes into a Dockerfile build's
// fingerprint changes.
const dockerfileFormat = "slipway-dockerfile-v1"

// dockerUnit is a store/app built from a Dockerfile: with `build:
// {dockerfile: ...}` in its config, or a Dockerfile in the composed app.
type dockerUnit struct {
	field string // the config field errors name, e.g. "apps[0].build"
	spec  config.BuildSpec
	bctx  *dockerbuild.Context
	df    *dockerbuild.Dockerfile
	// builder builds it: the Docker engine or buildah (builder.go).
	builder dockerbuild.Builder
}

// planDocker returns the app's Dockerfile build, nil when it has none.
func planDocker(cfg *config.Config, dir string, app *config.App) (*dockerUnit, error) {
	spec := app.BuildSpec
	field := fmt.Sprintf("%s: app %s: build", cfg.File, app.ID)
	if !spec.IsDockerfile() {
		if app.Build != "" || app.Static != "" {
			return nil, nil
		}
		if st, err := os.Stat(filepath.Join(dir, config.DefaultDockerfile)); err != nil || !st.Mode().IsRegular() {
			return nil, nil
		}
		spec = config.BuildSpec{}.AsDockerfile()
		field = fmt.Sprintf("%s: app %s (a Dockerfile in %s)", cfg.File, app.ID, app.Path)
	}
	path := filepath.Join(dir, filepath.FromSlash(spec.Dockerfile))
	df, err := dockerbuild.ParseDockerfile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s.dockerfile: %s is not in the composed app %s", field, spec.Dockerfile, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%s.dockerfile: %w", field, err)
	}
	if err := df.CheckTarget(field+".target", spec.Target); err != nil {
		return nil, err
	}
	if err := df.CheckSecrets(field+".secrets", spec.Secrets); err != nil {
		return nil, err
	}
	bctx, err := dockerbuild.NewContext(dir, spec.Dockerfile)
	if err != nil {
		return nil, err
	}
	return &dockerUnit{field: field, spec: spec, bctx: bctx, df: df}, nil
}

// dockerFingerprint covers what the image depends on: the context's bytes
// (after .dockerignore), the Dockerfile's path, target, args and secret
// names (never values), the IDs of the FROM images the engine has, and the
// app settings Slipway puts into the image.
func dockerFingerprint(ctx context.Context, project string, app *config.App, d *dockerUnit, cachePath string) (string, error) {
	digest, err := d.bctx.DigestCached(cachePath)
	if err != nil {
		return "", err
	}
	ids, err := d.builder.BaseIDs(ctx, d.df.Bases)
	if err != nil {
		return "", err
	}
	settings, _ := json.Marshal(struct {
		Format, Context, Dockerfile, Target, Project, ID string
		Args, Secrets, Bases, BaseIDs                    []string
		Port                                             int
		Processes                                        map[string]*config.ProcessSpec `json:",omitempty"`
	}{dockerfileFormat, digest, d.spec.Dockerfile, d.spec.Target, project, app.ID,
		envList(d.spec.Args), slices.Sorted(slices.Values(d.spec.Secrets)), d.df.Bases, ids, app.Port, app.Processes})
	h := sha256.Sum256(settings)
	return hex.EncodeToString(h[:]), nil
}

// dockerSecrets reads the build's secrets as store secrets are read: env
// NAME, else the file named by NAME_FILE.
func dockerSecrets(d *dockerUnit, getenv func(string) string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for i, name := range d.spec.Secrets {
		if v := getenv(name); v != "" {
			out[name] = []byte(v)
			continue
		}
		f := getenv(name + "_FILE")
		if f == "" {
			return nil, fmt.Errorf("%s.secrets[%d]: %s is not set: set %s in the environment, or %s_FILE to a file holding it", d.field, i, name, name, name)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s.secrets[%d]: reading %s_FILE: %w", d.field, i, name, err)
		}
		out[name] = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	return out, nil
}

// engineTag names a store/app's last build in the engine, which keeps its
// layers there for the next build's cache.
func engineTag(project, store, app string) string {
	return "slipway-build/" + engineTagPart(project) + "/" + engineTagPart(app) + ":" + engineTagPart(store)
}

// engineTagPart is s lowercased with what a tag cannot hold replaced by '-'.
func engineTagPart(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// packDocker builds the unit's Dockerfile with its builder (the engine or
// buildah), exports the image and publishes it like any other: commit tag,
// fingerprint tag, process images.
func packDocker(ctx context.Context, o BuildOptions, u *buildUnit, rev gitfs.Revision, tag string, created time.Time) error {
	start := time.Now()
	label := u.store.ID + "/" + u.app.ID
	e := u.docker.builder
	secrets, err := dockerSecrets(u.docker, os.Getenv)
	if err != nil {
		return err
	}
	var values []string
	for _, v := range secrets {
		values = append(values, string(v))
	}
	red := redact.New(values...)
	cfg := o.Config
	labels := image.Labels(image.LabelInfo{Project: cfg.Project, Store: u.store.ID, App: u.app.ID, Revision: rev.Commit, Source: rev.Source, Created: created})
	labels[LabelFingerprint] = u.fp
	maps.Copy(labels, metaLabels(u, "dockerfile:"+u.docker.spec.Dockerfile, ""))
	tail := newTail(50)
	// One build of a store/app at a time in this process: a second one
	// would move the tag, and its prune remove this one before its export.
	unlock := lockBuildTag(engineTag(cfg.Project, u.store.ID, u.app.ID))
	defer unlock()
	id, err := e.Build(ctx, dockerbuild.Request{Context: u.docker.bctx, Target: u.docker.spec.Target, Args: u.docker.spec.Args,
		Secrets: secrets, Labels: labels, Tag: engineTag(cfg.Project, u.store.ID, u.app.ID),
		Line: func(s string) {
			s = red.String(s)
			tail.add(s)
			if o.Verbose && o.Log != nil {
				fmt.Fprintf(o.Log, "[%s] %s\n", label, s)
			}
		}})
	if err != nil {
		if !o.Verbose && o.Log != nil {
			for _, l := range tail.lines() {
				fmt.Fprintf(o.Log, "[%s] %s\n", label, l)
			}
		}
		return fmt.Errorf("%s: docker build (%s, with %s): %w", label, u.docker.spec.Dockerfile, e.Name(), red.Error(err))
	}
	tBuild := time.Now()
	dir := o.cacheDir()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "slipway-dockerbuild-")
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	dir = filepath.Join(dir, "dockerbuild")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	saved, remove, err := e.Export(ctx, id, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	defer remove()
	img, err := dockerbuild.Compress(ctx, saved, filepath.Join(dir, "layers"), max(2, runtimeCPUs()))
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	tExport := time.Now()
	ref := u.repo.Tag(tag)
	dig, err := o.Store.Publish(ctx, ref, img)
	if err != nil {
		return fmt.Errorf("%s: publishing %s: %w", label, ref, err)
	}
	if _, err := o.Store.Publish(ctx, u.repo.Tag("fp-"+u.fp), img); err != nil {
		return fmt.Errorf("%s: publishing the fingerprint tag: %w", label, err)
	}
	if u.out.Processes, err = publishProcesses(ctx, o.Store, u.repo, tag, img, u.procs.others); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	pruneBuilds(ctx, o, u, e, id)
	u.out.Phases = append(u.out.Phases, Phase{Name: "docker build", Millis: tBuild.Sub(start).Milliseconds()},
		Phase{Name: "export", Millis: tExport.Sub(tBuild).Milliseconds()},
		Phase{Name: "publish", Millis: time.Since(tExport).Milliseconds()})
	u.out.Base = "dockerfile:" + u.docker.spec.Dockerfile
	u.out.Ref = ref.String()
	u.out.Digest = dig.DigestStr()
	u.out.DriverRef = o.Store.DriverRef(dig)
	u.out.Duration = time.Since(start)
	return nil
}

// tail keeps a build's last lines, shown when it fails.
type tail struct {
	mu  sync.Mutex
	max int
	buf []string
}

func newTail(n int) *tail { return &tail{max: n} }

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, s)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.buf)
}

// planDockerUnit makes u a Dockerfile build when its app is one, with its
// process plan and fingerprint; done reports that u needs nothing else.
func planDockerUnit(ctx context.Context, cfg *config.Config, bs *builders, u *buildUnit, cacheDir string) (done bool, err error) {
	label := u.store.ID + "/" + u.app.ID
	d, err := planDocker(cfg, u.dir, u.app)
	if err != nil {
		return true, fmt.Errorf("%s: %w", label, err)
	}
	if d == nil {
		return false, nil
	}
	if d.builder, err = bs.pick(ctx, d.field, d.spec.Builder); err != nil {
		return true, fmt.Errorf("%s: %w", label, err)
	}
	u.docker = d
	if u.procs, err = planProcesses(u.dir, u.app); err != nil {
		return true, fmt.Errorf("%s: %w", label, err)
	}
	u.out.Release, u.out.WebInstances = u.procs.release, u.procs.webN
	if u.fp, err = dockerFingerprint(ctx, cfg.Project, u.app, d, contextCache(cacheDir, u)); err != nil {
		return true, fmt.Errorf("%s: %w", label, err)
	}
	u.out.Fingerprint = u.fp
	return true, nil
}

// contextCache is where the store/app's context file hashes are kept, "" for none.
func contextCache(cacheDir string, u *buildUnit) string {
	if cacheDir == "" {
		return ""
	}
	dir := filepath.Join(cacheDir, "dockerbuild", "context")
	if os.MkdirAll(dir, 0o700) != nil {
		return ""
	}
	return filepath.Join(dir, engineTagPart(u.store.ID)+"_"+engineTagPart(u.app.ID)+".json")
}

// pruneBuilds removes the builder's earlier builds of the store/app, now
// that this one is published (see dockerbuild.Pruner); failing to is
// logged, never a failed build.
func pruneBuilds(ctx context.Context, o BuildOptions, u *buildUnit, b dockerbuild.Builder, keep string) {
	p, ok := b.(dockerbuild.Pruner)
	if !ok {
		return
	}
	label := u.store.ID + "/" + u.app.ID
	match := map[string]string{image.LabelProject: o.Config.Project, image.LabelStore: u.store.ID, image.LabelApp: u.app.ID}
	removed, err := p.PruneBuilds(ctx, match, keep)
	if o.Log == nil {
		return
	}
	if err != nil {
		fmt.Fprintf(o.Log, "[%s] warning: %v\n", label, err)
	}
	if len(removed) > 0 {
		fmt.Fprintf(o.Log, "[%s] removed %d earlier build image(s) from %s\n", label, len(removed), b.Name())
	}
}

// buildTags holds a mutex per engine tag (see packDocker).
var buildTags sync.Map

func lockBuildTag(tag string) (unlock func()) {
	v, _ := buildTags.LoadOrStore(tag, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}
