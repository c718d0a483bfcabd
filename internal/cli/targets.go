package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver/swarm"
	"github.com/slipway-dev/slipway/internal/server"
)

// applyTargets makes serve run each store on its region's target when the
// config has targets: (they replace --driver).
func applyTargets(g *globals, cfg *config.Config, so *server.Options) {
	if cfg == nil || len(cfg.Targets) == 0 {
		return
	}
	so.Targets, so.Regions = cfg.Targets, map[string]string{}
	for _, id := range cfg.DeployableIDs() {
		so.Regions[id] = cfg.Store(id).Region
	}
	var parts []string
	for _, n := range sortedKeys(cfg.Targets) {
		t := cfg.Targets[n]
		p := n + "=" + t.Driver
		if t.Docker != "" {
			p += " (" + t.Docker + ")"
		}
		parts = append(parts, p)
	}
	fmt.Fprintf(g.stderr, "slipway serve: targets from %s: %s (--driver is not used)\n", cfg.File, strings.Join(parts, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// targetCheck is one line of `slipway targets`.
type targetCheck struct {
	Target    string        `json:"target"`
	Driver    string        `json:"driver"`
	Engine    string        `json:"engine"`
	Reachable bool          `json:"reachable"`
	Error     string        `json:"error,omitempty"`
	Problems  []string      `json:"problems,omitempty"`
	Info      *swarm.Engine `json:"info,omitempty"`
	Stores    []string      `json:"stores"`
}

func newTargetsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "targets",
		Short: "Check every target of the config: reachable, engine version, swarm role, node labels",
		Long: `targets connects to each target of the config's targets: map from this machine
(as serve does from its own) and reports whether it answers, its engine version,
its swarm state and role, and the swarm's nodes with their labels. A swarm target
must be a manager with at least one node labelled region=<target>; the default
target places on any node. Exit status 1 when a target fails a check.`,
		Example: "  slipway targets\n  slipway targets --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if len(cfg.Targets) == 0 {
				return usagef("%s has no targets: (every store runs on serve's --driver)", cfg.File)
			}
			checks := checkTargets(cmd.Context(), cfg)
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(checks); err != nil {
					return err
				}
			} else {
				printTargets(g.stdout, checks)
			}
			for _, c := range checks {
				if !c.Reachable || len(c.Problems) > 0 {
					return &silentError{ExitFailed}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks as JSON")
	return cmd
}

// checkTargets checks every target at once (each bounded by a timeout).
func checkTargets(ctx context.Context, cfg *config.Config) []targetCheck {
	names := sortedKeys(cfg.Targets)
	out := make([]targetCheck, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = checkTarget(ctx, cfg, n)
		}()
	}
	wg.Wait()
	return out
}

func checkTarget(ctx context.Context, cfg *config.Config, name string) targetCheck {
	t := cfg.Targets[name]
	c := targetCheck{Target: name, Driver: t.Driver, Engine: t.Docker, Stores: []string{}}
	for _, id := range cfg.DeployableIDs() {
		if n, _, ok := cfg.TargetFor(id); ok && n == name {
			c.Stores = append(c.Stores, id)
		}
	}
	if t.Driver == config.DriverProcess {
		c.Engine, c.Reachable = "local", true
		return c
	}
	if c.Engine == "" {
		c.Engine = "DOCKER_HOST"
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	e, err := swarm.Inspect(ctx, t.Docker)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.Reachable, c.Info = true, &e
	if t.Driver != config.DriverSwarm {
		return c
	}
	if e.Role != "manager" {
		c.Problems = append(c.Problems, fmt.Sprintf("not a swarm manager (swarm %s%s): serve must talk to a manager", e.Swarm, map[bool]string{true: ", " + e.Role}[e.Role != ""]))
		return c
	}
	if name == config.DefaultTarget {
		return c
	}
	n := 0
	for _, nd := range e.Nodes {
		if nd.Labels["region"] == name {
			n++
		}
	}
	if n == 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("no node is labelled region=%s: run docker node update --label-add region=%s NODE", name, name))
	}
	return c
}

func printTargets(w io.Writer, checks []targetCheck) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tDRIVER\tENGINE\tREACHABLE\tVERSION\tSWARM\tNODES\tSTORES")
	for _, c := range checks {
		reach, version, sw, nodes := "yes", "-", "-", "-"
		if !c.Reachable {
			reach = "no: " + c.Error
		}
		if e := c.Info; e != nil {
			version = e.Version + " (API " + e.API + ")"
			sw = e.Swarm
			if e.Role != "" {
				sw += "/" + e.Role
			}
			var ns []string
			for _, n := range e.Nodes {
				ns = append(ns, n.Hostname+"["+n.Role+","+n.State+labelList(n.Labels)+"]")
			}
			if len(ns) > 0 {
				nodes = strings.Join(ns, " ")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Target, c.Driver, c.Engine, reach, version, sw, nodes, strings.Join(c.Stores, ","))
	}
	tw.Flush()
	for _, c := range checks {
		for _, p := range c.Problems {
			fmt.Fprintf(w, "%s: %s\n", c.Target, p)
		}
	}
}

func labelList(l map[string]string) string {
	var out []string
	for _, k := range sortedKeys(l) {
		out = append(out, ","+k+"="+l[k])
	}
	return strings.Join(out, "")
}

// storeRegions maps store ids to their region when the config can be read
// from here (status and ps group by it); nil otherwise.
func storeRegions(g *globals) map[string]string {
	cfg, err := config.Load(g.dir, g.config)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for id, s := range cfg.Stores {
		out[id] = s.Region
		if n, _, ok := cfg.TargetFor(id); ok && n != s.Region {
			out[id] = s.Region + " (" + n + ")"
		}
	}
	return out
}

// regionOf is a store's region for display: "-" when unknown.
func regionOf(regions map[string]string, store string) string {
	if r := regions[store]; r != "" {
		return r
	}
	return "-"
}
