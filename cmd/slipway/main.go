// Command slipway composes, builds and deploys the stores of a monorepo.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/slipway-dev/slipway/internal/cli"
)

func main() {
	// Slipway's commands walk trees of tens of thousands of files in one burst
	// of allocation; collecting garbage less often is worth the memory. GOGC
	// still overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	endProfile := startProfile()
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	endProfile()
	stop()
	os.Exit(code)
}
