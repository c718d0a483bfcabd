// Package swarm runs releases as Docker Swarm services, through the same
// Engine API client as package docker (github.com/moby/moby/client), on a
// swarm manager.
//
// What it creates, and how it finds it again:
//
//   - one service per instance, replicated (WithReplicas, default 1),
//     named after Spec.Name (cut to Swarm's 63 characters with a hash when
//     longer; the full name is in LabelName) and labelled, service and
//     containers alike, with driver.LabelManaged="true" plus the spec's
//     labels. Its tasks publish the app port in host mode (the ingress
//     routing mesh is not used), restart on failure, stop with the spec's
//     grace period, and are placed by WithRegion (node.labels.region ==
//     <region>) and WithConstraints;
//   - one Swarm secret per service, holding the whole instance env (the
//     driver cannot tell secrets from the rest, so all of it is treated as
//     secret). Tasks mount it at /run/secrets/slipway-env and a /bin/sh
//     wrapper exports it before it execs the image's entrypoint: nothing of
//     the env is in the service spec, its labels or a command line, so
//     `docker service inspect` and `docker inspect` show no values. Images
//     therefore need /bin/sh (any Node.js base has it);
//   - one volume per data key, "slipway-data-<key>", with the volume driver
//     and options of WithVolumeDriver, mounted at /data. Swarm creates it
//     on each node that runs a task: with the default "local" driver each
//     node has its own /data; with a shared driver (the local driver with
//     NFS options, or a plugin) every task on every node sees the same one.
//
// Hooks and one-off commands (Run) are replicated-job services (API 1.41,
// engine 20.10) that run once, never restart, and report their exit code in
// the task status; their output comes from the service logs.
//
// Cutover is the router's, as on one host: Slipway starts the new release's
// services, gates their tasks through the published ports, swaps, drains
// and then Stops (removes) the old services. Swarm's own rolling update is
// never used, and no service outlives its release.
//
// Images are pulled by each node's engine by digest from a registry the
// nodes can reach, with the keychain's credentials passed to the service
// (like `docker service create --with-registry-auth`). The embedded store
// ("oci-layout:…" refs) is not reachable from nodes: deploy with a registry.
package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/docker"
)

// Labels the driver adds to what it creates.
const (
	// LabelName holds Spec.Name (Swarm names are at most 63 characters).
	LabelName = "dev.slipway.name"
	// LabelPort holds the app port inside the task (what PORT says).
	LabelPort = "dev.slipway.port"
	// LabelDataKey is put on data volumes: the DataKey they hold.
	LabelDataKey = docker.LabelDataKey
)

// DataMount is where the data volume is mounted in tasks.
const DataMount = docker.DataMount

// EnvSecretTarget is the file name, under /run/secrets, of the env secret.
const EnvSecretTarget = "slipway-env"

// Driver runs instances as Swarm services through one manager's engine.
type Driver struct {
	cli  *client.Client
	dd   *docker.Driver
	host string
	o    options

	nodeMu    sync.Mutex
	nodeAddrs map[string]string // node id -> address
	selfNode  string            // the engine's own node id, once known

	portMu    sync.Mutex
	hostPorts map[int]bool

	imgMu   sync.Mutex
	imgCmds map[string]imageCmd // digest -> entrypoint/cmd
}

var _ driver.Driver = (*Driver)(nil)

// Option configures New.
type Option func(*options)

type options struct {
	host         string
	hasHost      bool
	sshFlags     []string
	apiVersion   string
	keychain     authn.Keychain
	region       string
	constraints  []string
	replicas     uint64
	labels       map[string]string
	volDriver    string
	volOpts      map[string]string
	cpus         float64
	memory       int64
	addrHost     string
	pinPorts     *bool
	restartDelay time.Duration
}

// WithHost sets the manager's engine address (unix://, tcp://, ssh://…);
// the default is DOCKER_HOST, else the local socket (as in package docker).
func WithHost(host string) Option { return func(o *options) { o.host, o.hasHost = host, true } }

