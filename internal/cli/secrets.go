package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/server"
)

type secretsOptions struct {
	storeIDs []string
	fromFile string
	envFile  string
	json     bool
}

func newSecretsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Keep a store's secrets in slipway serve, encrypted at rest, for its deploys and restarts",
		Long: `secrets manages server-side secrets: serve keeps them encrypted with its master
key (SLIPWAY_MASTER_KEY, or <state-dir>/master.key, created 0600 on first start)
and adds them to every deploy of the store, so a deploy needs no secret in its
environment and serve can restart crashed instances after its own restart.

Values never go on the command line (every user of the host can read argv):
set reads one value from stdin or --from-file, or NAME=VALUE lines from
--env-file. Output, listings and the API show names only. A secret given to
slipway deploy in its environment (NAME or NAME_FILE) wins over the stored one.
Changes reach the store on its next deploy (--deploy-only needs no build).`,
		Example: `  printf %s "$STRIPE_KEY" | slipway secrets set STRIPE_KEY --store-id us
  slipway secrets set DB_PASSWORD --from-file /run/keys/db --store-id us
  slipway secrets set --env-file prod.secrets --store-id us --store-id eu
  slipway secrets list --store-id us
  slipway secrets unset STRIPE_KEY --store-id us`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSecretsSetCmd(g), newSecretsUnsetCmd(g), newSecretsListCmd(g))
	return cmd
}

// secretStores resolves --store-id against the config when there is one; with
// --state-dir or --server alone (no monorepo at hand) serve checks the ids.
// It returns the client of the serve to talk to.
func secretStores(g *globals, ids []string) (*server.Client, []string, error) {
	cfg, err := g.load()
	if err != nil {
		if g.data == "" && !g.remote() {
			return nil, nil, fmt.Errorf("%w (or pass --state-dir, or --server for a remote serve)", err)
		}
		if len(ids) == 0 {
			return nil, nil, usagef("choose stores with --store-id ID (repeatable)")
		}
		c, err := g.client(nil)
		return c, slices.Compact(slices.Sorted(slices.Values(ids))), err
	}
	sel, err := selectStores(cfg, ids, false)
	if err != nil {
		return nil, nil, err
	}
	c, err := g.client(cfg)
	return c, sel, err
}

func newSecretsSetCmd(g *globals) *cobra.Command {
	o := &secretsOptions{}
	cmd := &cobra.Command{
		Use:   "set [NAME] --store-id ID",
		Short: "Set server-side secrets (value from stdin, --from-file or --env-file; never argv)",
		Example: `  printf %s "$STRIPE_KEY" | slipway secrets set STRIPE_KEY --store-id us
  slipway secrets set DB_PASSWORD --from-file /run/keys/db --store-id us
  slipway secrets set --env-file - --store-id us < prod.secrets`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := o.values(args, cmd.InOrStdin())
			if err != nil {
				return err
			}
			c, ids, err := secretStores(g, o.storeIDs)
			if err != nil {
				return err
			}
			for _, id := range ids {
				r, err := c.ChangeSecrets(cmd.Context(), id, server.SecretsChange{Set: set})
				if err != nil {
					return fmt.Errorf("setting the secrets of %s: %w", id, err)
				}
				fmt.Fprintf(g.stdout, "%s: set %s\n", id, strings.Join(r.Set, ", "))
			}
			applyHint(g.stderr, ids)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&o.storeIDs, "store-id", nil, "store to change (repeatable)")
	cmd.Flags().StringVar(&o.fromFile, "from-file", "", "read NAME's value from this file (one trailing newline is dropped)")
	cmd.Flags().StringVar(&o.envFile, "env-file", "", "read NAME=VALUE lines from this file (- for stdin; # comments and blank lines skipped)")
	return cmd
}

