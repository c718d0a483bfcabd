package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ContainerWorkDir is where the app directory is mounted in a build container.
const ContainerWorkDir = "/workspace"

// LabelBuild marks Slipway's build containers (value: store/app), so that
// one left by a crash can be found and removed.
const LabelBuild = "dev.slipway.build"

// Containers runs build steps in containers of a Docker engine: each step
// in a new container of the task's image (Task.Image), the composed app
// bind-mounted at ContainerWorkDir, so what the step writes lands in .out
// as on the host. The engine pulls an image it lacks.
type Containers struct {
	cli *client.Client

	mu     sync.Mutex
	pulled map[string]*pullOnce
}

type pullOnce struct {
	once sync.Once
	err  error
}

// DialContainers connects to the engine at host ("" reads DOCKER_HOST,
// else the default socket) and checks that it answers.
func DialContainers(ctx context.Context, host string) (*Containers, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine client: %w", err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("pinging the docker engine: %w", err)
	}
	return &Containers{cli: cli, pulled: map[string]*pullOnce{}}, nil
}

// Close releases the engine client.
func (c *Containers) Close() error { return c.cli.Close() }

// ensure makes the engine have ref, pulling it once per job when it lacks it.
func (c *Containers) ensure(ctx context.Context, ref string) error {
	c.mu.Lock()
	p, ok := c.pulled[ref]
	if !ok {
		p = &pullOnce{}
		c.pulled[ref] = p
	}
	c.mu.Unlock()
	p.once.Do(func() {
		if _, err := c.cli.ImageInspect(ctx, ref); err == nil {
			return
		}
		resp, err := c.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
		if err == nil {
			err = resp.Wait(ctx)
			resp.Close()
		}
		if err != nil {
			p.err = fmt.Errorf("the engine has no image %s and pulling it failed: %w", ref, err)
		}
	})
	return p.err
}

// run runs argv in a new container of image with env, dir mounted at
// ContainerWorkDir, copying its output to out; the container is removed
// afterwards, and killed when ctx ends.
func (c *Containers) run(ctx context.Context, t Task, argv, env []string, out io.Writer) error {
	if err := c.ensure(ctx, t.Image); err != nil {
		return err
	}
	cfg := &container.Config{Image: t.Image, Entrypoint: argv, Env: env, WorkingDir: ContainerWorkDir,
		Labels: map[string]string{LabelBuild: t.Label()}, AttachStdout: true, AttachStderr: true}
	if uid := os.Getuid(); uid != 0 {
		// Files the step writes stay the deploying user's.
		cfg.User = strconv.Itoa(uid) + ":" + strconv.Itoa(os.Getgid())
	}
	hc := &container.HostConfig{Binds: []string{t.Dir + ":" + ContainerWorkDir}}
	res, err := c.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc})
	if err != nil {
		return fmt.Errorf("creating the build container: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		c.cli.ContainerRemove(rctx, res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}()
	att, err := c.cli.ContainerAttach(ctx, res.ID, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("attaching to the build container: %w", err)
	}
	defer att.Close()
	wait := c.cli.ContainerWait(ctx, res.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	copied := make(chan struct{})
	go func() { stdcopy.StdCopy(out, out, att.Reader); close(copied) }()
	if _, err := c.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("starting the build container: %w", err)
	}
	select {
	case r := <-wait.Result:
		<-copied
		if r.Error != nil && r.Error.Message != "" {
			return fmt.Errorf("build container: %s", r.Error.Message)
		}
		if r.StatusCode != 0 {
			return fmt.Errorf("exit status %d (in a container of %s)", r.StatusCode, t.Image)
		}
		return nil
	case err := <-wait.Error:
		if ctx.Err() != nil {
			return fmt.Errorf("cancelled: %w", ctx.Err())
		}
		return fmt.Errorf("waiting for the build container: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("cancelled: %w", ctx.Err()) // the deferred remove kills it
	}
}
