package swarm

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/docker"
)

// Timeouts of the driver's own waits.
const (
	// startTimeout bounds Start's wait for running tasks (pulls included)
	// when ctx has no deadline.
	startTimeout = 3 * time.Minute
	// cleanupTimeout bounds removals done after a failure or ctx's end.
	cleanupTimeout = 30 * time.Second
	// unplacedTimeout is how long Start waits for a node that meets the
	// placement (a node may be joining) before it fails.
	unplacedTimeout = 10 * time.Second
	// pollEvery is how often task states are read while waiting.
	pollEvery = 100 * time.Millisecond
)

// Start creates the instance's env secret and service and returns once all
// its tasks run with their port published. A task the node rejects (an
// image it cannot pull, a constraint no node meets within the wait) fails
// Start, and the service and secret are removed; a task that starts and
// exits at once is returned as exited, with its exit code.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	fail := func(step string, err error) (driver.Instance, error) {
		return driver.Instance{}, fmt.Errorf("starting %s: %s: %w", spec.Name, step, err)
	}
	if spec.Port <= 0 || spec.Port > 65535 {
		return fail("checking the spec", fmt.Errorf("port %d out of range", spec.Port))
	}
	ref, err := parseRef(spec.Image)
	if err != nil {
		return fail("checking the image", err)
	}
	ic, err := d.command(ctx, ref)
	if err != nil {
		return fail("fetching the image config", err)
	}
	env := copyEnv(spec.Env)
	env["PORT"] = strconv.Itoa(spec.Port)
	mounts := d.dataMounts(spec.DataKey, spec.Labels, env)
	labels := driver.WithManaged(d.o.labels, spec.Labels, "web", false)
	labels[LabelName] = spec.Name
	labels[LabelPort] = strconv.Itoa(spec.Port)
	sec, err := d.createEnvSecret(ctx, env, labels)
	if err != nil {
		return fail("env secret", err)
	}
	published := 0
	if d.pinPorts() {
		p, release, err := d.reservePort()
		if err != nil {
			d.removeSecret(ctx, sec.SecretID)
			return fail("choosing a port", err)
		}
		defer release()
		published = p
	}
	grace := spec.StopTimeout
	if grace <= 0 {
		grace = driver.DefaultStopTimeout
	}
	replicas := d.o.replicas
	svc := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: serviceName(spec.Name), Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image: ref.String(), Labels: labels,
				Command:         wrap(append(append([]string{}, ic.entrypoint...), ic.cmd...)),
				Mounts:          mounts,
				StopGracePeriod: &grace,
				Secrets:         []*swarm.SecretReference{sec},
			},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &d.o.restartDelay},
			Placement:     d.placement(),
			Resources:     d.resources(),
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR, Ports: []swarm.PortConfig{{
			Protocol: network.TCP, TargetPort: uint32(spec.Port), PublishedPort: uint32(published),
			PublishMode: swarm.PortConfigPublishModeHost,
		}}},
	}
	id, err := d.createService(ctx, svc, ref.String())
	if err != nil {
		d.removeSecret(ctx, sec.SecretID)
		return fail("creating the service", err)
	}
	inst, err := d.awaitRunning(ctx, id, int(replicas))
	if err != nil {
		d.removeService(ctx, id)
		return fail("waiting for its tasks", err)
	}
	return inst, nil
}

// createService creates svc with registry credentials for ref. A managed
// service of the same name (left by a crash) is removed first.
func (d *Driver) createService(ctx context.Context, svc swarm.ServiceSpec, ref string) (string, error) {
	auth, err := d.dd.RegistryAuth(ref)
	if err != nil {
		return "", fmt.Errorf("registry credentials: %w", err)
	}
	for attempt := 0; ; attempt++ {
		res, err := d.cli.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: svc, EncodedRegistryAuth: auth})
		if err == nil {
			return res.ID, nil
		}
		if attempt > 0 || !cerrdefs.IsConflict(err) {
			return "", err
		}
		old, ierr := d.cli.ServiceInspect(ctx, svc.Name, client.ServiceInspectOptions{})
		if ierr != nil || old.Service.Spec.Labels[driver.LabelManaged] != "true" {
			return "", err
		}
		d.removeService(ctx, old.Service.ID)
	}
}