// WithSSHFlags adds flags to the ssh command for ssh:// hosts.
func WithSSHFlags(flags ...string) Option {
	return func(o *options) { o.sshFlags = append(o.sshFlags, flags...) }
}

// WithAPIVersion pins the Engine API version (default: negotiated; jobs
// need 1.41, engine 20.10).
func WithAPIVersion(v string) Option { return func(o *options) { o.apiVersion = v } }

// WithKeychain sets where registry credentials come from; they are passed
// to the service so that every node can pull. Default authn.DefaultKeychain.
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithRegion places tasks on nodes labelled region=<region> (set with
// `docker node update --label-add region=<region> NODE`). Default: any node.
func WithRegion(region string) Option { return func(o *options) { o.region = region } }

// WithConstraints adds placement constraints, e.g. "node.role==worker".
func WithConstraints(c ...string) Option {
	return func(o *options) { o.constraints = append(o.constraints, c...) }
}

// WithReplicas sets the tasks per instance service; default 1. More than
// one needs as many nodes (each task binds the same host port) unless the
// engine picks ports (WithPinnedPorts(false)).
func WithReplicas(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.replicas = uint64(n)
		}
	}
}

// WithLabels adds labels to everything the driver creates and makes List see
// only services that have them. Default none.
func WithLabels(labels map[string]string) Option {
	return func(o *options) {
		if o.labels == nil {
			o.labels = map[string]string{}
		}
		for k, v := range labels {
			o.labels[k] = v
		}
	}
}

// WithVolumeDriver sets the volume driver and its options for data volumes,
// e.g. "local" with {"type": "nfs", "o": "addr=10.0.0.5,rw", "device":
// ":/export/slipway"} for one /data shared by every node. Default: the local
// driver without options, a separate /data on each node.
func WithVolumeDriver(name string, opts map[string]string) Option {
	return func(o *options) { o.volDriver, o.volOpts = name, opts }
}

// WithResources limits each task's CPUs (e.g. 0.5) and memory in bytes;
// zero means no limit (the default).
func WithResources(cpus float64, memory int64) Option {
	return func(o *options) { o.cpus, o.memory = cpus, memory }
}

// WithAddrHost makes instance addresses use this host instead of the node's
// advertised address (e.g. when the router reaches nodes on another network).
func WithAddrHost(host string) Option { return func(o *options) { o.addrHost = host } }

// WithPinnedPorts says whether the driver picks each service's published
// port (true: it stays the same when Swarm replaces a crashed task, so the
// router's address stays valid) or Swarm picks one per task (false). The
// default is true for a local engine, false for a remote one, where the
// driver cannot see which ports are free.
func WithPinnedPorts(pin bool) Option { return func(o *options) { o.pinPorts = &pin } }

// New connects to a swarm manager's engine and checks that it is one.
func New(ctx context.Context, opts ...Option) (*Driver, error) {
	o := options{keychain: authn.DefaultKeychain, replicas: 1, restartDelay: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	dopts := []docker.Option{docker.WithSSHFlags(o.sshFlags...), docker.WithKeychain(o.keychain)}
	if o.hasHost {
		dopts = append(dopts, docker.WithHost(o.host))
	}
	if o.apiVersion != "" {
		dopts = append(dopts, docker.WithAPIVersion(o.apiVersion))
	}
	for _, c := range o.constraints {
		if !constraintRe.MatchString(c) {
			return nil, fmt.Errorf("swarm driver: placement constraint %q: want KEY==VALUE or KEY!=VALUE", c)
		}
	}
	dd, err := docker.New(ctx, dopts...)
	if err != nil {
		return nil, fmt.Errorf("swarm driver: %w", err)
	}
	d := &Driver{cli: dd.Client(), dd: dd, host: dd.Host(), o: o, nodeAddrs: map[string]string{},
		hostPorts: map[int]bool{}, imgCmds: map[string]imageCmd{}}
	info, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		dd.Close()
		return nil, fmt.Errorf("swarm driver: engine info: %w", err)
	}
	if sw := info.Info.Swarm; sw.LocalNodeState != swarm.LocalNodeStateActive || !sw.ControlAvailable {
		dd.Close()
		return nil, fmt.Errorf("swarm driver: the engine at %s is not a swarm manager (swarm state %q): run `docker swarm init` there, or point at a manager",
			dd.Host(), sw.LocalNodeState)
	}
	return d, nil
}

