package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/config"
)

// Explanation is what a build of one store's app would do, and why: what
// `slipway build --explain` prints.
type Explanation struct {
	Store string `json:"store"`
	App   string `json:"app"`
	// Dir is the composed app directory the build would run in.
	Dir string `json:"dir"`
	// Preset is the framework preset (next, nuxt) that selects the
	// production files and start command, "" for none.
	Preset    string           `json:"preset,omitempty"`
	Detection *build.Detection `json:"detection"`
	// Start is the web process's command and StartFrom where it comes from.
	Start     []string `json:"start,omitempty"`
	StartFrom string   `json:"startFrom"`
	// Processes are the other process types, "name: command".
	Processes []string `json:"processes,omitempty"`
	// BuildImage is the image the stack's steps run in when builds run in
	// containers, and BuildImageFrom which setting chose it.
	BuildImage     string `json:"buildImage,omitempty"`
	BuildImageFrom string `json:"buildImageFrom,omitempty"`
	// BuildIn is where the steps run: host or container (BuildInEnv).
	BuildIn string `json:"buildIn"`
	// Base is the runtime image's base.
	Base string `json:"base"`
	// Fingerprint is the image's cache key (an image with it is reused);
	// FingerprintNote says why it is missing.
	Fingerprint     string `json:"fingerprint,omitempty"`
	FingerprintNote string `json:"fingerprintNote,omitempty"`
	// DepsKey keys the kept node_modules; FrameworkCaches are kept per store and app.
	DepsKey         string   `json:"depsKey,omitempty"`
	FrameworkCaches []string `json:"frameworkCaches,omitempty"`
	// TraceCache says where Next.js's standalone trace analyses are kept ("" when not).
	TraceCache string `json:"traceCache,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Explain composes the stores (as a build does first) and says, per app,
// what the build would run and why, without running anything.
func Explain(ctx context.Context, o BuildOptions) ([]Explanation, error) {
	cfg := o.Config
	var copts []compose.Option
	if o.OutDir != "" {
		copts = append(copts, compose.WithOutDir(o.OutDir))
	}
	composed, err := compose.New(cfg, copts...).Compose(ctx, o.Stores)
	if err != nil {
		return nil, err
	}
	bases := &baseCache{m: map[string]*baseEntry{}}
	var out []Explanation
	for _, sr := range composed {
		for _, ar := range sr.Apps {
			e := explainApp(ctx, o, bases, cfg.Store(sr.Store), cfg.App(ar.App), ar)
			if e.Error != "" {
				e.Error = fmt.Sprintf("%s/%s: %s", e.Store, e.App, e.Error)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func explainApp(ctx context.Context, o BuildOptions, bases *baseCache, st *config.Store, app *config.App, ar compose.AppResult) Explanation {
	cfg := o.Config
	e := Explanation{Store: st.ID, App: app.ID, Dir: ar.Dir}
	e.Base, _ = o.stackImages(cfg, app, ar.Dir)
	in, err := o.buildIn()
	if err != nil {
		e.Error = err.Error()
		return e
	}
	e.BuildIn = in
	if app.Framework == "next" || app.Framework == "nuxt" {
		e.Preset = app.Framework
	}
	if du, err := planDocker(cfg, ar.Dir, app); err != nil || du != nil {
		// Built by the Docker engine from the Dockerfile: no stack, no steps.
		if err != nil {
			e.Error = err.Error()
			return e
		}
		by, in := "the Docker engine, or buildah when no engine answers", "docker engine, else buildah"
		switch b := cmp.Or(du.spec.Builder, os.Getenv(BuilderEnv)); b {
		case config.BuilderDocker:
			by, in = "the Docker engine (build.builder or "+BuilderEnv+" says docker)", "docker engine"
		case config.BuilderBuildah:
			by, in = "buildah (build.builder or "+BuilderEnv+" says buildah)", "buildah"
		}
		e.Detection = &build.Detection{By: "dockerfile", Matched: du.spec.Dockerfile,
			Why: du.spec.Dockerfile + " is built by " + by + " (its FROM images are the bases; its CMD/ENTRYPOINT starts the app unless the config or Procfile says)"}
		e.BuildIn = in
		e.Base = strings.Join(du.df.Bases, ", ")
		e.StartFrom = "the Dockerfile, unless the config's entrypoint or the Procfile's web: line"
		e.FingerprintNote = "computed at build time from the context after .dockerignore, the Dockerfile, target, args and the engine's IDs of the FROM images"
		return e
	}
	d, err := build.Detect(ar.Dir, app.Build)
	if err != nil {
		e.Error = err.Error()
		return e
	}
	e.Detection = d
	procs, err := planProcesses(ar.Dir, app)
	if err != nil {
		e.Error = err.Error()
		return e
	}
	for _, p := range procs.others {
		e.Processes = append(e.Processes, p.Name+": "+p.Command)
	}
	e.Start, e.StartFrom = explainStart(app, procs, e.Preset, ar.Dir, d)
	e.BuildImage, e.BuildImageFrom = explainBuildImage(cfg, app, ar.Dir, d)
	env := buildEnv(cfg, st.ID, app)
	if isLocalBase(e.Base) {
		if be, err := bases.get(ctx, e.Base); err != nil {
			e.FingerprintNote = err.Error()
		} else {
			e.Fingerprint = fingerprint(ar.Fingerprint, cfg.Project, workDir(cfg, app), app, env, be.digest)
		}
	} else {
		e.FingerprintNote = "computed at build time: it includes the digest of the base " + e.Base + ", read from its registry"
	}
	if dir := o.cacheDir(); dir != "" {
		c := &build.Cache{Dir: dir}
		for _, s := range d.Steps {
			if k, err := c.DepsKey(ar.Dir, s, buildBaseEnv(cfg, os.Environ())); err == nil && k != "" {
				e.DepsKey = k
			}
		}
		if e.Preset == "next" {
			e.FrameworkCaches = build.FrameworkCaches
			if e.DepsKey != "" && e.BuildIn != BuildInContainer {
				e.TraceCache = "next build's trace analyses of node_modules, kept with the deps key and shared by the app's stores (" + build.NextTraceEnv + "=off turns it off)"
			}
		}
	}
	return e
}

// explainStart mirrors pack's order: the config's entrypoint, the
// Procfile's or config's web command, the preset's, the stack's convention.
func explainStart(app *config.App, procs *procPlan, preset, dir string, d *build.Detection) ([]string, string) {
	switch {
	case len(app.Entrypoint) > 0:
		return app.Entrypoint, "the app's entrypoint in the config"
	case procs.web != "":
		if app.Processes["web"] != nil && app.Processes["web"].Command != "" {
			return procs.webEntrypoint(), "processes.web in the config"
		}
		return procs.webEntrypoint(), "the Procfile's web: line"
	case app.Static != "":
		return nil, "none: static: " + app.Static + " in the config (the router serves it)"
	case preset == "next":
		return []string{"node", build.ShimDir + "/next-server.cjs"}, "the next preset (Next's standalone server.js)"
	case preset == "nuxt":
		return []string{"node", build.ShimDir + "/nuxt-server.mjs"}, "the nuxt preset (.output/server/index.mjs)"
	}
	stack, _ := build.DetectStack(dir)
	name := stack.Stack
	if name == "" || name == build.StackStatic {
		name = build.StackNode
	}
	if stack.Stack == build.StackGo {
		return []string{"./" + build.GoBinary}, "go: the binary the build writes to " + build.GoBinary
	}
	s := build.StartConvention(dir, name)
	if len(s.Command) > 0 {
		return s.Command, s.Why
	}
	if stack.Stack == build.StackStatic {
		return nil, "none: a static site (" + stack.Matched + "), served by the router"
	}
	return nil, s.Why + "; after the build, an index.html in . dist build out or public makes it a static site, else the build fails: set `entrypoint` or a Procfile web: line"
}

// explainBuildImage is the image the app's stack builds in, and which
// setting named it.
func explainBuildImage(cfg *config.Config, app *config.App, dir string, d *build.Detection) (string, string) {
	stack := d.Stack
	if stack == "" {
		s, _ := build.DetectStack(dir)
		stack = s.Stack
	}
	ref := cfg.StackImage(app, stack)
	switch {
	case ref == "":
		return "", ""
	case app.Image.Stacks[stack] != "":
		return ref, "apps." + app.ID + ".image.stacks." + stack
	case cfg.Image.Stacks[stack] != "":
		return ref, "image.stacks." + stack
	}
	return ref, "the official " + stack + " image (set image.stacks." + stack + " to change it)"
}

// Text renders the explanation for a terminal.
func (e Explanation) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s  (%s)\n", e.Store, e.App, e.Dir)
	if e.Error != "" {
		fmt.Fprintf(&b, "  error:       %s\n", e.Error)
		return b.String()
	}
	d := e.Detection
	what := d.By
	switch d.By {
	case "stack":
		what = "stack " + d.Stack
	case "":
		what = "nothing to build"
	}
	fmt.Fprintf(&b, "  build:       %s: %s\n", what, d.Why)
	if e.Preset != "" {
		fmt.Fprintf(&b, "  preset:      %s (the app's framework)\n", e.Preset)
	}
	if d.PackageManager != "" {
		lock := d.Lockfile
		if lock == "" {
			lock = "no lockfile"
		}
		fmt.Fprintf(&b, "  packages:    %s (%s)\n", d.PackageManager, lock)
	}
	for _, s := range d.Steps {
		fmt.Fprintf(&b, "  %-12s %s\n", s.Kind+":", s.Name)
	}
	start := strings.Join(e.Start, " ")
	if start == "" {
		start = "-"
	}
	fmt.Fprintf(&b, "  start:       %s  (%s)\n", start, e.StartFrom)
	for _, p := range e.Processes {
		fmt.Fprintf(&b, "  process:     %s\n", p)
	}
	switch {
	case e.BuildImage != "" && e.BuildIn == BuildInContainer:
		fmt.Fprintf(&b, "  build image: %s  (%s); the steps run in a container of it\n", e.BuildImage, e.BuildImageFrom)
	case e.BuildImage != "":
		fmt.Fprintf(&b, "  build image: %s  (%s); unused: the steps run on this host (%s=container runs them in it)\n", e.BuildImage, e.BuildImageFrom, BuildInEnv)
	}
	fmt.Fprintf(&b, "  base image:  %s\n", e.Base)
	if e.Fingerprint != "" {
		fmt.Fprintf(&b, "  fingerprint: %s\n", e.Fingerprint)
	} else {
		fmt.Fprintf(&b, "  fingerprint: %s\n", e.FingerprintNote)
	}
	if e.DepsKey != "" {
		fmt.Fprintf(&b, "  deps key:    %s (node_modules kept per lockfile, install command and Node version)\n", e.DepsKey)
	}
	for _, c := range e.FrameworkCaches {
		fmt.Fprintf(&b, "  kept cache:  %s (per store and app)\n", c)
	}
	if e.TraceCache != "" {
		fmt.Fprintf(&b, "  kept cache:  %s\n", e.TraceCache)
	}
	return b.String()
}