// awaitRunning waits until n tasks of service id run with their port, or
// one is rejected or exits first.
func (d *Driver) awaitRunning(ctx context.Context, id string, n int) (driver.Instance, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	var unplaced time.Time // since when a task waits for a node that fits
	for {
		svc, tasks, err := d.inspect(ctx, id)
		if err != nil {
			return driver.Instance{}, err
		}
		running := 0
		for _, t := range tasks {
			if t.Status.State == swarm.TaskStatePending && strings.Contains(t.Status.Err, "no suitable node") {
				if unplaced.IsZero() {
					unplaced = time.Now()
				}
				if time.Since(unplaced) > unplacedTimeout {
					return driver.Instance{}, fmt.Errorf("no node can run it (placement %s): %s", constraints(svc), t.Status.Err)
				}
			}
			switch t.Status.State {
			case swarm.TaskStateRunning:
				if len(t.Status.PortStatus.Ports) > 0 {
					running++
				}
			case swarm.TaskStateRejected:
				return driver.Instance{}, fmt.Errorf("task rejected: %s", taskErr(t))
			case swarm.TaskStateFailed, swarm.TaskStateComplete:
				if t.Status.ContainerStatus != nil && t.Status.ContainerStatus.ContainerID != "" {
					return d.toInstance(ctx, svc, tasks), nil
				}
				return driver.Instance{}, fmt.Errorf("task failed: %s", taskErr(t))
			}
		}
		if running >= n {
			return d.toInstance(ctx, svc, tasks), nil
		}
		select {
		case <-ctx.Done():
			return driver.Instance{}, fmt.Errorf("%w (tasks: %s)", ctx.Err(), describeTasks(tasks))
		case <-time.After(pollEvery):
		}
	}
}

// constraints describes a service's placement constraints.
func constraints(svc swarm.Service) string {
	p := svc.Spec.TaskTemplate.Placement
	if p == nil || len(p.Constraints) == 0 {
		return "any node"
	}
	return strings.Join(p.Constraints, ", ")
}

func taskErr(t swarm.Task) string {
	if t.Status.Err != "" {
		return t.Status.Err
	}
	return t.Status.Message
}

func describeTasks(tasks []swarm.Task) string {
	if len(tasks) == 0 {
		return "none scheduled yet"
	}
	s := ""
	for i, t := range tasks {
		if i > 0 {
			s += "; "
		}
		s += string(t.Status.State)
		if e := taskErr(t); e != "" {
			s += ": " + e
		}
	}
	return s
}

// inspect returns service id and its tasks, newest first.
func (d *Driver) inspect(ctx context.Context, id string) (swarm.Service, []swarm.Task, error) {
	res, err := d.cli.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		return swarm.Service{}, nil, err
	}
	tasks, err := d.tasks(ctx, res.Service.ID)
	return res.Service, tasks, err
}

// tasks lists the tasks of a service, newest first.
func (d *Driver) tasks(ctx context.Context, serviceID string) ([]swarm.Task, error) {
	tl, err := d.cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", serviceID)})
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	tasks := tl.Items
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].CreatedAt.After(tasks[j].CreatedAt) })
	return tasks, nil
}

