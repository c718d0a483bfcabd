// Package cli is the slipway command line: one file per command, flags bound into
// options structs, no business logic.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/gitfs"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // the job failed
	ExitUsage  = 2 // bad usage or config
)

// usageError marks errors that exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// silentError carries an exit code for a failure already reported to the user.
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// globals are the flags every command has.
type globals struct {
	dir     string
	config  string
	data    string
	verbose bool
	server  string
	stdout  io.Writer
	stderr  io.Writer
}

// Execute runs the CLI with args and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var silent *silentError
	if errors.As(err, &silent) {
		return silent.code
	}
	fmt.Fprintln(stderr, "error:", err)
	var ue *usageError
	var ve *config.ValidationError
	switch {
	case errors.As(err, &ue), errors.As(err, &ve), errors.Is(err, config.ErrNotFound), errors.Is(err, gitfs.ErrDirty):
		return ExitUsage
	case isCobraUsage(err):
		fmt.Fprintln(stderr, "Run 'slipway --help' for usage.")
		return ExitUsage
	}
	return ExitFailed
}

// isCobraUsage recognises cobra's own argument and flag errors, which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "slipway",
		Short: "Compose, build and deploy the stores of a monorepo to your own servers",
		Long: `Slipway takes a commit of a multi-store monorepo to live, routed, health-checked
services on your own servers: stores are composed by file-based inheritance into
.out/<store>/<app>, built, packed into images tagged with the commit, and deployed
blue-green with no downtime.

Every flag can also be set in the environment as SLIPWAY_<FLAG>, e.g. --store-id
as SLIPWAY_STORE_ID (comma-separated for repeatable flags).`,
		Example: `  slipway validate
  slipway stores
  slipway compose --all
  slipway changed --since origin/main`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVarP(&g.dir, "dir", "C", ".", "monorepo directory (the config file is looked up from here upwards)")
	pf.StringVar(&g.config, "config", "", "config file (default: slipway.yaml, slipway.json or alokai.config.json)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "print every step and all build output")
	pf.StringVar(&g.server, "server", "", "URL of a remote slipway serve --api (token from SLIPWAY_TOKEN or slipway login); default: the local socket")
	pf.StringVar(&g.data, "state-dir", "", "where Slipway keeps images, releases and runtime state (default: <root>/.slipway)")
	root.AddCommand(
		newVersionCmd(g),
		newValidateCmd(g),
		newStoresCmd(g),
		newComposeCmd(g),
		newChangedCmd(g),
		newBuildCmd(g),
		newServeCmd(g),
		newDeployCmd(g),
		newUpCmd(g),
		newReleasesCmd(g),
		newStatusCmd(g),
		newRollbackCmd(g),
		newPipelineCmd(g),
		newEnvCmd(g),
		newTokenCmd(g),
		newAuditCmd(g),
		newLoginCmd(g),
		newLogoutCmd(g),
		newExportCmd(g),
		newSecretsCmd(g),
		newSystemdCmd(g),
		newTargetsCmd(g),
		newCertsCmd(g),
	)
	root.AddCommand(dayTwoCommands(g)...)
	root.AddCommand(pushCommands(g)...)
	return root
}

// bindEnv fills every flag the user did not set from SLIPWAY_<FLAG>.
func bindEnv(cmd *cobra.Command) error {
	var err error
	visit := func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := "SLIPWAY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			var parts []string
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					parts = append(parts, p)
				}
			}
			err = sv.Replace(parts)
		} else {
			err = f.Value.Set(v)
		}
		if err != nil {
			err = usagef("environment variable %s: %v", name, err)
			return
		}
		f.Changed = true
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return err
}

// load loads and validates the config, printing warnings.
func (g *globals) load() (*config.Config, error) {
	cfg, err := config.Load(g.dir, g.config)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(g.stderr, w.String())
	}
	return cfg, nil
}

// dataDir is --state-dir, else <root>/.slipway.
func (g *globals) dataDir(cfg *config.Config) string {
	if g.data != "" {
		if abs, err := filepath.Abs(g.data); err == nil {
			return abs
		}
		return g.data
	}
	return filepath.Join(cfg.Root, ".slipway")
}

// selectStores resolves --store-id / --all to deployable store ids.
func selectStores(cfg *config.Config, ids []string, all bool) ([]string, error) {
	if all && len(ids) > 0 {
		return nil, usagef("--all and --store-id exclude each other")
	}
	if all {
		ids := cfg.DeployableIDs()
		if len(ids) == 0 {
			return nil, usagef("%s: no deployable store (every store is a template)", cfg.File)
		}
		return ids, nil
	}
	if len(ids) == 0 {
		return nil, usagef("choose stores with --store-id ID (repeatable) or --all")
	}
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		s := cfg.Store(id)
		if s == nil {
			hint := ""
			if h := config.DidYouMean(id, cfg.StoreIDs()); h != "" {
				hint = " (" + h + ")"
			}
			return nil, usagef("--store-id %s: no such store in %s%s", id, cfg.File, hint)
		}
		if !s.Deployable() {
			return nil, usagef("--store-id %s: a template store is not deployed on its own; select its children: %s", id, strings.Join(deployableBelow(cfg, id), ", "))
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

func deployableBelow(cfg *config.Config, id string) []string {
	var out []string
	for _, d := range cfg.Descendants(id) {
		if cfg.Store(d).Deployable() {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}
