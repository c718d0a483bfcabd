package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/server"
)

type upOptions struct {
	http   string
	driver string
	jobs   int
	// The same HTTPS/ACME, hardening and edge flags as serve.
	tls  tlsFlags
	edge edgeFlags
}

func newUpCmd(g *globals) *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Serve in the foreground and deploy every deployable store: the whole job in one command",
		Long: `up runs slipway serve in the foreground, then composes, builds and deploys every
deployable store on it, and prints one URL per store. It needs no Docker and no
registry: images go to the embedded store and run on the process runtime
(unless --driver docker). Ctrl-C stops the server and every instance it started.

Each store answers on http://<store>.localhost:<port>/ (and its domains) through
the router, and on its own http://127.0.0.1:<port>/ for clients that do not
resolve *.localhost. Uncommitted changes are deployed as they are (images are
tagged <sha>-dirty-<hash>).`,
		Example: `  slipway up -C examples/multistore
  slipway up --http 127.0.0.1:9000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			if o.tls.apiDomain != "" {
				return usagef("--api-domain is for serve --api; up serves no remote API")
			}
			tlsOpts, err := o.tls.options()
			if err != nil {
				return err
			}
			edgeOpts, err := o.edge.options()
			if err != nil {
				return err
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ids, err := selectStores(cfg, nil, true)
			if err != nil {
				return err
			}
			dataDir := g.dataDir(cfg)
			log := newLiveOutput(g.stderr)
			defer log.Close()
			srv, err := server.New(ctx, server.Options{DataDir: dataDir, HTTPAddr: o.http, Driver: o.driver, StopOnExit: true, Log: log, Quiet: true, ConfigDir: g.dir, ConfigFile: g.config,
				TLS: tlsOpts, Edge: edgeOpts})
			if err != nil {
				return err
			}
			if err := srv.Listen(); err != nil {
				return err
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ctx) }()
			serveEnded := false
			// On any failure below, stop the server and every instance it started before returning.
			defer func() {
				if err != nil && !serveEnded {
					cancel()
					<-served
				}
			}()
			extra := map[string]string{}
			for _, id := range ids {
				addr, err := srv.ServeHostPort("127.0.0.1:0", proxy.LocalHost(id))
				if err != nil {
					return err
				}
				extra[id] = "http://" + addr + "/"
			}
			client := server.NewClient(dataDir)
			store, where, err := (&registryOptions{}).store(g, cfg, os.Stdin, log.Progress)
			if err != nil {
				return err
			}
			fmt.Fprintf(log, "building %d store(s) into the %s\n", len(ids), where)
			res, err := pipeline.Build(ctx, pipeline.BuildOptions{Config: cfg, Stores: ids, Store: store, Jobs: o.jobs, Verbose: g.verbose, AllowDirty: true, AllowNoGit: true, Log: log})
			if err != nil {
				return err
			}
			failed := buildFailures(res)
			if res.Failed() {
				printBuildSummary(g.stderr, res)
			}
			jr := api.JobRequest{Kind: api.KindBuildDeploy, Stores: ids, Commit: res.Revision.Commit, Secrets: callerSecrets(cfg, ids), Hooks: callerHooks()}
			jr.Stores = slices.DeleteFunc(jr.Stores, func(id string) bool {
				return slices.ContainsFunc(failed, func(f outcome) bool { return f.store == id })
			})
			for _, im := range res.Images {
				if slices.Contains(jr.Stores, im.Store) {
					jr.Images = append(jr.Images, api.ImageRef{Store: im.Store, App: im.App, Ref: im.Ref, Digest: im.Digest})
				}
			}
			if err := runJob(ctx, g, client, cfg, jr, log, failed, srv.HTTPAddr(), extra); err != nil {
				return err
			}
			if a := srv.HTTPSAddr(); a != "" {
				fmt.Fprintf(g.stdout, "serving TLS domains on https://%s (certificates: slipway certs)\n", a)
			}
			fmt.Fprintf(g.stdout, "serving on http://%s — press Ctrl-C to stop\n", srv.HTTPAddr())
			select {
			case err := <-served:
				serveEnded = true
				return err
			case <-ctx.Done():
			}
			// Serve shuts down on ctx; wait for it (it stops the instances).
			select {
			case err := <-served:
				serveEnded = true
				return err
			case <-time.After(60 * time.Second):
				serveEnded = true // do not wait again in the deferred clean-up
				return fmt.Errorf("shutdown took too long")
			}
		},
	}
	cmd.Flags().StringVar(&o.http, "http", "127.0.0.1:8080", "address the router listens on")
	cmd.Flags().StringVar(&o.driver, "driver", "process", "runtime: process or docker")
	cmd.Flags().IntVar(&o.jobs, "jobs", 0, "builds run at once (default: number of cores)")
	o.tls.register(cmd.Flags())
	o.edge.register(cmd)
	cmd.Flags().MarkHidden("api-domain")
	return cmd
}
