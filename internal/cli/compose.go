package cli

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/compose"
)

type composeOptions struct {
	storeIDs []string
	all      bool
	out      string
	jobs     int
	asJSON   bool
}

func newComposeCmd(g *globals) *cobra.Command {
	o := &composeOptions{}
	cmd := &cobra.Command{
		Use:   "compose",
		Short: "Compose stores by file-based inheritance into .out/<store>/<app>",
		Long: `compose writes .out/<store>/<app>/ for every selected deployable store: its
framework's base app plus the always-included apps, each file taken from the
nearest layer that has it (the store, its parent, ..., the base app).

Each store is replaced atomically: a failed compose leaves the previous
.out/<store> as it was. A re-compose rewrites only files whose content or mode
changed. --json prints a fingerprint per store/app: a content hash that is the
same on any machine for the same inputs.`,
		Example: `  slipway compose --all
  slipway compose --store-id us --store-id eu
  slipway compose --all --json | jq -r '.[].apps[].fingerprint'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ids, err := selectStores(cfg, o.storeIDs, o.all)
			if err != nil {
				return err
			}
			var opts []compose.Option
			if o.out != "" {
				out, err := filepath.Abs(o.out)
				if err != nil {
					return err
				}
				opts = append(opts, compose.WithOutDir(out))
			}
			opts = append(opts, compose.WithWorkers(o.jobs))
			start := time.Now()
			results, err := compose.New(cfg, opts...).Compose(cmd.Context(), ids)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printJSON(g.stdout, results)
			}
			for _, r := range results {
				for _, w := range r.Warnings {
					fmt.Fprintln(g.stderr, "warning:", w)
				}
				files := 0
				for _, a := range r.Apps {
					files += a.Files
				}
				state := "up to date"
				if r.Written > 0 || r.Removed > 0 || r.Full {
					state = fmt.Sprintf("%d written, %d removed", r.Written, r.Removed)
				}
				fmt.Fprintf(g.stdout, "%-20s %d apps, %d files: %s (%s)\n", r.Store, len(r.Apps), files, state, r.Duration.Round(time.Millisecond))
				if g.verbose {
					for _, a := range r.Apps {
						fmt.Fprintf(g.stdout, "    %-28s %s  %s\n", a.App, a.Fingerprint, a.Dir)
					}
				}
			}
			fmt.Fprintf(g.stdout, "composed %d store(s) in %s\n", len(results), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.storeIDs, "store-id", nil, "store to compose (repeatable)")
	f.BoolVar(&o.all, "all", false, "compose every deployable store")
	f.StringVar(&o.out, "out", "", "output directory (default: <root>/.out)")
	f.IntVar(&o.jobs, "jobs", 0, "files written at once (default: 2 × cores)")
	f.BoolVar(&o.asJSON, "json", false, "print results, with fingerprints, as JSON")
	return cmd
}
