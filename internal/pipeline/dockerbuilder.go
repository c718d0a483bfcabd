package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/dockerbuild"
)

// BuilderEnv forces the Dockerfile builder of every app whose config names
// none: "docker" or "buildah". Unset: the Docker engine when one answers,
// else buildah.
const BuilderEnv = "SLIPWAY_DOCKERFILE_BUILDER"

// engineDialTimeout bounds the ping that decides whether an engine answers.
const engineDialTimeout = 10 * time.Second

// builders gives a job's Dockerfile units their builder, each made once per
// job and only when a unit needs it.
type builders struct {
	cacheDir string

	engineOnce sync.Once
	engine     *dockerbuild.Engine
	engineErr  error

	buildahOnce sync.Once
	buildah     *dockerbuild.Buildah
	buildahErr  error
	tmp         string // buildah's storage when nothing is cached
}

func newBuilders(cacheDir string) *builders { return &builders{cacheDir: cacheDir} }

// pick returns the builder for a unit whose config (field) says want: the
// engine or buildah as asked (by the config, else BuilderEnv), else the
// engine when one answers, else buildah.
func (bs *builders) pick(ctx context.Context, field, want string) (dockerbuild.Builder, error) {
	if want == "" {
		want = os.Getenv(BuilderEnv)
		if !config.ValidBuilder(want) {
			return nil, fmt.Errorf("%s=%q: write docker or buildah, or unset it to use the engine when one answers, else buildah", BuilderEnv, want)
		}
		field = BuilderEnv
	} else {
		field += ".builder"
	}
	switch want {
	case config.BuilderDocker:
		e, err := bs.getEngine(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s is docker, and %w", field, err)
		}
		return e, nil
	case config.BuilderBuildah:
		b, err := bs.getBuildah()
		if err != nil {
			return nil, fmt.Errorf("%s is buildah, and %w", field, err)
		}
		return b, nil
	}
	e, eerr := bs.getEngine(ctx)
	if eerr == nil {
		return e, nil
	}
	b, berr := bs.getBuildah()
	if berr == nil {
		return b, nil
	}
	return nil, fmt.Errorf("a Dockerfile build needs a Docker engine (DOCKER_HOST, else /var/run/docker.sock) or buildah: %v; %v", eerr, berr)
}

func (bs *builders) getEngine(ctx context.Context) (*dockerbuild.Engine, error) {
	bs.engineOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, engineDialTimeout)
		defer cancel()
		bs.engine, bs.engineErr = dockerbuild.Dial(ctx, "")
		if bs.engineErr != nil {
			bs.engineErr = fmt.Errorf("no Docker engine answers (DOCKER_HOST, else /var/run/docker.sock): %w", bs.engineErr)
		}
	})
	return bs.engine, bs.engineErr
}

// getBuildah makes the buildah builder, its storage (and layer cache) in
// the cache dir, or in a temporary dir removed after the job.
func (bs *builders) getBuildah() (*dockerbuild.Buildah, error) {
	bs.buildahOnce.Do(func() {
		bin, err := dockerbuild.FindBuildah()
		if err != nil {
			bs.buildahErr = err
			return
		}
		dir := bs.cacheDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "slipway-buildah-"); err != nil {
				bs.buildahErr = fmt.Errorf("buildah storage: %w", err)
				return
			}
			bs.tmp = dir
		}
		bs.buildah, bs.buildahErr = dockerbuild.NewBuildah(bin, filepath.Join(dir, "buildah"))
	})
	return bs.buildah, bs.buildahErr
}

func (bs *builders) close() {
	if bs.engine != nil {
		bs.engine.Close()
	}
	if bs.tmp != "" {
		if bs.buildah != nil {
			bs.buildah.RemoveStorage(context.Background())
		}
		os.RemoveAll(bs.tmp)
	}
}
