package cli

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/server"
)

// dayTwoCommands are the commands that operate a deployed store.
func dayTwoCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newPSCmd(g),
		newStoreOpCmd(g, "restart", "Replace a store's instances with new ones of the live release, with no downtime and no hooks"),
		newStoreOpCmd(g, "stop", "Take a store offline: its hosts answer 503 with a maintenance page, its instances stop"),
		newStoreOpCmd(g, "start", "Bring a stopped store's live release back"),
		newStoreOpCmd(g, "remove", "Stop a store and remove its routes (its hosts answer 404); the release history is kept"),
		newScaleCmd(g),
		newRunCmd(g),
		newPruneCmd(g),
		newLogsCmd(g),
	}
}

// serverClient returns a client of the serve this command talks to (local
// socket or --server) and the config when there is one; a remote serve
// needs no local checkout.
func (g *globals) serverClient(cmd *cobra.Command) (*config.Config, *server.Client, error) {
	cfg, err := g.load()
	if err != nil {
		if !g.remote() {
			return nil, nil, err
		}
		cfg = nil
	}
	c, err := g.client(cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := c.Ping(cmd.Context()); err != nil {
		return nil, nil, err
	}
	return cfg, c, nil
}

// checkStore checks --store-id, and with mustExist that it is a deployable store of the config.
func checkStore(cfg *config.Config, id string, mustExist bool) error {
	if id == "" {
		return usagef("choose a store with --store-id ID")
	}
	if mustExist && cfg != nil {
		_, err := oneStore(cfg, []string{id})
		return err
	}
	return nil
}

func printEvent(g *globals) func(pipeline.Event) {
	return func(e pipeline.Event) {
		stage := ""
		if e.Stage != "" {
			stage = e.Stage + ": "
		}
		fmt.Fprintf(g.stderr, "[%s] %s%s\n", e.Store, stage, e.Message)
	}
}

func newPSCmd(g *globals) *cobra.Command {
	var store string
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "ps",
		Short:   "List every instance with its address, state, restarts, uptime and memory",
		Example: "  slipway ps\n  slipway ps --store-id us --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, c, err := g.serverClient(cmd)
			if err != nil {
				return err
			}
			ps, err := c.PS(cmd.Context(), store)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, ps)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REGION\tSTORE\tAPP\tRELEASE\tINSTANCE\tADDRESS\tSTATE\tRESTARTS\tUPTIME\tMEMORY")
			regions := storeRegions(g)
			sort.SliceStable(ps, func(i, j int) bool { return regionOf(regions, ps[i].Store) < regionOf(regions, ps[j].Store) })
			for _, p := range ps {
				up := "-"
				if p.State != "exited" && !p.Started.IsZero() {
					up = time.Since(p.Started).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", regionOf(regions, p.Store), p.Store, p.App, p.Release, p.Name, orDash(p.Address), p.State, p.Restarts, up, mib(p.MemoryBytes))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&store, "store-id", "", "only this store's instances")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mib(n int64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func newStoreOpCmd(g *globals, op, short string) *cobra.Command {
	var store string
	cmd := &cobra.Command{
		Use:     op,
		Short:   short,
		Example: "  slipway " + op + " --store-id us",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, c, err := g.serverClient(cmd)
			if err != nil {
				return err
			}
			// A removed store may be gone from the config already.
			if err := checkStore(cfg, store, op != "remove"); err != nil {
				return err
			}
			if err := c.Op(cmd.Context(), op, store, printEvent(g)); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: %s done\n", store, op)
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store-id", "", "the store")
	return cmd
}

func newScaleCmd(g *globals) *cobra.Command {
	var store string
	cmd := &cobra.Command{
		Use:     "scale APP=N...",
		Short:   "Set how many instances of each app a store runs (recorded; new instances are health-gated before traffic)",
		Example: "  slipway scale --store-id us storefront-unified-nextjs=3 storefront-middleware=2",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			counts, err := parseScale(args)
			if err != nil {
				return err
			}
			cfg, c, err := g.serverClient(cmd)
			if err != nil {
				return err
			}
			if err := checkStore(cfg, store, true); err != nil {
				return err
			}
			if err := c.Scale(cmd.Context(), store, counts, printEvent(g)); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: scaled\n", store)
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store-id", "", "the store")
	return cmd
}

// parseScale reads APP=N arguments.
func parseScale(args []string) (map[string]int, error) {
	out := map[string]int{}
	for _, a := range args {
		app, n, ok := strings.Cut(a, "=")
		if !ok || app == "" {
			return nil, usagef("%q: want APP=N", a)
		}
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > pipeline.MaxInstances {
			return nil, usagef("%q: N must be a number from 1 to %d", a, pipeline.MaxInstances)
		}
		out[app] = v
	}
	return out, nil
}

func newRunCmd(g *globals) *cobra.Command {
	var store, app string
	cmd := &cobra.Command{
		Use:   "run --store-id ID [--app A] -- CMD ARGS...",
		Short: "Run a one-off command in a store's live release (its image, env and /data); exits with its code",
		Example: `  slipway run --store-id us -- node scripts/migrate.js --dry-run
  slipway run --store-id us --app storefront-middleware -- sh -c 'ls /data'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, c, err := g.serverClient(cmd)
			if err != nil {
				return err
			}
			if err := checkStore(cfg, store, true); err != nil {
				return err
			}
			code, err := c.Run(cmd.Context(), store, server.RunRequest{App: app, Cmd: args}, g.stdout, g.stderr)
			if err != nil {
				return err
			}
			if code != 0 {
				return &silentError{code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store-id", "", "the store")
	cmd.Flags().StringVar(&app, "app", "", "whose image runs the command (default: the store's first app)")
	// Everything after the command's name is its own: `run -- sh -c ...`.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newPruneCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "prune",
		Example: "  slipway prune",
		Short:   fmt.Sprintf("Remove runtime images no store uses, keeping those of each store's last %d releases", pipeline.KeepReleases),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, c, err := g.serverClient(cmd)
			if err != nil {
				return err
			}
			removed, err := c.Prune(cmd.Context(), nil)
			if err != nil {
				return err
			}
			for _, r := range removed {
				fmt.Fprintln(g.stdout, "removed", r)
			}
			fmt.Fprintf(g.stdout, "%d image(s) removed\n", len(removed))
			return nil
		},
	}
}
