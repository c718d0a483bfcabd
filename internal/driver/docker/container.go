package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/redact"
)

// startSettle bounds how long Start waits, after the engine started the
// container, for its port binding to show (or for it to exit).
const startSettle = 5 * time.Second

// cleanupTimeout bounds removals done after the caller's context ended.
const cleanupTimeout = 30 * time.Second

// Start fetches the image if the engine lacks it, creates a data volume for
// the data key if needed, then creates and starts one container. It returns
// once the engine reports the container running with its port published; a
// container that exits at once is returned as exited, not as an error, so
// the caller sees its exit code (and its logs, until Stop).
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	fail := func(step string, err error) (driver.Instance, error) {
		return driver.Instance{}, fmt.Errorf("starting %s: %s: %w", spec.Name, step, err)
	}
	if spec.Port <= 0 || spec.Port > 65535 {
		return fail("checking the spec", fmt.Errorf("port %d out of range", spec.Port))
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
	timeout := spec.StopTimeout
	if timeout <= 0 {
		timeout = driver.DefaultStopTimeout
	}
	stopSecs := int(math.Ceil(timeout.Seconds()))
	publishIP, err := netip.ParseAddr(d.opts.publishIP)
	if err != nil {
		return fail("publish IP", err)
	}
	// The driver picks the host port itself with host networking (the app
	// binds it), and with bridge networking on a local engine: the engine's
	// ephemeral port would change when the engine restarts the container,
	// leaving the router with a stale Addr. A port taken between the pick
	// and the engine's bind fails the start; then another is tried.
	pick := mode == NetworkHost || d.pinPorts()
	for attempt := 1; ; attempt++ {
		port, hostPort := spec.Port, 0
		if pick {
			p, release, err := d.reserveHostPort(d.opts.publishIP)
			if err != nil {
				return fail("choosing a host port", err)
			}
			defer release()
			hostPort = p
			if mode == NetworkHost {
				port = p
			}
		}
		env["PORT"] = strconv.Itoa(port)
		cfg := &container.Config{
			Image:       imageID,
			Env:         envList(env),
			Labels:      driver.WithManaged(d.opts.labels, spec.Labels, "web", false),
			StopTimeout: &stopSecs,
		}
		hc := &container.HostConfig{
			NetworkMode:   container.NetworkMode(mode),
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(d.opts.restart)},
			Mounts:        mounts,
		}
		if d.cap != nil {
			// The engine stores nothing; the driver keeps the output, redacted.
			hc.LogConfig = container.LogConfig{Type: LogDriverNone}
			cfg.Labels[LabelSecretKeys] = secretKeys(env, spec.Secrets)
		}
		if mode == NetworkBridge {
			p, _ := network.PortFrom(uint16(port), network.TCP)
			hp := ""
			if hostPort != 0 {
				hp = strconv.Itoa(hostPort)
			}
			cfg.ExposedPorts = network.PortSet{p: {}}
			hc.PortBindings = network.PortMap{p: {{HostIP: publishIP, HostPort: hp}}}
		}
		id, err := d.create(ctx, spec.Name, cfg, hc)
		if err != nil {
			return fail("creating the container", err)
		}
		if d.cap != nil {
			// Attached before the start, so not a line is missed.
			att, err := d.attach(ctx, id)
			if err != nil {
				d.remove(ctx, id)
				return fail("attaching to its output", err)
			}
			d.cap.begin(id, redact.New(secretLines(spec.Secrets)...), att, d.reattach)
		}
		if _, err := d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			d.remove(ctx, id)
			if pick && attempt < 5 && isPortTaken(err) {
				continue
			}
			return fail("starting the container", err)
		}
		inst, err := d.settle(ctx, id)
		if err != nil {
			d.remove(ctx, id)
			return fail("inspecting the container", err)
		}
		return inst, nil
	}
}

// pinPorts reports whether bridge-networked instances get a host port the
// driver picked (see WithPinnedPorts).
func (d *Driver) pinPorts() bool {
	if d.opts.pinPorts != nil {
		return *d.opts.pinPorts
	}
	return !IsRemoteHost(d.host)
}

// isPortTaken recognises the engine's errors for a host port in use.
func isPortTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "port is already allocated") || strings.Contains(s, "address already in use")
}

