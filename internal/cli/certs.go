package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/server"
)

func newCertsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "List the TLS certificates serve holds, with issuer, expiry and last renewal error",
		Long: `certs lists every host name a store serves over HTTPS: where its certificate
comes from (acme or custom), its state, issuer and expiry, when it was last
obtained or renewed, and the last error ordering or renewing it (the current
certificate keeps serving while renewals fail and are retried).`,
		Example: `  slipway certs
  slipway certs --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dataDir := g.data
			if dataDir == "" {
				cfg, err := g.load()
				if err != nil {
					return fmt.Errorf("%w (or pass --state-dir)", err)
				}
				dataDir = g.dataDir(cfg)
			}
			reply, err := server.NewClient(dataDir).Certs(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, reply)
			}
			if !reply.TLS {
				fmt.Fprintln(g.stdout, "serve runs without --https: nothing is served over TLS")
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tSTORE\tSOURCE\tSTATE\tISSUER\tEXPIRES\tRENEWED\tLAST ERROR")
			for _, c := range reply.Certs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Host, c.Store, c.Source, c.State, dash(c.Issuer),
					when(c.NotAfter), when(c.RenewedAt), dash(c.LastError))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}