// toInstance describes a service from its tasks: running (with the first
// running task's address) when one runs, else exited with the newest
// task's exit code.
func (d *Driver) toInstance(ctx context.Context, svc swarm.Service, tasks []swarm.Task) driver.Instance {
	labels := svc.Spec.Labels
	inst := driver.Instance{ID: svc.ID, Name: labels[LabelName], Labels: labels, State: "exited", Started: svc.CreatedAt}
	if inst.Name == "" {
		inst.Name = svc.Spec.Name
	}
	for i := len(tasks) - 1; i >= 0; i-- { // oldest first, so Addr is stable
		t := tasks[i]
		if t.Status.State != swarm.TaskStateRunning || t.DesiredState != swarm.TaskStateRunning {
			continue
		}
		host, err := d.nodeAddr(ctx, t.NodeID)
		if err != nil {
			continue
		}
		for _, p := range t.Status.PortStatus.Ports {
			if p.PublishedPort == 0 {
				continue
			}
			addr := net.JoinHostPort(host, strconv.Itoa(int(p.PublishedPort)))
			if inst.Addr == "" {
				inst.Addr, inst.State, inst.Started = addr, "running", t.Status.Timestamp
			}
			inst.Addrs = appendNew(inst.Addrs, addr)
			break
		}
	}
	if inst.State != "running" && len(tasks) > 0 && tasks[0].Status.ContainerStatus != nil {
		inst.ExitCode = tasks[0].Status.ContainerStatus.ExitCode
	}
	return inst
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Stop removes the service (Swarm sends its tasks SIGTERM, then SIGKILL
// after the grace period), waits until those tasks have stopped, then
// removes its env secret. The data volume stays. Unknown ids, and services
// the driver does not own, are ignored.
//
// It never scales the service to zero first: on engine 20.10 removing a
// service while the task reaper deletes the tasks a scale-down left behind
// races in swarmkit (SetServiceTasksRemove dereferences a task that is gone)
// and the daemon panics. Removing a service with its tasks still running is
// the ordinary `docker service rm` path.
func (d *Driver) Stop(ctx context.Context, id string) error {
	res, err := d.cli.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stopping %s: inspecting: %w", id, err)
	}
	svc := res.Service
	if svc.Spec.Labels[driver.LabelManaged] != "true" {
		return nil
	}
	tasks, err := d.tasks(ctx, svc.ID)
	if err != nil {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	if _, err := d.cli.ServiceRemove(ctx, svc.ID, client.ServiceRemoveOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("removing %s: %w", id, err)
	}
	if err := d.awaitStopped(ctx, svc, tasks); err != nil {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	d.removeSecrets(ctx, svc)
	return nil
}

// awaitStopped waits until none of a removed service's tasks still runs:
// each is inspected by id (a removed service's tasks are no longer listed by
// service) until it is final or gone, within the grace period plus a margin
// for the nodes to report.
func (d *Driver) awaitStopped(ctx context.Context, svc swarm.Service, tasks []swarm.Task) error {
	grace := driver.DefaultStopTimeout
	if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil && cs.StopGracePeriod != nil {
		grace = *cs.StopGracePeriod
	}
	deadline := time.Now().Add(grace + 20*time.Second)
	for _, t := range tasks {
		for {
			tr, err := d.cli.TaskInspect(ctx, t.ID, client.TaskInspectOptions{})
			if isNotFound(err) || err == nil && (terminal(tr.Task.Status.State) || d.localExited(ctx, tr.Task)) {
				break
			}
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("task %s still %s %s after the stop", t.ID, tr.Task.Status.State, grace+20*time.Second)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pollEvery):
			}
		}
	}
	return nil
}

// localExited reports whether a task's container runs on the engine this
// driver talks to and has exited. The node reports a task's end to the manager
// a second or more after its container is gone; on the manager's own node the
// container says so at once, so a graceful exit is seen without that lag.
func (d *Driver) localExited(ctx context.Context, t swarm.Task) bool {
	cs := t.Status.ContainerStatus
	if cs == nil || cs.ContainerID == "" || t.NodeID == "" || t.NodeID != d.localNodeID(ctx) {
		return false
	}
	res, err := d.cli.ContainerInspect(ctx, cs.ContainerID, client.ContainerInspectOptions{})
	if isNotFound(err) {
		return true // on this node, and removed already
	}
	return err == nil && res.Container.State != nil && !res.Container.State.Running && !res.Container.State.Restarting
}

// localNodeID is the swarm node id of the engine this driver talks to, "" if unknown.
func (d *Driver) localNodeID(ctx context.Context) string {
	d.nodeMu.Lock()
	defer d.nodeMu.Unlock()
	if d.selfNode == "" {
		if info, err := d.cli.Info(ctx, client.InfoOptions{}); err == nil {
			d.selfNode = info.Info.Swarm.NodeID
		}
	}
	return d.selfNode
}

// terminal reports whether a task state is final (its container is gone or stopped).
func terminal(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed,
		swarm.TaskStateRejected, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return true
	}
	// Tasks never given to a node have no container to stop.
	switch s {
	case swarm.TaskStateNew, swarm.TaskStatePending, swarm.TaskStateAllocated:
		return true
	}
	return false
}

