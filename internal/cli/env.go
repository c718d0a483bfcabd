package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/server"
)

type envOptions struct {
	storeIDs []string
	json     bool
}

func newEnvCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Show and change a store's runtime env, kept by slipway serve and applied on the next deploy",
		Long: `env manages the runtime env of deployed stores: values set here are kept in
the state of slipway serve (not in the repository) and win over the env of the
config file. They reach the store's apps on its next deploy; to apply them
without a build, run slipway deploy --store-id ID --deploy-only.

Secrets (the config's "secrets" lists) are never stored: they are read from the
environment of slipway deploy (NAME, or a file named by NAME_FILE). env set
refuses them.`,
		Example: `  slipway env set API_URL=https://api.example.com FEATURE_X=on --store-id us
  slipway env unset FEATURE_X --store-id us
  slipway env list --store-id us`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newEnvSetCmd(g), newEnvUnsetCmd(g), newEnvListCmd(g))
	return cmd
}

func newEnvSetCmd(g *globals) *cobra.Command {
	o := &envOptions{}
	cmd := &cobra.Command{
		Use:   "set KEY=VALUE... --store-id ID",
		Short: "Set runtime env keys of stores (applied on their next deploy)",
		Example: `  slipway env set API_URL=https://api.example.com --store-id us
  slipway env set LOG_LEVEL=debug EMPTY= --store-id us --store-id eu`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ids, err := selectStores(cfg, o.storeIDs, false)
			if err != nil {
				return err
			}
			set, err := parseSetArgs(cfg, ids, args)
			if err != nil {
				return err
			}
			c, err := g.client(cfg)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if _, err := c.ChangeEnv(cmd.Context(), id, server.EnvChange{Set: set}); err != nil {
					return fmt.Errorf("setting the env of %s: %w", id, err)
				}
				fmt.Fprintf(g.stdout, "%s: set %s\n", id, strings.Join(slices.Sorted(maps.Keys(set)), ", "))
				conf := cfg.Env(id)
				for _, k := range slices.Sorted(maps.Keys(set)) {
					if _, ok := conf[k]; ok {
						fmt.Fprintf(g.stderr, "%s: %s overrides the value in %s\n", id, k, cfg.File)
					}
				}
			}
			applyHint(g.stderr, ids)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&o.storeIDs, "store-id", nil, "store to change (repeatable)")
	return cmd
}

