// Package docker runs releases as containers on a Docker engine, through the
// official Engine API client (github.com/moby/moby/client).
//
// What it creates, and how it finds it again:
//
//   - one container per instance (and per hook run), named Spec.Name and
//     labelled with driver.LabelManaged="true" plus the spec's labels;
//   - one named volume per data key, "slipway-data-<key>", labelled the same
//     way and mounted at /data; Stop never removes it;
//   - every image it pulls or loads is also tagged OwnedRepo:sha256-<hex of
//     the manifest digest> ("slipway.local/images:sha256-…", or under the
//     repository given with WithImageRepo). The tag marks the image as
//     fetched by this driver (Prune only ever removes such images), lets
//     Start find an image it already has whatever registry it came from,
//     and names images loaded from an OCI layout, which have no registry
//     reference at all. The tag is local: nothing pushes it.
//
// Images come by digest: "host:port/repo@sha256:…" is pulled by the engine
// from that registry (with credentials from the keychain, see WithKeychain);
// "oci-layout:DIR@sha256:…" is read here with go-containerregistry, written
// as a `docker save` tarball and streamed into ImageLoad, so the engine never
// needs to reach the embedded store. A registry the engine does not trust
// over plain HTTP (Image.Insecure to a non-loopback host the daemon does not
// list in insecure-registries) is fetched the same client-side way.
//
// Instances get PORT and, when they have a data key, SLIPWAY_DATA_DIR=/data
// in their environment; env is sent in the create request's body, never on a
// command line. With bridge networking the port is published on 127.0.0.1
// (WithPublishIP) on a host port, and Addr is that host port: one the
// driver picked (a local engine; it survives engine-driven restarts, see
// WithPinnedPorts) or the engine's ephemeral one (a remote engine); with
// host networking (WithNetworkMode("host"), or automatically when the
// engine has no "bridge" network) the driver picks a free port on this
// machine and passes it as PORT, and Addr is 127.0.0.1:PORT.
//
// A new data volume is a root-owned directory (or a copy of the image's
// /data, if it has one): an app that runs as another user needs its image to
// ship /data owned by that user.
package docker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/docker/cli/cli/connhelper"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
)

// DefaultHost is the engine address used when neither WithHost nor
// DOCKER_HOST gives one.
const DefaultHost = "unix:///var/run/docker.sock"

// Network modes for WithNetworkMode.
const (
	NetworkAuto   = ""
	NetworkBridge = "bridge"
	NetworkHost   = "host"
)

// DefaultRestartPolicy is the engine restart policy of instances.
const DefaultRestartPolicy = "unless-stopped"

// DataMount is where an instance's persistent volume is mounted.
const DataMount = "/data"

// DataVolumePrefix starts the name of every data volume: slipway-data-<key>.
const DataVolumePrefix = "slipway-data-"

// LabelDataKey is put on data volumes: the DataKey they hold.
const LabelDataKey = "dev.slipway.datakey"

// OwnedRepo is the local repository under which the driver tags every image
// it fetched, as OwnedRepo:sha256-<hex>.
const OwnedRepo = "slipway.local/images"

// Driver runs instances as containers on one Docker engine.
type Driver struct {
	cli  *client.Client
	host string
	opts options

	// netMode is the resolved network mode (bridge or host).
	netMu   sync.Mutex
	netMode string

	// fetching serialises fetches of the same digest.
	fetchMu  sync.Mutex
	fetching map[string]*sync.Mutex

	// fetchHere makes every registry image be fetched by this process
	// and loaded, as for an untrusted insecure registry (tests).
	fetchHere bool

	// hostPorts remembers host ports handed out that may not be bound
	// yet, so two quick Starts do not get the same one.
	portMu    sync.Mutex
	hostPorts map[int]bool

	// cap keeps web containers' output (WithLogDir); nil leaves it to the engine.
	cap *captures
}

var (
	_ driver.Driver = (*Driver)(nil)
	_ driver.Pruner = (*Driver)(nil)
	_ driver.Waiter = (*Driver)(nil)
)

// Option configures New.
type Option func(*options)

