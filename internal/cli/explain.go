package cli

import (
	"context"
	"fmt"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// runExplain prints, per store and app, what a build would do and why
// (`slipway build --explain`): it composes the stores and runs nothing else.
func runExplain(ctx context.Context, g *globals, cfg *config.Config, ids []string, asJSON bool) error {
	ex, err := pipeline.Explain(ctx, pipeline.BuildOptions{Config: cfg, Stores: ids})
	if err != nil {
		return err
	}
	failed := false
	for _, e := range ex {
		failed = failed || e.Error != ""
	}
	if asJSON {
		if err := printJSON(g.stdout, ex); err != nil {
			return err
		}
	} else {
		for i, e := range ex {
			if i > 0 {
				fmt.Fprintln(g.stdout)
			}
			fmt.Fprint(g.stdout, e.Text())
		}
	}
	if failed {
		return &silentError{ExitFailed}
	}
	return nil
}
