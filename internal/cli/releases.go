package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/api"
)

func newReleasesCmd(g *globals) *cobra.Command {
	var storeID string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "releases --store-id ID",
		Short: "List a store's releases: commit, digest, when, status",
		Example: `  slipway releases --store-id us
  slipway releases --store-id us --json | jq '.[0].stages'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if storeID == "" {
				return usagef("--store-id is required")
			}
			c, err := g.client(nil)
			if err != nil {
				return err
			}
			rs, err := c.Releases(cmd.Context(), storeID)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, rs)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RELEASE\tKIND\tCOMMIT\tSTATUS\tDEPLOYED\tIMAGES\tNOTE")
			for _, r := range rs {
				var imgs []string
				for app, im := range r.Images {
					imgs = append(imgs, app+"@"+shortDigest(im.Digest))
				}
				sort.Strings(imgs)
				note := r.Error
				if r.Stage != "" && note != "" {
					note = r.Stage + ": " + note
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Kind, shortSHA(r.Commit), r.Status,
					r.CreatedAt.Local().Format(time.DateTime), strings.Join(imgs, " "), firstLine(note))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&storeID, "store-id", "", "store whose releases to list")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the releases as JSON, stages included")
	return cmd
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func shortSHA(s string) string {
	if len(s) > 12 && !strings.Contains(s, "-") {
		return s[:12]
	}
	return s
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show what is live: each store's release, hosts and instances",
		Example: "  slipway status\n  slipway status --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(nil)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, st)
			}
			fmt.Fprintf(g.stdout, "router http://%s, driver %s\n", st.Router, st.Driver)
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REGION\tSERVICE\tRELEASE\tHOSTS\tTARGETS\tREQUESTS")
			regions := storeRegions(g)
			storeOf := func(svc string) string { st, _, _ := strings.Cut(svc, "/"); return st }
			sort.SliceStable(st.Services, func(i, j int) bool {
				return regionOf(regions, storeOf(st.Services[i].Name)) < regionOf(regions, storeOf(st.Services[j].Name))
			})
			for _, s := range st.Services {
				store := storeOf(s.Name)
				rel := "-"
				if r := st.Live[store]; r != nil {
					rel = r.ID + " (" + shortSHA(r.Commit) + ")"
				}
				var ts []string
				for _, t := range s.Targets {
					h := t.Address
					if !t.Healthy {
						h += " (down)"
					}
					ts = append(ts, h)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", regionOf(regions, store), s.Name, rel, strings.Join(s.Hosts, ","), strings.Join(ts, ","), s.Counters.Requests)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func newRollbackCmd(g *globals) *cobra.Command {
	var storeID, to string
	var wait bool
	cmd := &cobra.Command{
		Use:   "rollback --store-id ID [--to SHA]",
		Short: "Return a store to an earlier release's images, with no rebuild",
		Long: `rollback asks serve to deploy the images of an earlier release of the store
(the one before the live release, or the newest release of commit --to that
once served), through the same zero-downtime pipeline, with the current config
and env and no hooks. Serve chooses the release; it records a new release of
kind rollback.`,
		Example: `  slipway rollback --store-id us
  slipway rollback --store-id us --to 3f2a9c1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if storeID == "" {
				return usagef("--store-id is required")
			}
			cfg, err := g.load()
			if err != nil && !g.remote() {
				return err
			}
			if cfg != nil {
				if _, err := selectStores(cfg, []string{storeID}, false); err != nil {
					return err
				}
			}
			client, err := g.client(cfg)
			if err != nil {
				return err
			}
			log := newLiveOutput(g.stderr)
			defer log.Close()
			target := "the release before the live one"
			if to != "" {
				target = "commit " + to
			}
			fmt.Fprintf(log, "rolling %s back to %s\n", storeID, target)
			jr := api.JobRequest{Kind: api.KindRollback, Stores: []string{storeID}, To: to, Wait: wait, Secrets: callerSecrets(cfg, []string{storeID})}
			return runJob(cmd.Context(), g, client, cfg, jr, log, nil, "")
		},
	}
	cmd.Flags().StringVar(&storeID, "store-id", "", "store to roll back")
	cmd.Flags().StringVar(&to, "to", "", "commit (or prefix) to return to; default: the release before the live one")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the store's deploy lock")
	return cmd
}
