package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/api"
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
		Long: `deploy builds and publishes the selected stores (see slipway build), then sends
one job to slipway serve, which deploys each store: pre-deploy hook (in the
running release), install hook (in the new image), new instances started and
health gated, one atomic router swap, old instances drained and stopped,
post-deploy hook (in the new release), verify.

Serve owns the job: it merges the stored env with the config's, resolves and
checks the images (the digest recorded is the digest run), and records
everything. Secrets named in the config are read here (NAME or NAME_FILE) and
travel only in the request.

Each store fails alone: with --all, a store whose build, hooks or health gate
fail is reported and the others deploy; the exit code is then 1. If anything
fails before the swap, no traffic moves and the old release keeps serving.
--deploy-only skips compose, build and push and redeploys the live images with
the current config and env (a config change).

With --server (or SLIPWAY_SERVER) the job goes to a remote serve --api; the
images must then be pushed to a registry serve can pull from (--registry, or
Alokai's --docker-registry-url).`,
		Example: `  slipway deploy --all
  slipway deploy --store-id us --wait
  slipway deploy --store-id us --deploy-only
  slipway deploy --store-id us --destructive --confirm us
  slipway deploy --all --canary us --wave 10 --max-failures 2 --rollback-wave
  slipway deploy --all --canary us --wave 10 --dry-run
  SLIPWAY_TOKEN=... slipway deploy --all --server https://deploy.example.com --registry ghcr.io/acme`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, g) },
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
	o.reg.bindAlokai(cmd)
	return cmd
}

func (o *deployOptions) run(cmd *cobra.Command, g *globals) error {
	if o.commit != "" && o.fleet.active() {
		return deployCommitWaves(cmd.Context(), g, o)
	}
	if o.commit != "" {
		return deployCommit(cmd.Context(), g, o)
	}
	ctx := cmd.Context()
	cfg, err := g.load()
	if err != nil && !(g.remote() && o.deployOnly) {
		return err
	}
	var ids []string
	if cfg != nil {
		if ids, err = selectStores(cfg, o.storeIDs, o.all); err != nil {
			return err
		}
		if err := checkDestructive(cfg, ids, o.destructive, o.confirm); err != nil {
			return err
		}
	} else if ids = o.storeIDs; len(ids) == 0 {
		return usagef("choose stores with --store-id ID (--all needs the config here)")
	}
	if o.fleet.active() {
		if cfg == nil {
			return usagef("a staged rollout (--canary, --wave) needs the config here")
		}
		if err := o.fleet.check(ids); err != nil {
			return err
		}
		if o.fleet.dryRun {
			return dryRunFleet(ctx, g, cfg, ids, o.fleet)
		}
	}
	client, err := g.client(cfg)
	if err != nil {
		return err
	}
	if err := client.Ping(ctx); err != nil {
		return err
	}
	log := newLiveOutput(g.stderr)
	defer log.Close()
	jr := api.JobRequest{Kind: api.KindDeployOnly, Stores: ids, Destructive: o.destructive, Confirm: o.confirm, Wait: o.wait,
		Secrets: callerSecrets(cfg, ids), Hooks: callerHooks()}
	var failed []outcome
	if !o.deployOnly {
		jr.Kind = api.KindBuildDeploy
		if failed, err = o.build(ctx, g, cfg, cmd.InOrStdin(), log, &jr); err != nil {
			return err
		}
	}
	if o.fleet.active() {
		if len(failed) > 0 {
			printOutcomes(g, failed, 0)
			return &silentError{ExitFailed}
		}
		return runFleet(ctx, g, cfg, client, jr, o.fleet, log)
	}
	return runJob(ctx, g, client, cfg, jr, log, failed, "")
}

// build builds and publishes the stores and fills jr with the images; stores
// whose build failed leave the job and come back as failed outcomes.
func (o *deployOptions) build(ctx context.Context, g *globals, cfg *config.Config, stdin io.Reader, log *liveOutput, jr *api.JobRequest) ([]outcome, error) {
	if g.remote() && o.reg.registryHost(cfg) == "" {
		return nil, usagef("a deploy to a remote server needs a registry it can pull from: --registry (or --docker-registry-url, or the config's registry)")
	}
	store, where, err := o.reg.store(g, cfg, stdin, log.Progress)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "building %d store(s) into the %s\n", len(jr.Stores), where)
	res, err := pipeline.Build(ctx, pipeline.BuildOptions{Config: cfg, Stores: jr.Stores, Store: store, Jobs: o.jobs, Verbose: g.verbose, AllowDirty: o.allowDirty, Log: log})
	if err != nil {
		return nil, err
	}
	failed := buildFailures(res)
	if res.Failed() {
		printBuildSummary(g.stderr, res)
	}
	jr.Commit = res.Revision.Commit
	jr.Stores = slices.DeleteFunc(jr.Stores, func(id string) bool {
		return slices.ContainsFunc(failed, func(f outcome) bool { return f.store == id })
	})
	for _, im := range res.Images {
		if slices.Contains(jr.Stores, im.Store) {
			jr.Images = append(jr.Images, api.ImageRef{Store: im.Store, App: im.App, Ref: im.Ref, Digest: im.Digest})
		}
	}
	return failed, nil
}

