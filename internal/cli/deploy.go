package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
)

type deployOptions struct {
	storeIDs    []string
	all         bool
	wait        bool
	allowDirty  bool
	destructive bool
	confirm     string
	deployOnly  bool
	jobs        int
	reg         registryOptions
	commit      string
	detach      bool
	fleet       fleetOptions
}

func newDeployCmd(g *globals) *cobra.Command {
	o := &deployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Build, publish and deploy stores with a zero-downtime cutover",
		Long: `deploy builds and publishes the selected stores (see slipway build), then asks
the running slipway serve to deploy each one: pre-deploy hook (in the running
release), install hook (in the new image), new instances started and health
gated, one atomic router swap, old instances drained and stopped, post-deploy
hook (in the new release), verify.

If anything fails before the swap, no traffic moves and the old release keeps
serving. --deploy-only skips compose, build and push and redeploys the live
images with the current config and env (a config change).`,
		Example: `  slipway deploy --all
  slipway deploy --store-id us --wait
  slipway deploy --store-id us --deploy-only
  slipway deploy --store-id us --destructive --confirm us
  slipway deploy --all --canary us --wave 10 --max-failures 2 --rollback-wave
  slipway deploy --all --canary us --wave 10 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.commit != "" && o.fleet.active() {
				return usagef("--canary, --wave, --max-failures, --rollback-wave and --dry-run are not available with --commit yet")
			}
			if o.commit != "" {
				return deployCommit(cmd.Context(), g, o)
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ids, err := selectStores(cfg, o.storeIDs, o.all)
			if err != nil {
				return err
			}
			if err := checkDestructive(cfg, ids, o.destructive, o.confirm); err != nil {
				return err
			}
			if o.fleet.active() {
				if err := o.fleet.check(ids); err != nil {
					return err
				}
				if o.fleet.dryRun {
					return dryRunFleet(cmd.Context(), g, cfg, ids, o.fleet)
				}
			}
			client := server.NewClient(g.dataDir(cfg))
			if err := client.Ping(cmd.Context()); err != nil {
				return err
			}
			log := newLiveOutput(g.stderr)
			defer log.Close()
			kind := state.KindBuildDeploy
			var images []pipeline.BuiltImage
			commits := map[string]string{}
			if o.deployOnly {
				kind = state.KindDeployOnly
				images, commits, err = liveImages(cmd.Context(), client, filepath.Join(g.dataDir(cfg), "images"), ids)
				if err != nil {
					return err
				}
			} else {
				store, where, err := o.reg.store(g, cfg, cmd.InOrStdin(), log.Progress)
				if err != nil {
					return err
				}
				fmt.Fprintf(log, "building %d store(s) into the %s\n", len(ids), where)
				res, err := pipeline.Build(cmd.Context(), pipeline.BuildOptions{Config: cfg, Stores: ids, Store: store, Jobs: o.jobs, Verbose: g.verbose, AllowDirty: o.allowDirty, Log: log})
				if err != nil {
					return err
				}
				if res.Failed() {
					printBuildSummary(g.stdout, res)
					return &silentError{ExitFailed}
				}
				images = res.Images
				for _, id := range ids {
					commits[id] = res.Revision.Commit
				}
			}
			var reqs []pipeline.DeployRequest
			for _, id := range ids {
				r, err := buildRequests(cmd.Context(), client, g.stderr, cfg, []string{id}, images, pipeline.RequestOptions{Commit: commits[id], Kind: kind, Destructive: o.destructive, Wait: o.wait})
				if err != nil {
					return err
				}
				reqs = append(reqs, r...)
			}
			if o.fleet.active() {
				return runFleet(cmd.Context(), g, cfg, client, reqs, o.fleet, log)
			}
			return runDeploys(cmd.Context(), g, client, reqs, log, "")
		},
	}
	f := cmd.Flags()
	o.fleet.bind(f)
	f.StringArrayVar(&o.storeIDs, "store-id", nil, "store to deploy (repeatable)")
	f.BoolVar(&o.all, "all", false, "deploy every deployable store")
	f.BoolVar(&o.wait, "wait", false, "wait for a store's deploy lock instead of failing at once")
	f.BoolVar(&o.allowDirty, "allow-dirty", false, "deploy a working tree with uncommitted changes")
	f.BoolVar(&o.destructive, "destructive", false, "run the destructive pipeline: empty the store's /data, then the destructive install hook")
	f.StringVar(&o.confirm, "confirm", "", "the store id, to confirm a destructive deploy of a protected store")
	f.BoolVar(&o.deployOnly, "deploy-only", false, "redeploy the live images with the current config and env: no compose, build or push")
	f.IntVar(&o.jobs, "jobs", 0, "builds run at once (default: number of cores)")
	f.StringVar(&o.commit, "commit", "", "ask serve to build and deploy this commit (SHA or branch) of its repository; with no --store-id, the stores that changed since their live commit")
	f.BoolVar(&o.detach, "detach", false, "with --commit: print the queued jobs and return without following them")
	o.reg.bind(cmd)
	return cmd
}

// checkDestructive refuses a destructive deploy of a protected store unless its id is confirmed.
func checkDestructive(cfg *config.Config, ids []string, destructive bool, confirm string) error {
	if !destructive {
		if confirm != "" {
			return usagef("--confirm only goes with --destructive")
		}
		return nil
	}
	for _, id := range ids {
		if cfg.Store(id).Protected && confirm != id {
			return usagef("store %s is protected: a destructive deploy empties its data; add --confirm %s to go ahead", id, id)
		}
	}
	return nil
}

// liveImages returns the images and commit of each store's live release, for a deploy-only job.
func liveImages(ctx context.Context, c *server.Client, layoutDir string, ids []string) ([]pipeline.BuiltImage, map[string]string, error) {
	var out []pipeline.BuiltImage
	commits := map[string]string{}
	for _, id := range ids {
		rs, err := c.Releases(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		var live *state.Release
		for _, r := range rs {
			if r.Status == state.StatusLive {
				live = r
				break
			}
		}
		if live == nil {
			return nil, nil, usagef("store %s has no live release: a deploy-only job needs one (run slipway deploy first)", id)
		}
		commits[id] = live.Commit
		imgs, err := releaseImages(layoutDir, live)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, imgs...)
	}
	return out, commits, nil
}

// releaseImages turns a release record back into deployable images.
func releaseImages(layoutDir string, r *state.Release) ([]pipeline.BuiltImage, error) {
	var out []pipeline.BuiltImage
	for app, im := range r.Images {
		drv, err := pipeline.DriverRef(layoutDir, im)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", r.ID, err)
		}
		out = append(out, pipeline.BuiltImage{Store: r.Store, App: app, Ref: im.Ref, Digest: im.Digest, DriverRef: drv})
	}
	return out, nil
}

// buildRequests assembles each store's deploy request: its deploy.yml hooks
// (SLIPWAY_HOOK_* over them; none for a rollback, which returns to old images
// and must not run today's migrations against them) and its runtime env.
func buildRequests(ctx context.Context, c *server.Client, warn io.Writer, cfg *config.Config, ids []string, images []pipeline.BuiltImage, o pipeline.RequestOptions) ([]pipeline.DeployRequest, error) {
	var reqs []pipeline.DeployRequest
	for _, id := range ids {
		so, err := storeRequestOptions(ctx, c, cfg, id, o, warn)
		if err != nil {
			return nil, err
		}
		if o.Kind == state.KindRollback {
			so.Hooks = pipeline.Hooks{}
		}
		req, err := pipeline.NewDeployRequest(cfg, id, images, so)
		if err != nil {
			return nil, &usageError{err}
		}
		reqs = append(reqs, req)
	}
	return reqs, nil
}

type deployOutcome struct {
	store   string
	release *state.Release
	err     error
	took    time.Duration
	urls    []string
}

// runDeploys deploys stores in parallel and prints a summary; extraURL maps a
// store to an additional URL to print (slipway up's loopback ports).
func runDeploys(ctx context.Context, g *globals, c *server.Client, reqs []pipeline.DeployRequest, log io.Writer, routerAddr string, extraURL ...map[string]string) error {
	if routerAddr == "" {
		if st, err := c.Status(ctx); err == nil {
			routerAddr = st.Router
		}
	}
	outcomes := make([]deployOutcome, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			rel, err := c.Deploy(ctx, req, func(e pipeline.Event) {
				stage := ""
				if e.Stage != "" {
					stage = e.Stage + ": "
				}
				fmt.Fprintf(log, "[%s] %s%s\n", e.Store, stage, e.Message)
			})
			oc := deployOutcome{store: req.Store, release: rel, err: err, took: time.Since(start)}
			for _, a := range req.Apps {
				if len(a.Hosts) > 0 {
					oc.urls = append(oc.urls, "http://"+a.Hosts[0]+portSuffix(routerAddr)+"/")
					break
				}
			}
			if len(extraURL) > 0 && extraURL[0][req.Store] != "" {
				oc.urls = append(oc.urls, extraURL[0][req.Store])
			}
			outcomes[i] = oc
		}()
	}
	wg.Wait()
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tRELEASE\tSTATUS\tURL\tTIME")
	failed := false
	for _, o := range outcomes {
		rel, status := "-", "failed"
		if o.release != nil {
			rel, status = o.release.ID, o.release.Status
			if o.release.Error != "" && o.release.Status == state.StatusLive {
				status = "live, " + o.release.Stage + " failed"
			}
		}
		if o.err != nil {
			failed = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.store, rel, status, strings.Join(o.urls, " "), o.took.Round(10*time.Millisecond))
	}
	tw.Flush()
	for _, o := range outcomes {
		if o.err != nil {
			fmt.Fprintf(g.stderr, "%s: %v\n", o.store, o.err)
		}
	}
	if failed {
		return &silentError{ExitFailed}
	}
	return nil
}

func portSuffix(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || addr[i+1:] == "80" {
		return ""
	}
	return addr[i:]
}
