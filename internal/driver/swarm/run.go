package swarm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
)

// runGrace is how long a cancelled one-off gets after SIGTERM before SIGKILL.
const runGrace = time.Second

// Run runs a one-off command as a replicated-job service (one task, never
// restarted, labelled role=hook): with Shell, /bin/sh -c "<Cmd joined by
// spaces>"; otherwise Cmd is the whole argv, or, when empty, the image's
// entrypoint and cmd. Output is streamed from the service logs while the
// task runs and completed from them after it ended, demultiplexed to Stdout
// and Stderr. The service and its env secret are removed afterwards; when
// ctx ends first the task is stopped (SIGKILL after a second) and Run
// returns ctx's error once it has stopped.
func (d *Driver) Run(ctx context.Context, spec driver.RunSpec) (int, error) {
	fail := func(step string, err error) (int, error) {
		return -1, fmt.Errorf("running %s: %s: %w", spec.Name, step, err)
	}
	if spec.Shell && len(spec.Cmd) == 0 {
		return fail("checking the spec", fmt.Errorf("Shell needs a command"))
	}
	ref, err := parseRef(spec.Image)
	if err != nil {
		return fail("checking the image", err)
	}
	argv := spec.Cmd
	switch {
	case spec.Shell:
		argv = []string{"/bin/sh", "-c", strings.Join(spec.Cmd, " ")}
	case len(argv) == 0:
		ic, err := d.command(ctx, ref)
		if err != nil {
			return fail("fetching the image config", err)
		}
		argv = append(append([]string{}, ic.entrypoint...), ic.cmd...)
	}
	env := copyEnv(spec.Env)
	mounts := d.dataMounts(spec.DataKey, spec.Labels, env)
	labels := driver.WithManaged(d.o.labels, spec.Labels, "hook", true)
	labels[LabelName] = spec.Name
	sec, err := d.createEnvSecret(ctx, env, labels)
	if err != nil {
		return fail("env secret", err)
	}
	one, grace := uint64(1), runGrace
	svc := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: serviceName(spec.Name), Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image: ref.String(), Labels: labels, Command: wrap(argv), Mounts: mounts,
				StopGracePeriod: &grace, Secrets: []*swarm.SecretReference{sec},
			},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
			Placement:     d.placement(),
			Resources:     d.resources(),
		},
		Mode: swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{MaxConcurrent: &one, TotalCompletions: &one}},
	}
	id, err := d.createService(ctx, svc, ref.String())
	if err != nil {
		d.removeSecret(ctx, sec.SecretID)
		return fail("creating the job", err)
	}
	j := &job{d: d, id: id, stdout: orDiscard(spec.Stdout), stderr: orDiscard(spec.Stderr)}
	defer j.remove(ctx)
	j.follow(ctx)
	code, err := j.wait(ctx)
	j.finishLogs(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return -1, fmt.Errorf("running %s: %w", spec.Name, ctx.Err())
		}
		return fail("waiting", err)
	}
	return code, nil
}

