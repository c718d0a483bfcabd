package cli

import "github.com/spf13/cobra"

func newChangedCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "changed", Hidden: true}
}
