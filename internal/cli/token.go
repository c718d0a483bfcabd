package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/server"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens for slipway serve --api",
		Long: `token manages the bearer tokens that remote callers (CI, a laptop) present to
slipway serve --api. A token has a scope: read (status, releases, logs), deploy
(deploy, rollback, restart, env) or admin (tokens, audit, everything), and may be
limited to stores matching a glob (--stores 'eu-*').

The token is printed once, on create; serve keeps only its SHA-256 hash.
Managing tokens needs admin: the local socket, or an admin token.`,
		Example: `  slipway token create --name ci --scope deploy
  slipway token create --name eu-ci --scope deploy --stores 'eu-*'
  slipway token list
  slipway token revoke ci`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var req server.TokenRequest
	var scope string
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "create --name NAME --scope read|deploy|admin [--stores GLOB]",
		Short:   "Create a token and print it once",
		Example: "  slipway token create --name ci --scope deploy\n  SLIPWAY_TOKEN=$(slipway token create --name ci --scope deploy)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := auth.CheckName(req.Name); err != nil {
				return usagef("--name: %v", err)
			}
			sc, err := auth.ParseScope(scope)
			if err != nil {
				return usagef("--scope: %v", err)
			}
			if err := auth.CheckGlob(req.Stores); err != nil {
				return usagef("--stores: %v", err)
			}
			req.Scope = sc
			c, err := g.client(nil)
			if err != nil {
				return err
			}
			out, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(out)
			}
			// The token alone on stdout, so $(slipway token create ...) captures it.
			fmt.Fprintln(g.stdout, out.Token)
			fmt.Fprintf(g.stderr, "token %s (scope %s%s) created: it is shown only now; store it in your CI's secrets as SLIPWAY_TOKEN\n",
				out.Record.Name, out.Record.Scope, storesNote(out.Record.Stores))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "a name for the token (who or what uses it)")
	f.StringVar(&scope, "scope", "", "read, deploy or admin")
	f.StringVar(&req.Stores, "stores", "", "limit the token to stores matching this glob (default: every store)")
	f.BoolVar(&asJSON, "json", false, "print the token and its record as JSON")
	return cmd
}

func storesNote(glob string) string {
	if glob == "" {
		return ""
	}
	return ", stores " + glob
}

func newTokenListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens: name, scope, stores, created, last used (never the secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(nil)
			if err != nil {
				return err
			}
			ts, err := c.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, ts)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tSTORES\tCREATED\tLAST USED")
			for _, t := range ts {
				stores, used := t.Stores, "never"
				if stores == "" {
					stores = "*"
				}
				if !t.LastUsed.IsZero() {
					used = t.LastUsed.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Scope, stores, t.CreatedAt.Local().Format(time.DateTime), used)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the tokens as JSON")
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: its next request gets 401",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(nil)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "token %s revoked\n", args[0])
			return nil
		},
	}
}
