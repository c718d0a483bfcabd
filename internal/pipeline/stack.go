package pipeline

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/config"
)

// collect selects the app's production files and its start command: the
// config's entrypoint, else the Procfile's or config's web command, else the
// preset's or detected stack's convention. A static site (detected, or
// `static:` in the config) starts nothing; any other app without a start
// command is an error naming the config.
func collect(u *buildUnit, cfgFile string) (*build.Production, []string, error) {
	sel := build.Selection{Framework: u.app.Framework, Include: u.app.Deploy.Include, Exclude: u.app.Deploy.Exclude,
		SourceDir: u.app.Path, StartSet: len(u.app.Entrypoint) > 0 || u.procs.web != "" || u.app.Static != ""}
	prod, err := build.Collect(u.dir, sel)
	if err != nil {
		return nil, nil, fmt.Errorf("%s/%s: collecting production files: %w", u.store.ID, u.app.ID, err)
	}
	entry := u.app.Entrypoint
	if len(entry) == 0 {
		entry = u.procs.webEntrypoint()
	}
	if len(entry) == 0 {
		entry = prod.Entrypoint
	}
	if len(entry) == 0 && prod.Preset != "static" && u.app.Static == "" {
		return nil, nil, fmt.Errorf("%s/%s: no entrypoint (%s): set `entrypoint` for app %s in %s, or a Procfile `web:` line", u.store.ID, u.app.ID, prod.StartWhy, u.app.ID, cfgFile)
	}
	return prod, entry, nil
}

// first is argv's program, "" for none.
func first(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	return argv[0]
}

// BuildInEnv sets BuildOptions.BuildIn for every build (CLI and serve):
// "container" runs detected stacks' steps in containers of their images.
const BuildInEnv = "SLIPWAY_BUILD_IN"

// Where builds run.
const (
	BuildInHost      = "host"
	BuildInContainer = "container"
)

// buildIn resolves BuildIn's default and checks it.
func (o BuildOptions) buildIn() (string, error) {
	v, from := o.BuildIn, "BuildIn"
	if v == "" {
		v, from = os.Getenv(BuildInEnv), BuildInEnv
	}
	switch v {
	case "", BuildInHost:
		return BuildInHost, nil
	case BuildInContainer:
		return v, nil
	}
	return "", fmt.Errorf("%s=%q: want %s or %s", from, v, BuildInHost, BuildInContainer)
}

// interpreted are the stacks whose build image also runs the app: what
// they install (node_modules, pip's target, the bundle) is for its
// interpreter. A Go binary is static and runs on any base.
var interpreted = []string{build.StackNode, build.StackPython, build.StackRuby}

// stackImages returns the app's runtime base and, when builds run in
// containers, the image its steps run in: the stack's (image.stacks, else
// the official one). In a container build an interpreted stack's base
// defaults to that same image, unless image.base or SLIPWAY_IMAGE_BASE
// names one.
func (o BuildOptions) stackImages(cfg *config.Config, app *config.App, dir string) (base, buildImage string) {
	base = baseRef(cfg, app)
	if in, _ := o.buildIn(); in != BuildInContainer {
		return base, ""
	}
	d, err := build.DetectStack(dir)
	if err != nil || d.Stack == "" {
		return base, ""
	}
	buildImage = cfg.StackImage(app, d.Stack)
	if buildImage != "" && slices.Contains(interpreted, d.Stack) &&
		app.Image.Base == "" && cfg.Image.Base == "" && os.Getenv(BaseImageEnv) == "" {
		base = buildImage
	}
	return base, buildImage
}

// builtIn makes the build image part of the fingerprint: the same files
// built in another image are another image.
func builtIn(composed, buildImage string) string {
	if buildImage == "" {
		return composed
	}
	return composed + "\x00built in " + buildImage
}

// connectContainers dials the Docker engine for the runner when a task
// builds in a container; the returned func closes it.
func (o BuildOptions) connectContainers(ctx context.Context, r *build.Runner, units []*buildUnit) (func(), error) {
	in, err := o.buildIn()
	if err != nil || in != BuildInContainer {
		return func() {}, err
	}
	need := slices.ContainsFunc(units, func(u *buildUnit) bool { return u.docker == nil && u.buildImage != "" })
	if !need {
		return func() {}, nil
	}
	c, err := build.DialContainers(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("%s=%s needs a Docker engine (DOCKER_HOST, else /var/run/docker.sock): %w", BuildInEnv, in, err)
	}
	r.Containers = c
	return func() { c.Close() }, nil
}