// buildFailures are the stores with an app whose build failed, with why.
func buildFailures(res *pipeline.BuildResult) []outcome {
	var out []outcome
	for _, im := range res.Images {
		if im.Err == nil || slices.ContainsFunc(out, func(o outcome) bool { return o.store == im.Store }) {
			continue
		}
		out = append(out, outcome{store: im.Store, err: fmt.Errorf("build of %s failed: %s", im.App, firstLine(im.Err.Error())), stage: "build"})
	}
	return out
}

// callerSecrets reads the stores' secrets from this process's environment
// (NAME, or the file NAME_FILE names): they travel in the request only.
// Missing ones are left to serve, which may keep them itself, or refuses the store.
func callerSecrets(cfg *config.Config, ids []string) map[string]string {
	out := map[string]string{}
	if cfg == nil {
		return out
	}
	for _, id := range ids {
		for _, s := range cfg.Chain(id) {
			for _, n := range s.Secrets {
				if v := os.Getenv(n); v != "" {
					out[n] = v
				} else if f := os.Getenv(n + "_FILE"); f != "" {
					if b, err := os.ReadFile(f); err == nil {
						out[n] = strings.TrimRight(string(b), "\r\n")
					}
				}
			}
		}
	}
	return out
}

// callerHooks are the SLIPWAY_HOOK_* overrides of this environment.
func callerHooks() map[string]string {
	out := map[string]string{}
	for _, k := range api.HookVars {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			out[k] = v
		}
	}
	return out
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

// outcome is one store's line in the summary.
type outcome struct {
	store   string
	release *state.Release
	err     error
	stage   string
	urls    []string
}

// runJob validates jr as serve will, sends it, streams its events to log and
// prints one summary line per store (the failed builds too); any failure exits 1.
// extraURL maps a store to another URL to print (slipway up's loopback ports).
func runJob(ctx context.Context, g *globals, c *server.Client, cfg *config.Config, jr api.JobRequest, log io.Writer, failed []outcome, routerAddr string, extraURL ...map[string]string) error {
	start := time.Now()
	var results []server.StoreResult
	if len(jr.Stores) > 0 {
		if cfg != nil {
			// The registries serve allows are its own business: here only the request's shape is checked.
			if err := jr.Validate(cfg, api.Limits{Registries: imageRegistries(jr)}); err != nil {
				return &usageError{err}
			}
		}
		var err error
		results, err = c.DeployStores(ctx, jr, func(e pipeline.Event) {
			stage := ""
			if e.Stage != "" {
				stage = e.Stage + ": "
			}
			fmt.Fprintf(log, "[%s] %s%s\n", e.Store, stage, e.Message)
		})
		if errors.Is(err, server.ErrStreamBroken) {
			// Every store without a result failed as far as this caller can tell.
			for _, id := range jr.Stores {
				if !slices.ContainsFunc(results, func(r server.StoreResult) bool { return r.Store == id }) {
					results = append(results, server.StoreResult{Store: id, Err: err})
				}
			}
		} else if ae := (*server.APIError)(nil); errors.As(err, &ae) && ae.Code == 400 {
			// Serve refused the request at its boundary (a field at fault): bad usage, nothing changed.
			return &usageError{err}
		} else if err != nil {
			return err
		}
	}
	if routerAddr == "" {
		if st, err := c.Status(ctx); err == nil {
			routerAddr = st.Router
		}
	}
	outs := slices.Clone(failed)
	for _, r := range results {
		o := outcome{store: r.Store, release: r.Release, err: r.Err}
		if cfg != nil && cfg.Store(r.Store) != nil {
			if apps := cfg.AppsFor(r.Store); len(apps) > 0 {
				if hs := pipeline.Hosts(cfg, r.Store, apps[0]); len(hs) > 0 {
					o.urls = append(o.urls, "http://"+hs[0]+portSuffix(routerAddr)+"/")
				}
			}
		}
		if len(extraURL) > 0 && extraURL[0][r.Store] != "" {
			o.urls = append(o.urls, extraURL[0][r.Store])
		}
		outs = append(outs, o)
	}
	slices.SortFunc(outs, func(a, b outcome) int { return strings.Compare(a.store, b.store) })
	return printOutcomes(g, outs, time.Since(start))
}

func imageRegistries(jr api.JobRequest) []string {
	var out []string
	for _, im := range jr.Images {
		if i := strings.LastIndexAny(im.Ref, ":@"); i > 0 {
			out = append(out, strings.SplitN(im.Ref[:i], "/", 2)[0])
		}
	}
	return out
}

func printOutcomes(g *globals, outs []outcome, took time.Duration) error {
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tRELEASE\tSTATUS\tURL\tTIME")
	var failed []string
	for _, o := range outs {
		rel, status, t := "-", "failed", "-"
		if o.release != nil {
			rel, status = o.release.ID, string(o.release.Status)
			if o.release.Error != "" && o.release.Status == state.StatusLive {
				status = "live, " + o.release.Stage + " failed"
			}
			if !o.release.FinishedAt.IsZero() {
				t = o.release.FinishedAt.Sub(o.release.CreatedAt).Round(10 * time.Millisecond).String()
			}
		}
		if o.stage == "build" {
			status = "build failed"
		}
		if o.err != nil {
			failed = append(failed, o.store)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.store, rel, status, strings.Join(o.urls, " "), t)
	}
	tw.Flush()
	for _, o := range outs {
		if o.err != nil {
			fmt.Fprintf(g.stderr, "%s: %v\n", o.store, o.err)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(g.stderr, "%d of %d store(s) failed (%s); the others deployed (%s total)\n", len(failed), len(outs), strings.Join(failed, ", "), took.Round(10*time.Millisecond))
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