// settle inspects a just-started container until it runs with its port
// published, or exits, or startSettle passes.
func (d *Driver) settle(ctx context.Context, id string) (driver.Instance, error) {
	deadline := time.Now().Add(startSettle)
	for {
		res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return driver.Instance{}, err
		}
		c := res.Container
		inst := toInstance(c)
		switch {
		case c.State == nil:
		case c.State.Running && !c.State.Restarting && inst.Addr != "":
			return inst, nil
		case !c.State.Running && !c.State.Restarting && c.State.Status != container.StateCreated:
			return inst, nil
		}
		if time.Now().After(deadline) {
			return inst, nil
		}
		select {
		case <-ctx.Done():
			return driver.Instance{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// create creates a container named name. When a stopped container the
// driver owns already has the name (left by a crash), it is removed first.
func (d *Driver) create(ctx context.Context, name string, cfg *container.Config, hc *container.HostConfig) (string, error) {
	name = containerName(name)
	for attempt := 0; ; attempt++ {
		res, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
		if err == nil {
			return res.ID, nil
		}
		if attempt > 0 || name == "" || !cerrdefs.IsConflict(err) {
			return "", err
		}
		old, ierr := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		if ierr != nil || old.Container.Config == nil || old.Container.Config.Labels[driver.LabelManaged] != "true" ||
			old.Container.State == nil || old.Container.State.Running {
			return "", err
		}
		if _, rerr := d.cli.ContainerRemove(ctx, old.Container.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); rerr != nil && !isNotFound(rerr) {
			return "", err
		}
	}
}

// Stop stops the container (SIGTERM, then SIGKILL after the stop timeout
// given at Start) and removes it with its anonymous volumes; the data volume
// stays. Unknown ids, and containers the driver does not own, are ignored.
func (d *Driver) Stop(ctx context.Context, id string) error {
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stopping %s: inspecting: %w", id, err)
	}
	if res.Container.Config == nil || res.Container.Config.Labels[driver.LabelManaged] != "true" {
		return nil
	}
	// No timeout in the request: the engine uses the container's StopTimeout.
	if _, err := d.cli.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	if _, err := d.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{RemoveVolumes: true, Force: true}); err != nil &&
		!isNotFound(err) && !isRemovalInProgress(err) {
		return fmt.Errorf("removing %s: %w", id, err)
	}
	if d.cap != nil {
		d.cap.forget(res.Container.ID)
	}
	return nil
}

// remove force-removes a container, also after ctx ended; errors are
// dropped (it is cleanup after another failure).
func (d *Driver) remove(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = d.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{RemoveVolumes: true, Force: true})
	if d.cap != nil {
		d.cap.forget(id)
	}
}

// List returns the containers the driver owns (running or not; with its
// WithLabels labels) whose labels include match, oldest first.
func (d *Driver) List(ctx context.Context, match map[string]string) ([]driver.Instance, error) {
	f := make(client.Filters).Add("label", driver.LabelManaged+"=true")
	for k, v := range d.opts.labels {
		f.Add("label", k+"="+v)
	}
	for k, v := range match {
		f.Add("label", k+"="+v)
	}
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := make([]driver.Instance, 0, len(res.Items))
	for _, s := range res.Items {
		// The summary has neither the exit code nor the start time.
		ir, err := d.cli.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if isNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("listing containers: inspecting %s: %w", s.ID, err)
		}
		inst := toInstance(ir.Container)
		if driver.Matches(inst.Labels, match) {
			out = append(out, inst)
		}
	}
	driver.SortInstances(out)
	return out, nil
}

