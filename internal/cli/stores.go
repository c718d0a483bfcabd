package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newStoresCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stores",
		Short: "Print the store tree with each store's kind, framework and region",
		Example: `  slipway stores
  slipway stores --json | jq '.[] | select(.kind=="deployable") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if asJSON {
				type row struct {
					ID          string   `json:"id"`
					Kind        string   `json:"kind"`
					Parent      string   `json:"parent,omitempty"`
					Framework   string   `json:"framework,omitempty"`
					Region      string   `json:"region,omitempty"`
					ProjectName string   `json:"projectName,omitempty"`
					Dir         string   `json:"dir"`
					Apps        []string `json:"apps"`
					Domains     []string `json:"domains,omitempty"`
					Children    []string `json:"children,omitempty"`
				}
				rows := []row{}
				for _, id := range cfg.StoreIDs() {
					s := cfg.Store(id)
					r := row{ID: id, Kind: s.Kind(), Parent: s.Parent, Framework: cfg.Framework(id), Region: s.Region,
						ProjectName: s.ProjectName, Dir: s.Dir, Domains: s.Domains, Children: s.Children, Apps: []string{}}
					for _, a := range cfg.AppsFor(id) {
						r.Apps = append(r.Apps, a.ID)
					}
					rows = append(rows, r)
				}
				return printJSON(g.stdout, rows)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STORE\tKIND\tFRAMEWORK\tREGION\tPROJECT")
			var walk func(id, prefix string, last, top bool)
			walk = func(id, prefix string, last, top bool) {
				s := cfg.Store(id)
				branch, next := "", ""
				if !top {
					branch, next = "├── ", "│   "
					if last {
						branch, next = "└── ", "    "
					}
				}
				fmt.Fprintf(tw, "%s%s%s\t%s\t%s\t%s\t%s\n", prefix, branch, id, s.Kind(), dash(cfg.Framework(id)), dash(s.Region), dash(s.ProjectName))
				for i, ch := range s.Children {
					walk(ch, prefix+next, i == len(s.Children)-1, false)
				}
			}
			for _, id := range cfg.Roots() {
				walk(id, "", false, true)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the stores as JSON")
	return cmd
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
