package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/auth"
)

func newAuditCmd(g *globals) *cobra.Command {
	var f auth.Filter
	var since time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit trail: every mutating API call, who made it, from where, and how it ended",
		Example: `  slipway audit
  slipway audit --store-id us --since 24h
  slipway audit --json --limit 1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since < 0 {
				return usagef("--since must be positive")
			}
			if since > 0 {
				f.Since = time.Now().Add(-since)
			}
			c, err := g.client(nil)
			if err != nil {
				return err
			}
			es, err := c.Audit(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, es)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WHEN\tWHO\tFROM\tCALL\tSTORE\tSTATUS\tWHAT")
			for _, e := range es {
				what := e.Action
				if e.Error != "" {
					what += ": " + firstLine(e.Error)
				}
				status := fmt.Sprint(e.Status)
				if e.Status == 0 {
					status = "running"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\t%s\t%s\n", e.At.Local().Format(time.DateTime), e.Actor, e.Remote,
					e.Method, e.Path, dash(e.Store), status, what)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Store, "store-id", "", "only calls about this store")
	fl.DurationVar(&since, "since", 0, "only calls in this past duration (e.g. 24h)")
	fl.IntVar(&f.Limit, "limit", 100, "at most this many entries, newest first")
	fl.BoolVar(&asJSON, "json", false, "print the entries as JSON")
	return cmd
}
