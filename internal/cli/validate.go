package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/config"
)

func newValidateCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the config and the store tree, reporting every problem at once",
		Long: `validate loads slipway.yaml (or alokai.config.json), discovers the store tree and
reports every problem with file:line:column and a hint. It changes nothing on disk.
Exit code 2 when the config is invalid.`,
		Example: `  slipway validate
  slipway validate --json
  slipway validate -C examples/multistore --config alokai.config.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.dir, g.config)
			var ve *config.ValidationError
			if err != nil && !errors.As(err, &ve) {
				return err
			}
			var problems []config.Problem
			if ve != nil {
				problems = ve.Problems
			} else {
				problems = cfg.Warnings
			}
			if asJSON {
				type jp struct {
					config.Problem
					Level string `json:"level"`
				}
				out := struct {
					Valid    bool   `json:"valid"`
					File     string `json:"file,omitempty"`
					Problems []jp   `json:"problems"`
				}{Valid: ve == nil, Problems: []jp{}}
				if cfg != nil {
					out.File = cfg.File
				}
				for _, p := range problems {
					out.Problems = append(out.Problems, jp{p, p.Level()})
				}
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
				if ve != nil {
					return &silentError{ExitUsage}
				}
				return nil
			}
			for _, p := range problems {
				fmt.Fprintln(g.stderr, p.String())
			}
			if ve != nil {
				n := 0
				for _, p := range problems {
					if p.Severity == config.Error {
						n++
					}
				}
				fmt.Fprintf(g.stderr, "%d error(s): the configuration is invalid\n", n)
				return &silentError{ExitUsage}
			}
			dep := len(cfg.DeployableIDs())
			fmt.Fprintf(g.stdout, "%s: ok — %d apps, %d stores (%d deployable, %d template)\n",
				cfg.File, len(cfg.Apps), len(cfg.Stores), dep, len(cfg.Stores)-dep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