func newEnvUnsetCmd(g *globals) *cobra.Command {
	o := &envOptions{}
	cmd := &cobra.Command{
		Use:     "unset KEY... --store-id ID",
		Short:   "Remove runtime env keys of stores (applied on their next deploy)",
		Example: `  slipway env unset FEATURE_X LOG_LEVEL --store-id us`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ids, err := selectStores(cfg, o.storeIDs, false)
			if err != nil {
				return err
			}
			var keys []string
			for i, k := range args {
				if err := server.CheckEnvName(k); err != nil {
					return usagef("argument %d: %v", i+1, err)
				}
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
			c, err := g.client(cfg)
			if err != nil {
				return err
			}
			return unsetEach(g, ids, "%s: %s was not set with slipway env set; nothing to remove\n", func(id string) (removed, notSet []string, err error) {
				r, err := c.ChangeEnv(cmd.Context(), id, server.EnvChange{Unset: keys})
				if err != nil {
					return nil, nil, fmt.Errorf("unsetting the env of %s: %w", id, err)
				}
				return r.Removed, r.NotSet, nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&o.storeIDs, "store-id", nil, "store to change (repeatable)")
	return cmd
}

func newEnvListCmd(g *globals) *cobra.Command {
	o := &envOptions{}
	cmd := &cobra.Command{
		Use:   "list --store-id ID",
		Short: "List a store's env: runtime keys, the config's (marked) and secret names (never values)",
		Example: `  slipway env list --store-id us
  slipway env list --store-id us --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			id, err := oneStore(cfg, o.storeIDs)
			if err != nil {
				return err
			}
			c, err := g.client(cfg)
			if err != nil {
				return err
			}
			runtime, err := c.Env(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("reading the env of %s: %w", id, err)
			}
			v := newEnvView(cfg, id, runtime)
			if o.json {
				return printJSON(g.stdout, v)
			}
			v.print(g.stdout, cfg.File)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&o.storeIDs, "store-id", nil, "the store whose env to list")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the env as JSON")
	return cmd
}

// parseSetArgs turns KEY=VALUE arguments into a map, refusing bad names and
// secrets. Errors name the argument and its key, never its value.
func parseSetArgs(cfg *config.Config, ids []string, args []string) (map[string]string, error) {
	set := map[string]string{}
	at := map[string]int{}
	for i, a := range args {
		n := i + 1
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			what := ""
			if server.CheckEnvName(k) == nil { // never echo what may be a value
				what = " (" + k + ")"
			}
			return nil, usagef("argument %d%s: expected KEY=VALUE (KEY= sets an empty value; slipway env unset removes a key)", n, what)
		}
		if err := server.CheckEnvName(k); err != nil {
			return nil, usagef("argument %d: %v", n, err)
		}
		if prev, dup := at[k]; dup {
			return nil, usagef("argument %d: %s is already set by argument %d", n, k, prev)
		}
		for _, id := range ids {
			if by := secretOwner(cfg, id, k); by != "" {
				return nil, usagef("argument %d: %s is a secret of store %s (listed under stores.%s.secrets in %s): secret values are never stored in Slipway's state; set %s or %s_FILE in the environment of slipway deploy instead",
					n, k, id, by, cfg.File, k, k)
			}
		}
		set[k], at[k] = v, n
	}
	return set, nil
}

// secretOwner returns the store of id's chain that lists name as a secret, or "".
func secretOwner(cfg *config.Config, id, name string) string {
	for _, s := range cfg.Chain(id) {
		if slices.Contains(s.Secrets, name) {
			return s.ID
		}
	}
	return ""
}

// unsetEach runs unset for each store in turn, stopping at its first error,
// and prints what each removed (stdout) and each key that had no value
// (stderr, by notSetFormat with the store and key); if anything was removed
// it ends with the apply hint.
func unsetEach(g *globals, ids []string, notSetFormat string, unset func(id string) (removed, notSet []string, err error)) error {
	changed := false
	for _, id := range ids {
		removed, notSet, err := unset(id)
		if err != nil {
			return err
		}
		if len(removed) > 0 {
			changed = true
			fmt.Fprintf(g.stdout, "%s: unset %s\n", id, strings.Join(removed, ", "))
		}
		for _, k := range notSet {
			fmt.Fprintf(g.stderr, notSetFormat, id, k)
		}
	}
	if changed {
		applyHint(g.stderr, ids)
	}
	return nil
}

// printJSON writes v to w as indented JSON, as the --json flags print.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func applyHint(w io.Writer, ids []string) {
	fmt.Fprintf(w, "run `slipway deploy --store-id %s --deploy-only` to apply\n", strings.Join(ids, " --store-id "))
}

// Sources of an env list entry.
const (
	envSourceRuntime = "env set"
	envSourceConfig  = "config"
	envSourceSecret  = "secret"
)

type envView struct {
	Store string         `json:"store"`
	Env   []envViewEntry `json:"env"`
}

type envViewEntry struct {
	Name string `json:"name"`
	// Value is absent for secrets.
	Value *string `json:"value,omitempty"`
	// Source is "env set" (slipway env set), "config" or "secret".
	Source string `json:"source"`
	// OverridesConfig is true for a runtime key the config also sets.
	OverridesConfig bool   `json:"overridesConfig,omitempty"`
	Note            string `json:"note,omitempty"`
}

// newEnvView merges what a deploy of the store gets: the config's env, the runtime env over it, the secrets over both.
func newEnvView(cfg *config.Config, id string, runtime map[string]string) envView {
	conf := cfg.Env(id)
	secrets := map[string]bool{}
	for _, s := range cfg.Chain(id) {
		for _, n := range s.Secrets {
			secrets[n] = true
		}
	}
	names := map[string]bool{}
	for _, m := range []map[string]string{conf, runtime} {
		for k := range m {
			names[k] = true
		}
	}
	maps.Copy(names, secrets)
	v := envView{Store: id, Env: []envViewEntry{}}
	for _, k := range slices.Sorted(maps.Keys(names)) {
		e := envViewEntry{Name: k}
		rv, inRuntime := runtime[k]
		cv, inConfig := conf[k]
		switch {
		case secrets[k]:
			e.Source = envSourceSecret
			if inRuntime {
				e.Note = fmt.Sprintf("a value stored with slipway env set is ignored (the secret wins); remove it: slipway env unset %s --store-id %s", k, id)
			}
		case inRuntime:
			e.Source, e.Value, e.OverridesConfig = envSourceRuntime, &rv, inConfig
		default:
			e.Source, e.Value = envSourceConfig, &cv
		}
		v.Env = append(v.Env, e)
	}
	return v
}

func (v envView) print(w io.Writer, configFile string) {
	for _, e := range v.Env {
		switch e.Source {
		case envSourceSecret:
			fmt.Fprintf(w, "%s  # secret: read from the environment at deploy time, never stored\n", e.Name)
			if e.Note != "" {
				fmt.Fprintf(w, "  # warning: %s\n", e.Note)
			}
		case envSourceConfig:
			fmt.Fprintf(w, "%s=%s  # config (%s)\n", e.Name, showValue(*e.Value), configFile)
		default:
			if e.OverridesConfig {
				fmt.Fprintf(w, "%s=%s  # overrides %s\n", e.Name, showValue(*e.Value), configFile)
			} else {
				fmt.Fprintf(w, "%s=%s\n", e.Name, showValue(*e.Value))
			}
		}
	}
}

// showValue keeps one key per line: a value with control characters (a newline) is printed quoted.
func showValue(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