// Logs copies the container's stdout and stderr, demultiplexed, to w. With
// follow it returns when the container stops or ctx ends (then with nil).
func (d *Driver) Logs(ctx context.Context, id string, w io.Writer, follow bool) error {
	if d.ownLog(ctx, id) {
		return d.readLog(ctx, id, follow, func(line string) {
			_, text := parseLogStamp(line)
			io.WriteString(w, text+"\n")
		})
	}
	rc, err := d.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow})
	if isNotFound(err) {
		return fmt.Errorf("logs of %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	return nil
}

// Wait blocks until the container is not running and returns its exit
// code. With a restart policy the engine may start it again afterwards.
func (d *Driver) Wait(ctx context.Context, id string) (int, error) {
	res := d.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("waiting for %s: %s", id, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-res.Error:
		if isNotFound(err) {
			return 0, fmt.Errorf("waiting for %s: %w", id, driver.ErrNotFound)
		}
		return 0, fmt.Errorf("waiting for %s: %w", id, err)
	}
}

// toInstance describes an inspected container.
func toInstance(c container.InspectResponse) driver.Instance {
	inst := driver.Instance{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), State: "exited"}
	var env []string
	if c.Config != nil {
		inst.Labels = c.Config.Labels
		env = c.Config.Env
	}
	if s := c.State; s != nil {
		if s.Running && !s.Restarting {
			inst.State = "running"
		}
		inst.ExitCode = s.ExitCode
		if t, err := time.Parse(time.RFC3339Nano, s.StartedAt); err == nil && t.Year() > 1 {
			inst.Started = t
		}
	}
	port := envValue(env, "PORT")
	if port == "" {
		return inst
	}
	if c.HostConfig != nil && c.HostConfig.NetworkMode.IsHost() {
		inst.Addr = net.JoinHostPort("127.0.0.1", port)
		return inst
	}
	if c.NetworkSettings == nil {
		return inst
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return inst
	}
	p, _ := network.PortFrom(uint16(n), network.TCP)
	for _, b := range c.NetworkSettings.Ports[p] {
		if b.HostPort == "" {
			continue
		}
		host := "127.0.0.1"
		if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
			host = b.HostIP.String()
		}
		inst.Addr = net.JoinHostPort(host, b.HostPort)
		break
	}
	return inst
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env)+2)
	for k, v := range env {
		out[k] = v
	}
	return out
}

// envList renders env as sorted KEY=VALUE entries for the create request.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// DataVolumeName is the volume that holds data key key: slipway-data-<key>,
// with characters Docker does not allow in volume names replaced and a short
// hash added to keep distinct keys apart.
func DataVolumeName(key string) string {
	if validName.MatchString(key) {
		return DataVolumePrefix + key
	}
	clean := invalidNameChars.ReplaceAllString(key, "-")
	sum := sha256.Sum256([]byte(key))
	return DataVolumePrefix + strings.Trim(clean, "-") + "-" + hex.EncodeToString(sum[:4])
}

var (
	validName        = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	invalidNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)
)

// containerName makes name acceptable to Docker ("" lets the engine pick).
func containerName(name string) string {
	if name == "" || validName.MatchString(name) {
		return name
	}
	return strings.Trim(invalidNameChars.ReplaceAllString(name, "-"), "-._")
}

// dataMounts creates (if needed) the data volume for key and returns its
// mount at DataMount, adding SLIPWAY_DATA_DIR to env; nothing for "".
func (d *Driver) dataMounts(ctx context.Context, key string, labels, env map[string]string) ([]mount.Mount, error) {
	if key == "" {
		return nil, nil
	}
	vol := DataVolumeName(key)
	vlabels := map[string]string{}
	for k, v := range d.opts.labels {
		vlabels[k] = v
	}
	vlabels[driver.LabelManaged] = "true"
	vlabels[LabelDataKey] = key
	// The volume outlives releases: only the labels that stay true across them.
	for _, k := range []string{driver.LabelProject, driver.LabelStore, driver.LabelApp} {
		if v := labels[k]; v != "" {
			vlabels[k] = v
		}
	}
	// Creating a volume that exists returns it unchanged.
	if _, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: vol, Labels: vlabels}); err != nil {
		return nil, fmt.Errorf("creating volume %s: %w", vol, err)
	}
	env["SLIPWAY_DATA_DIR"] = DataMount
	return []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: DataMount}}, nil
}

// reserveHostPort picks a TCP port free on ip on this host, for a container
// to bind; release forgets the reservation once the container had time to
// bind it, so that two quick Starts do not get the same port.
func (d *Driver) reserveHostPort(ip string) (int, func(), error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		d.portMu.Lock()
		taken := d.hostPorts[port]
		if !taken {
			d.hostPorts[port] = true
		}
		d.portMu.Unlock()
		if !taken {
			return port, func() {
				time.AfterFunc(10*time.Second, func() {
					d.portMu.Lock()
					delete(d.hostPorts, port)
					d.portMu.Unlock()
				})
			}, nil
		}
	}
	return 0, nil, errors.New("no free port found")
}

func isNotFound(err error) bool { return err != nil && cerrdefs.IsNotFound(err) }

// isRemovalInProgress: a concurrent remove of the same container is fine.
func isRemovalInProgress(err error) bool {
	return err != nil && strings.Contains(err.Error(), "already in progress")
}