type options struct {
	host          string
	netMode       string
	restart       string
	publishIP     string
	keychain      authn.Keychain
	apiVersion    string
	sshFlags      []string
	hasHost       bool
	pinPorts      *bool
	imageRepo     string
	labels        map[string]string
	hasPublish    bool
	clientOptions []client.Opt
	logDir        string
}

// WithHost sets the engine address: unix://, tcp://, ssh://user@host[:port]
// (through `ssh … docker system dial-stdio`, like the docker CLI), or
// npipe://. The default is DOCKER_HOST, else DefaultHost. TLS settings come
// from DOCKER_CERT_PATH and DOCKER_TLS_VERIFY as for the docker CLI.
func WithHost(host string) Option {
	return func(o *options) { o.host, o.hasHost = host, true }
}

// WithNetworkMode sets how instances are reached: NetworkBridge publishes
// the app port on the publish IP with an ephemeral host port; NetworkHost
// shares the host's network, with a port the driver picks. The default,
// NetworkAuto, uses bridge when the engine has a "bridge" network, else host.
func WithNetworkMode(mode string) Option {
	return func(o *options) { o.netMode = mode }
}

// WithRestartPolicy sets the engine restart policy of instances ("no",
// "always", "on-failure", "unless-stopped"). The default is
// DefaultRestartPolicy, "unless-stopped".
func WithRestartPolicy(policy string) Option {
	return func(o *options) { o.restart = policy }
}

// WithPublishIP sets the host address bridge-networked instances' ports are
// published on. The default is 127.0.0.1: only this host (the router) can
// reach them. For a remote engine the instance is on the engine's loopback;
// publish on an address the router can reach instead.
func WithPublishIP(ip string) Option {
	return func(o *options) { o.publishIP, o.hasPublish = ip, true }
}

// WithPinnedPorts says whether bridge-networked instances are published on
// a host port the driver picks (true) or one the engine picks (false). The
// engine's ephemeral port changes when it restarts a crashed container; a
// picked one stays, so the instance's Addr stays valid. The default is
// true for a local engine; for a remote one the driver cannot tell which
// ports are free there, so the engine picks and Addr may change after a
// restart (List has the current one).
func WithPinnedPorts(pin bool) Option {
	return func(o *options) { o.pinPorts = &pin }
}

// WithImageRepo sets the local repository under which the driver tags the
// images it fetches, and so the images its Prune considers its own. The
// default is OwnedRepo. Installations (or tests) sharing one engine use
// their own so that one's Prune never removes the other's images.
func WithImageRepo(repo string) Option {
	return func(o *options) { o.imageRepo = repo }
}

// WithLabels adds labels to every container and volume the driver creates,
// and makes List see only containers that have them. The default is none.
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

// WithKeychain sets where registry credentials for pulls come from; they
// are sent to the engine with each pull. The default is
// authn.DefaultKeychain (the docker config file and its credential helpers).
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) { o.keychain = k }
}

// WithAPIVersion pins the Engine API version instead of negotiating it on
// the first request (the default; Debian 12's engine 20.10 speaks 1.41).
func WithAPIVersion(v string) Option {
	return func(o *options) { o.apiVersion = v }
}

// WithSSHFlags adds flags to the ssh command used for ssh:// hosts, e.g.
// "-i", "/path/key". The default is none (ssh's own config applies).
func WithSSHFlags(flags ...string) Option {
	return func(o *options) { o.sshFlags = append(o.sshFlags, flags...) }
}

// WithClientOptions passes extra options to client.New, after the driver's.
func WithClientOptions(opts ...client.Opt) Option {
	return func(o *options) { o.clientOptions = append(o.clientOptions, opts...) }
}