// values reads what set stores. Errors name the argument or line, never a value.
func (o *secretsOptions) values(args []string, stdin io.Reader) (map[string]string, error) {
	if len(args) == 1 {
		if strings.Contains(args[0], "=") {
			return nil, usagef("argument 1: a secret's value never goes on the command line (other users can read it): give the name only and pipe the value on stdin, or use --from-file or --env-file")
		}
		if err := server.CheckEnvName(args[0]); err != nil {
			return nil, usagef("argument 1: %v", err)
		}
	}
	switch {
	case o.envFile != "" && (len(args) > 0 || o.fromFile != ""):
		return nil, usagef("--env-file gives names and values itself: it takes no NAME argument and no --from-file")
	case o.envFile != "":
		return readEnvFile(o.envFile, stdin)
	case len(args) == 0:
		return nil, usagef("give the secret's NAME (its value on stdin or in --from-file), or --env-file")
	}
	var raw []byte
	var err error
	if o.fromFile != "" {
		raw, err = os.ReadFile(o.fromFile)
		if err != nil {
			return nil, usagef("--from-file: %v", err)
		}
	} else if raw, err = io.ReadAll(io.LimitReader(stdin, 1<<20)); err != nil {
		return nil, fmt.Errorf("reading the value of %s from stdin: %w", args[0], err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	if v == "" {
		return nil, usagef("%s: the value is empty (pipe it on stdin or use --from-file; unset removes a secret)", args[0])
	}
	return map[string]string{args[0]: v}, nil
}

func readEnvFile(path string, stdin io.Reader) (map[string]string, error) {
	rd := stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("--env-file: %v", err)
		}
		defer f.Close()
		rd, name = f, path
	}
	out := map[string]string{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(strings.TrimPrefix(k, "export "))
		if !ok {
			return nil, usagef("%s:%d: expected NAME=VALUE", name, n)
		}
		if err := server.CheckEnvName(k); err != nil {
			return nil, usagef("%s:%d: %v", name, n, err)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if _, dup := out[k]; dup {
			return nil, usagef("%s:%d: %s is set twice", name, n, k)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, usagef("%s: no NAME=VALUE line", name)
	}
	return out, nil
}

func newSecretsUnsetCmd(g *globals) *cobra.Command {
	o := &secretsOptions{}
	cmd := &cobra.Command{
		Use:     "unset NAME... --store-id ID",
		Short:   "Remove server-side secrets of stores (applied on their next deploy)",
		Example: `  slipway secrets unset STRIPE_KEY --store-id us`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for i, k := range args {
				if err := server.CheckEnvName(k); err != nil {
					return usagef("argument %d: %v", i+1, err)
				}
			}
			c, ids, err := secretStores(g, o.storeIDs)
			if err != nil {
				return err
			}
			return unsetEach(g, ids, "%s: %s is not a stored secret; nothing to remove\n", func(id string) (removed, notSet []string, err error) {
				r, err := c.ChangeSecrets(cmd.Context(), id, server.SecretsChange{Unset: slices.Compact(slices.Sorted(slices.Values(args)))})
				if err != nil {
					return nil, nil, fmt.Errorf("unsetting the secrets of %s: %w", id, err)
				}
				return r.Removed, r.NotSet, nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&o.storeIDs, "store-id", nil, "store to change (repeatable)")
	return cmd
}

func newSecretsListCmd(g *globals) *cobra.Command {
	o := &secretsOptions{}
	cmd := &cobra.Command{
		Use:   "list --store-id ID",
		Short: "List a store's server-side secrets: names and when they were set, never values",
		Example: `  slipway secrets list --store-id us
  slipway secrets list --store-id us --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.storeIDs) != 1 {
				return usagef("choose one store with --store-id ID")
			}
			c, ids, err := secretStores(g, o.storeIDs)
			if err != nil {
				return err
			}
			names, err := c.Secrets(cmd.Context(), ids[0])
			if err != nil {
				return fmt.Errorf("listing the secrets of %s: %w", ids[0], err)
			}
			if o.json {
				return printJSON(g.stdout, names)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUPDATED")
			for _, n := range names {
				fmt.Fprintf(tw, "%s\t%s\n", n.Name, n.Updated.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringArrayVar(&o.storeIDs, "store-id", nil, "the store whose secrets to list")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the names as JSON")
	return cmd
}

// storedSecretNames asks serve which secrets it keeps for store, so that a
// deploy does not ask for them in its environment.
func storedSecretNames(ctx context.Context, c *server.Client, store string) ([]string, error) {
	names, err := c.Secrets(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("listing the stored secrets of %s: %w", store, err)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, n.Name)
	}
	return out, nil
}