// removeService removes a service and its secrets, also after ctx ended;
// errors are dropped (it is cleanup after another failure).
func (d *Driver) removeService(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	res, err := d.cli.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		return
	}
	_ = d.removeServiceErr(ctx, res.Service)
}

func (d *Driver) removeServiceErr(ctx context.Context, svc swarm.Service) error {
	if _, err := d.cli.ServiceRemove(ctx, svc.ID, client.ServiceRemoveOptions{}); err != nil && !isNotFound(err) {
		return err
	}
	d.removeSecrets(ctx, svc)
	return nil
}

// removeSecrets removes the env secrets a service referenced.
func (d *Driver) removeSecrets(ctx context.Context, svc swarm.Service) {
	if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
		for _, s := range cs.Secrets {
			d.removeSecret(ctx, s.SecretID)
		}
	}
}

// removeSecret removes a secret once no service uses it (a just-removed
// service may still hold it for a moment); errors are dropped: Prune-like
// leftovers are found again by their labels.
func (d *Driver) removeSecret(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for {
		_, err := d.cli.SecretRemove(ctx, id, client.SecretRemoveOptions{})
		if err == nil || isNotFound(err) || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// List returns the services the driver owns (with its WithLabels labels)
// whose labels include match, oldest first.
func (d *Driver) List(ctx context.Context, match map[string]string) ([]driver.Instance, error) {
	f := make(client.Filters).Add("label", driver.LabelManaged+"=true")
	for k, v := range d.o.labels {
		f.Add("label", k+"="+v)
	}
	for k, v := range match {
		f.Add("label", k+"="+v)
	}
	res, err := d.cli.ServiceList(ctx, client.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	out := make([]driver.Instance, 0, len(res.Items))
	for _, svc := range res.Items {
		if !driver.Matches(svc.Spec.Labels, match) {
			continue
		}
		tasks, err := d.tasks(ctx, svc.ID)
		if err != nil {
			return nil, fmt.Errorf("listing services: %w", err)
		}
		out = append(out, d.toInstance(ctx, svc, tasks))
	}
	driver.SortInstances(out)
	return out, nil
}

// Logs copies the service's stdout and stderr (all its tasks) to w. With
// follow it returns when ctx ends.
func (d *Driver) Logs(ctx context.Context, id string, w io.Writer, follow bool) error {
	if _, err := d.cli.ServiceInspect(ctx, id, client.ServiceInspectOptions{}); isNotFound(err) {
		return fmt.Errorf("logs of %s: %w", id, driver.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	rc, err := d.cli.ServiceLogs(ctx, id, client.ServiceLogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if isNotFound(err) {
			return fmt.Errorf("logs of %s: %w", id, driver.ErrNotFound)
		}
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	return nil
}

// dataMounts returns the data volume's mount at DataMount, adding
// SLIPWAY_DATA_DIR to env; nothing for "". Swarm creates the volume on the
// node with the driver and options of WithVolumeDriver.
func (d *Driver) dataMounts(key string, labels, env map[string]string) []mount.Mount {
	if key == "" {
		return nil
	}
	vlabels := map[string]string{}
	for k, v := range d.o.labels {
		vlabels[k] = v
	}
	vlabels[driver.LabelManaged] = "true"
	vlabels[LabelDataKey] = key
	for _, k := range []string{driver.LabelProject, driver.LabelStore, driver.LabelApp} {
		if v := labels[k]; v != "" {
			vlabels[k] = v
		}
	}
	vo := &mount.VolumeOptions{Labels: vlabels}
	if d.o.volDriver != "" || len(d.o.volOpts) > 0 {
		vo.DriverConfig = &mount.Driver{Name: d.o.volDriver, Options: d.o.volOpts}
	}
	env["SLIPWAY_DATA_DIR"] = DataMount
	return []mount.Mount{{Type: mount.TypeVolume, Source: docker.DataVolumeName(key), Target: DataMount, VolumeOptions: vo}}
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env)+2)
	for k, v := range env {
		out[k] = v
	}
	return out
}

func isNotFound(err error) bool { return err != nil && cerrdefs.IsNotFound(err) }