// New connects to a Docker engine and checks that it answers.
func New(ctx context.Context, opts ...Option) (*Driver, error) {
	o := options{restart: DefaultRestartPolicy, publishIP: "127.0.0.1", keychain: authn.DefaultKeychain, imageRepo: OwnedRepo}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.hasHost {
		o.host = os.Getenv("DOCKER_HOST")
	}
	if o.host == "" {
		o.host = DefaultHost
	}
	switch o.netMode {
	case NetworkAuto, NetworkBridge, NetworkHost:
	default:
		return nil, fmt.Errorf("docker driver: network mode %q: want %q or %q", o.netMode, NetworkBridge, NetworkHost)
	}
	if _, err := name.NewRepository(o.imageRepo); err != nil || strings.ContainsAny(o.imageRepo, ":@") {
		return nil, fmt.Errorf("docker driver: image repository %q: want a repository name without tag", o.imageRepo)
	}
	if net.ParseIP(o.publishIP) == nil {
		return nil, fmt.Errorf("docker driver: publish IP %q is not an IP address", o.publishIP)
	}

	copts := []client.Opt{client.WithTLSClientConfigFromEnv()}
	helper, err := connhelper.GetConnectionHelperWithSSHOpts(o.host, o.sshFlags)
	if err != nil {
		return nil, fmt.Errorf("docker driver: connecting to %s: %w", redactHost(o.host), err)
	}
	if helper != nil {
		// As the docker CLI does: HTTP over the ssh command's stdio, to a
		// dummy host name.
		copts = append(copts,
			client.WithHTTPClient(&http.Client{Transport: &http.Transport{DialContext: helper.Dialer}}),
			client.WithHost(helper.Host),
			client.WithDialContext(helper.Dialer),
		)
	} else {
		copts = append(copts, client.WithHost(o.host))
	}
	if o.apiVersion != "" {
		copts = append(copts, client.WithAPIVersion(o.apiVersion))
	}
	copts = append(copts, o.clientOptions...)
	cli, err := client.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("docker driver: client for %s: %w", redactHost(o.host), err)
	}
	d := &Driver{cli: cli, host: o.host, opts: o, fetching: map[string]*sync.Mutex{}, hostPorts: map[int]bool{}}
	// The first request negotiates the API version.
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker driver: pinging engine at %s: %w", redactHost(o.host), err)
	}
	if o.logDir != "" {
		if d.cap, err = newCaptures(o.logDir); err != nil {
			cli.Close()
			return nil, err
		}
		d.resumeCaptures(ctx)
	}
	return d, nil
}

// Close ends the driver's attachments to containers (they keep running) and
// releases the client's connections.
func (d *Driver) Close() error {
	if d.cap != nil {
		d.cap.close()
	}
	return d.cli.Close()
}

// Client returns the Engine API client, for callers (and tests) that need
// what the driver does not offer.
func (d *Driver) Client() *client.Client { return d.cli }

// Capabilities describes the driver; Restart follows the restart policy.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Name:      "docker",
		Isolation: "container",
		Remote:    IsRemoteHost(d.host),
		Prune:     true,
		Wait:      true,
		Restart:   d.opts.restart != "" && d.opts.restart != "no",
	}
}

// NetworkMode returns the network mode in use (bridge or host), detecting
// it on first use when it was left to NetworkAuto.
func (d *Driver) NetworkMode(ctx context.Context) (string, error) {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	if d.netMode != "" {
		return d.netMode, nil
	}
	if d.opts.netMode != NetworkAuto {
		d.netMode = d.opts.netMode
		return d.netMode, nil
	}
	_, err := d.cli.NetworkInspect(ctx, "bridge", client.NetworkInspectOptions{})
	switch {
	case err == nil:
		d.netMode = NetworkBridge
	case isNotFound(err):
		// dockerd --bridge=none: containers can only share the host's network.
		d.netMode = NetworkHost
	default:
		// Not remembered: a later call tries again.
		return "", fmt.Errorf("detecting network mode: %w", err)
	}
	return d.netMode, nil
}

// IsRemoteHost reports whether an engine address is on another host: local
// sockets and loopback TCP addresses are local, everything else (ssh://,
// other TCP hosts) is remote.
func IsRemoteHost(host string) bool {
	u, err := url.Parse(host)
	if err != nil {
		return true
	}
	switch u.Scheme {
	case "unix", "npipe", "fd":
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}

// redactHost drops a password from an engine URL before it goes into an error.
func redactHost(host string) string {
	u, err := url.Parse(host)
	if err != nil || u.User == nil {
		return host
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
