package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/gitfs"
)

func newChangedCmd(g *globals) *cobra.Command {
	var since string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "changed --since REF",
		Short: "List the deployable stores whose composed content differs from a git ref",
		Long: `changed compares the composition of every deployable store in the working tree
with the same store at REF, inheritance-aware: a base app change that a store
overrides does not change that store. Each store is listed with its reasons:

  STORE_CHANGED      the store's own files changed (or the store is new)
  ANCESTOR_CHANGED   a parent store's files changed
  BASE_APP_CHANGED   a base app's files changed
  CONFIG_CHANGED     the store's or its apps' configuration changed

The working tree is compared as composition sees it, untracked files included.`,
		Example: `  slipway changed --since origin/main
  slipway changed --since HEAD~1 --json | jq -r '.[].store'
  slipway deploy $(slipway changed --since "$LAST_DEPLOYED" --json | jq -r '.[] | "--store-id " + .store')`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since == "" {
				return usagef("--since REF is required (a branch, tag or commit)")
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			changes, err := compose.New(cfg).Changed(cmd.Context(), since)
			if errors.Is(err, gitfs.ErrNoRef) {
				return &usageError{err}
			}
			if err != nil {
				return err
			}
			if changes == nil {
				changes = []compose.Change{}
			}
			if asJSON {
				return printJSON(g.stdout, changes)
			}
			if len(changes) == 0 {
				fmt.Fprintf(g.stderr, "no store changed since %s\n", since)
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			for _, c := range changes {
				var rs []string
				for _, r := range c.Reasons {
					rs = append(rs, string(r))
				}
				detail := fmt.Sprintf("%d file(s)", len(c.Files))
				if c.New {
					detail = "new since " + since
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Store, strings.Join(rs, ","), detail)
				if g.verbose {
					for _, f := range c.Files {
						fmt.Fprintf(tw, "  %s/%s\t%s\t%s\n", f.App, f.Path, f.Reason, f.Layer)
					}
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "git ref to compare with (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the changes as JSON")
	return cmd
}
