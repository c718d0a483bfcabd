package docker

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
)

// Run runs a one-off container (labelled role=hook) to completion: with
// Shell, the image's /bin/sh -c "<Cmd joined by spaces>"; otherwise Cmd is
// the whole argv (it replaces the image's entrypoint), or, when empty, the
// image's entrypoint and cmd run. Output is attached before the
// container starts, so none is lost, and demultiplexed to Stdout and Stderr.
// The container is removed afterwards; when ctx ends first it is killed and
// removed, and Run returns ctx's error.
func (d *Driver) Run(ctx context.Context, spec driver.RunSpec) (int, error) {
	fail := func(step string, err error) (int, error) {
		return -1, fmt.Errorf("running %s: %s: %w", spec.Name, step, err)
	}
	if spec.Shell && len(spec.Cmd) == 0 {
		return fail("checking the spec", fmt.Errorf("Shell needs a command"))
	}
	imageID, err := d.EnsureImage(ctx, spec.Image)
	if err != nil {
		return fail("fetching the image", err)
	}
	mode, err := d.NetworkMode(ctx)
	if err != nil {
		return fail("network", err)
	}
	env := copyEnv(spec.Env)
	mounts, err := d.dataMounts(ctx, spec.DataKey, spec.Labels, env)
	if err != nil {
		return fail("data volume", err)
	}
	argv := spec.Cmd
	if spec.Shell {
		argv = []string{"/bin/sh", "-c", strings.Join(spec.Cmd, " ")}
	}
	cfg := &container.Config{
		Image:  imageID,
		Env:    envList(env),
		Labels: driver.WithManaged(d.opts.labels, spec.Labels, "hook", true),
		// A non-empty Entrypoint with no Cmd: the image's Cmd is not
		// appended. An empty one keeps the image's entrypoint and cmd.
		Entrypoint:   argv,
		AttachStdout: true,
		AttachStderr: true,
	}
	// The output is attached; the engine need not store it (it would, in
	// clear, under its data root).
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(mode), Mounts: mounts, LogConfig: container.LogConfig{Type: LogDriverNone}}
	id, err := d.create(ctx, spec.Name, cfg, hc)
	if err != nil {
		return fail("creating the container", err)
	}
	defer d.remove(ctx, id)

	att, err := d.cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return fail("attaching", err)
	}
	defer att.Close()
	// Registered before the start, so a quick exit is not missed.
	wait := d.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})

	stdout, stderr := spec.Stdout, spec.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, att.Reader)
		copied <- err
	}()

	if _, err := d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fail("starting the container", err)
	}
	select {
	case r := <-wait.Result:
		// The engine closes the attach stream once the process is gone and
		// its output is flushed: wait for the copy so no output is lost.
		select {
		case <-copied:
		case <-ctx.Done():
		}
		if r.Error != nil && r.Error.Message != "" {
			return fail("waiting", fmt.Errorf("%s", r.Error.Message))
		}
		return int(r.StatusCode), nil
	case err := <-wait.Error:
		if ctx.Err() != nil {
			return -1, fmt.Errorf("running %s: %w", spec.Name, ctx.Err())
		}
		return fail("waiting", err)
	case <-ctx.Done():
		// The deferred remove (force) kills the container.
		return -1, fmt.Errorf("running %s: %w", spec.Name, ctx.Err())
	}
}
