package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/handoff"
	"github.com/slipway-dev/slipway/internal/server"
)

type serveOptions struct {
	minFree  string
	http     string
	driver   string
	registry string
	api      server.Options
	push     pushOptions
	edge     edgeFlags
	tls      tlsFlags
}

func newServeCmd(g *globals) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the router, the runtime and the local API that deploys talk to",
		Long: `serve is the long-running process on a host: the HTTP router (host names to
the stores' live instances), the runtime driver (process: the image's files run
as host processes, no containers needed; docker: a Docker engine), the release
state, and a local API on <state-dir>/slipway.sock that slipway deploy, rollback,
releases and status use. It also serves the embedded image store read-only at
/v2/ on the API socket.

When serve stops, the instances keep running; when it starts again it serves the
last routes at once, marks deploys that were cut short as interrupted, and stops
instances that no route points at.`,
		Example: `  slipway serve
  slipway serve --http 0.0.0.0:80 --driver docker
  SLIPWAY_STATE_DIR=/var/lib/slipway slipway serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dataDir := g.data
			cfg, err := serveConfig(g, &o.push)
			if err != nil {
				return err
			}
			if dataDir == "" {
				if cfg == nil {
					return fmt.Errorf("%w (or pass --state-dir)", config.ErrNotFound)
				}
				dataDir = g.dataDir(cfg)
			}
			edge, err := o.edge.options()
			tlsOpts, err := o.tls.options()
			if err != nil {
				return err
			}
			if err != nil {
				return err
			}
			so := o.api
			so.Edge = edge
			so.DataDir, so.HTTPAddr, so.Driver, so.RegistryAddr, so.Log = dataDir, o.http, o.driver, o.registry, g.stderr
			applyTargets(g, cfg, &so)
			so.TLS = tlsOpts
			if so.MinFreeBytes, err = parseSize(o.minFree); err != nil {
				return usagef("--min-free-space: %v", err)
			}
			// Sockets from systemd (LISTEN_FDS) or from the serve this one replaces.
			if so.Listeners, err = handoff.FromEnv(); err != nil {
				fmt.Fprintf(g.stderr, "slipway serve: %v\n", err)
			}
			so.ConfigDir, so.ConfigFile = g.dir, g.config
			srv, err := server.New(cmd.Context(), so)
			if err != nil {
				return err
			}
			if err := srv.Listen(); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "slipway serve: router on http://%s, api on %s\n", srv.HTTPAddr(), server.SocketPath(dataDir))
			if a := srv.HTTPSAddr(); a != "" {
				fmt.Fprintf(g.stderr, "slipway serve: router on https://%s (certificates: slipway certs)\n", a)
			}
			if u := srv.APIURL(); u != "" {
				fmt.Fprintf(g.stderr, "slipway serve: remote api on %s (bearer tokens: slipway token create)\n", u)
			}
			if a := srv.RegistryAddr(); a != "" {
				fmt.Fprintf(g.stderr, "slipway serve: image store at http://%s/v2/ (read-only; docker login with a read token: slipway token create --scope read)\n", a)
			}
			serveCtx, stopPush, err := startPush(cmd.Context(), g, &o.push, srv, dataDir, cfg)
			if err != nil {
				return err
			}
			defer stopPush()
			return srv.Serve(serveCtx)
		},
	}
	cmd.Flags().StringVar(&o.http, "http", "127.0.0.1:8080", "address the router listens on")
	cmd.Flags().StringVar(&o.driver, "driver", "process", "runtime: process, docker or swarm (on a swarm manager: DOCKER_HOST)")
	cmd.Flags().StringVar(&o.api.APIAddr, "api", "", "also serve the API to token holders on this TCP address (e.g. 0.0.0.0:7443; plain HTTP only on loopback)")
	cmd.Flags().StringVar(&o.api.APICert, "api-cert", "", "TLS certificate (PEM) for --api")
	cmd.Flags().StringVar(&o.api.APIKey, "api-key", "", "TLS private key (PEM) for --api")
	cmd.Flags().BoolVar(&o.api.APIInsecure, "api-insecure", false, "allow plain HTTP for --api on a non-loopback address (behind a TLS-terminating proxy)")
	o.push.bind(cmd.Flags())
	o.tls.register(cmd.Flags())
	cmd.Flags().IntVar(&o.api.Limits.MaxInstances, "max-instances", api.DefaultMaxInstances, "most instances a deploy may ask for per app")
	cmd.Flags().BoolVar(&o.api.Limits.AllowWildcardHosts, "allow-wildcard-hosts", false, "accept wildcard hosts (*.example.com) the config does not list")
	cmd.Flags().StringArrayVar(&o.api.Limits.Registries, "allow-registry", nil, "registry (host[:port][/prefix]) deploys may pull images from, besides the embedded store and the config's registry (repeatable)")
	cmd.Flags().StringVar(&o.minFree, "min-free-space", "512MiB", "refuse to start a deploy job when the state dir's disk has less free space (e.g. 2GiB; off)")
	cmd.Flags().StringVar(&o.registry, "registry-listen", "", "also serve the embedded image store read-only at /v2/ on this address (e.g. 127.0.0.1:5050) for docker pull")
	o.edge.register(cmd)
	return cmd
}