var constraintRe = regexp.MustCompile(`^\s*[A-Za-z0-9_.\-]+\s*(==|!=)\s*\S.*$`)

// Close releases the client's connections.
func (d *Driver) Close() error { return d.dd.Close() }

// Client returns the Engine API client.
func (d *Driver) Client() *client.Client { return d.cli }

// Capabilities: tasks run in containers, possibly on other nodes; Swarm
// restarts crashed tasks itself. No Pruner: images live on each node, which
// the manager cannot prune (run `docker image prune` on the nodes).
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Name: "swarm", Isolation: "container", Remote: true, Restart: true}
}

// Region returns the region the driver places tasks in ("" for any node).
func (d *Driver) Region() string { return d.o.region }

// serviceName makes a Swarm service name (at most 63 characters of
// [a-zA-Z0-9-]) from a spec name, keeping distinct names apart with a hash.
func serviceName(name string) string {
	clean := strings.Trim(invalidChars.ReplaceAllString(name, "-"), "-")
	if clean == name && len(clean) <= 63 && clean != "" {
		return clean
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:4])
	if len(clean) > 63-9 {
		clean = strings.Trim(clean[:63-9], "-")
	}
	if clean == "" {
		clean = "slipway"
	}
	return clean + "-" + h
}

var invalidChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// placement is the service's placement: region, then the extra constraints.
func (d *Driver) placement() *swarm.Placement {
	var c []string
	if d.o.region != "" {
		c = append(c, "node.labels.region=="+d.o.region)
	}
	c = append(c, d.o.constraints...)
	if len(c) == 0 {
		return nil
	}
	return &swarm.Placement{Constraints: c}
}

// resources are the configured task limits, nil without any.
func (d *Driver) resources() *swarm.ResourceRequirements {
	if d.o.cpus <= 0 && d.o.memory <= 0 {
		return nil
	}
	return &swarm.ResourceRequirements{Limits: &swarm.Limit{NanoCPUs: int64(d.o.cpus * 1e9), MemoryBytes: d.o.memory}}
}

// nodeAddr is the address tasks on node id are reached at.
func (d *Driver) nodeAddr(ctx context.Context, id string) (string, error) {
	if d.o.addrHost != "" {
		return d.o.addrHost, nil
	}
	d.nodeMu.Lock()
	a, ok := d.nodeAddrs[id]
	d.nodeMu.Unlock()
	if ok {
		return a, nil
	}
	res, err := d.cli.NodeInspect(ctx, id, client.NodeInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspecting node %s: %w", id, err)
	}
	a = res.Node.Status.Addr
	if ip := net.ParseIP(a); a == "" || ip != nil && ip.IsUnspecified() {
		a = "127.0.0.1"
	}
	d.nodeMu.Lock()
	d.nodeAddrs[id] = a
	d.nodeMu.Unlock()
	return a, nil
}

// pinPorts reports whether the driver picks published ports (WithPinnedPorts).
func (d *Driver) pinPorts() bool {
	if d.o.pinPorts != nil {
		return *d.o.pinPorts
	}
	return !docker.IsRemoteHost(d.host)
}

// reservePort picks a TCP port free on this host for a service to publish;
// the returned func forgets the reservation once Swarm had time to bind it.
func (d *Driver) reservePort() (int, func(), error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return 0, nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		d.portMu.Lock()
		taken := d.hostPorts[port]
		d.hostPorts[port] = true
		d.portMu.Unlock()
		if !taken {
			return port, func() {
				time.AfterFunc(30*time.Second, func() {
					d.portMu.Lock()
					delete(d.hostPorts, port)
					d.portMu.Unlock()
				})
			}, nil
		}
	}
	return 0, nil, fmt.Errorf("no free port found")
}
