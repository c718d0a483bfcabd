package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/server"
)

func newLogsCmd(g *globals) *cobra.Command {
	var store string
	var q server.LogsQuery
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Show a store's instance, hook and deploy output, interleaved by time (secrets redacted)",
		Example: `  slipway logs --store-id us --since 10m
  slipway logs --store-id us --app storefront-middleware -f
  slipway logs --store-id us --tail 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.Tail < 0 || q.Since < 0 {
				return usagef("--tail and --since must not be negative")
			}
			cfg, c, err := g.serverClient(cmd)
			if err != nil {
				return err
			}
			if err := checkStore(cfg, store, false); err != nil {
				return err
			}
			enc := json.NewEncoder(g.stdout)
			return c.Logs(cmd.Context(), store, q, func(e server.LogEntry) {
				if asJSON {
					enc.Encode(e)
					return
				}
				fmt.Fprintf(g.stdout, "%s %s | %s\n", e.Time.Local().Format(time.DateTime+".000"), e.Source, e.Text)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&store, "store-id", "", "the store")
	f.StringVar(&q.App, "app", "", "only this app's instances (job output is always shown)")
	f.BoolVarP(&q.Follow, "follow", "f", false, "keep printing new lines")
	f.DurationVar(&q.Since, "since", 0, "only lines of the last DURATION, e.g. 10m")
	f.IntVar(&q.Tail, "tail", 0, "only the last N lines (before following)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object a line")
	return cmd
}