// job is one Run's service and its output.
type job struct {
	d              *Driver
	id             string
	stdout, stderr io.Writer

	mu         sync.Mutex
	nOut, nErr int // bytes of each stream written so far
	stopFollow context.CancelFunc
	followed   chan struct{}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// counter counts what it passes to w.
type counter struct {
	j *job
	w io.Writer
	n *int
}

func (c counter) Write(p []byte) (int, error) {
	c.j.mu.Lock()
	defer c.j.mu.Unlock()
	n, err := c.w.Write(p)
	*c.n += n
	return n, err
}

// follow streams the job's logs while it runs.
func (j *job) follow(ctx context.Context) {
	fctx, cancel := context.WithCancel(ctx)
	j.stopFollow, j.followed = cancel, make(chan struct{})
	go func() {
		defer close(j.followed)
		rc, err := j.d.cli.ServiceLogs(fctx, j.id, client.ServiceLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
		if err != nil {
			return
		}
		defer rc.Close()
		_, _ = stdcopy.StdCopy(counter{j, j.stdout, &j.nOut}, counter{j, j.stderr, &j.nErr}, rc)
	}()
}

// finishLogs stops following and writes what the stream had not delivered
// yet, from a complete read of the logs.
func (j *job) finishLogs(ctx context.Context) {
	j.stopFollow()
	<-j.followed
	if ctx.Err() != nil {
		return
	}
	var out, errb bytes.Buffer
	rc, err := j.d.cli.ServiceLogs(ctx, j.id, client.ServiceLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(&out, &errb, rc); err != nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if out.Len() > j.nOut {
		j.stdout.Write(out.Bytes()[j.nOut:])
	}
	if errb.Len() > j.nErr {
		j.stderr.Write(errb.Bytes()[j.nErr:])
	}
}

// wait polls the job's task until it ended and returns its exit code.
func (j *job) wait(ctx context.Context) (int, error) {
	for {
		tasks, err := j.d.tasks(ctx, j.id)
		if err != nil && ctx.Err() == nil {
			return -1, err
		}
		for _, t := range tasks {
			switch t.Status.State {
			case swarm.TaskStateComplete:
				return 0, nil
			case swarm.TaskStateFailed:
				if cs := t.Status.ContainerStatus; cs != nil && cs.ContainerID != "" {
					return cs.ExitCode, nil
				}
				return -1, fmt.Errorf("task failed: %s", taskErr(t))
			case swarm.TaskStateRejected:
				return -1, fmt.Errorf("task rejected: %s", taskErr(t))
			}
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// remove removes the job's service and waits until its task has stopped
// (so that a cancelled command is dead when Run returns), then removes its
// secret.
func (j *job) remove(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	res, err := j.d.cli.ServiceInspect(ctx, j.id, client.ServiceInspectOptions{})
	if err != nil {
		return
	}
	// Removing a job service does not stop its running task (engine 20.10
	// leaves the container running). When the task runs on the engine the
	// driver talks to, its container is killed there. Otherwise a new job
	// iteration that no node can take stops it: Swarm shuts the running task
	// down (SIGTERM, SIGKILL after the grace period) and never places the new one.
	tasks, _ := j.d.tasks(ctx, j.id)
	live := false
	for _, t := range tasks {
		live = live || !terminal(t.Status.State)
	}
	if live && j.killHere(ctx, tasks) {
		live = false
	}
	if live {
		spec := res.Service.Spec
		spec.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.labels.dev.slipway.stopped==" + j.id}}
		spec.TaskTemplate.ForceUpdate++
		if _, err := j.d.cli.ServiceUpdate(ctx, j.id, client.ServiceUpdateOptions{Version: res.Service.Version, Spec: spec}); err == nil {
			for _, t := range tasks {
				for ctx.Err() == nil {
					tr, err := j.d.cli.TaskInspect(ctx, t.ID, client.TaskInspectOptions{})
					if err != nil || terminal(tr.Task.Status.State) {
						break
					}
					time.Sleep(pollEvery)
				}
			}
		}
	}
	if _, err := j.d.cli.ServiceRemove(ctx, j.id, client.ServiceRemoveOptions{}); err != nil && !isNotFound(err) {
		return
	}
	if cs := res.Service.Spec.TaskTemplate.ContainerSpec; cs != nil {
		for _, s := range cs.Secrets {
			j.d.removeSecret(ctx, s.SecretID)
		}
	}
}

// killHere kills the live tasks' containers through the driver's own engine
// and waits until their tasks are final; false when one is not there (it
// runs on another node).
func (j *job) killHere(ctx context.Context, tasks []swarm.Task) bool {
	for _, t := range tasks {
		if terminal(t.Status.State) {
			continue
		}
		cs := t.Status.ContainerStatus
		if cs == nil || cs.ContainerID == "" {
			return false
		}
		if _, err := j.d.cli.ContainerKill(ctx, cs.ContainerID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			return false
		}
	}
	for _, t := range tasks {
		for ctx.Err() == nil {
			tr, err := j.d.cli.TaskInspect(ctx, t.ID, client.TaskInspectOptions{})
			if err != nil || terminal(tr.Task.Status.State) {
				break
			}
			time.Sleep(pollEvery)
		}
	}
	return true
}
