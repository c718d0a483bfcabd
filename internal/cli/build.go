package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
)

// registryOptions are the flags that choose and authenticate the image store.
type registryOptions struct {
	registry      string
	insecure      bool
	username      string
	passwordStdin bool
	argvPassword  string    // --cloud-password (Alokai): accepted with a warning
	warn          io.Writer // where that warning goes
}

func (r *registryOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.registry, "registry", "", "registry to push to, host[:port][/prefix] (default: the config's `registry`, else the embedded image store)")
	f.BoolVar(&r.insecure, "insecure-registry", false, "allow plain HTTP to a registry that is not on loopback")
	f.StringVar(&r.username, "registry-username", "", "registry user name (the password comes from SLIPWAY_REGISTRY_PASSWORD or --registry-password-stdin, never a flag)")
	f.BoolVar(&r.passwordStdin, "registry-password-stdin", false, "read the registry password from standard input")
}

// bindAlokai adds Alokai's CI flags as aliases, so a workflow switches by
// changing one word: --docker-registry-url (--registry), --cloud-username
// (--registry-username) and --cloud-password, with CLI_CLOUD_USERNAME and
// CLI_CLOUD_PASSWORD in the environment.
func (r *registryOptions) bindAlokai(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.registry, "docker-registry-url", "", "Alokai alias of --registry")
	f.StringVar(&r.username, "cloud-username", "", "Alokai alias of --registry-username (also CLI_CLOUD_USERNAME)")
	f.StringVar(&r.argvPassword, "cloud-password", "", "Alokai's registry password flag: works, but argv is visible to every user of the machine; prefer CLI_CLOUD_PASSWORD")
	r.warn = cmd.ErrOrStderr()
}

// registryHost is the registry images go to, "" for the embedded store.
func (r *registryOptions) registryHost(cfg *config.Config) string {
	host := strings.TrimPrefix(strings.TrimPrefix(r.registry, "https://"), "http://")
	if host == "" && cfg != nil {
		host = cfg.Registry
	}
	return strings.TrimSuffix(host, "/")
}

// credentials are the registry user and password from the flags and environment.
func (r *registryOptions) credentials(stdin io.Reader) (string, string, error) {
	user, password := r.username, os.Getenv("SLIPWAY_REGISTRY_PASSWORD")
	if user == "" {
		user = os.Getenv("CLI_CLOUD_USERNAME")
	}
	if password == "" {
		password = os.Getenv("CLI_CLOUD_PASSWORD")
	}
	if r.argvPassword != "" {
		if r.warn != nil {
			fmt.Fprintln(r.warn, "warning: --cloud-password puts the password in argv, which every user of this machine can read (ps, /proc); use CLI_CLOUD_PASSWORD or --registry-password-stdin")
		}
		password = r.argvPassword
	}
	if r.passwordStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", "", usagef("--registry-password-stdin: nothing on standard input")
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if password != "" && user == "" {
		return "", "", usagef("a registry password was given without --registry-username (or SLIPWAY_REGISTRY_USERNAME, --cloud-username, CLI_CLOUD_USERNAME)")
	}
	return user, password, nil
}

// store opens the image store the flags and config choose.
func (r *registryOptions) store(g *globals, cfg *config.Config, stdin io.Reader, progress func(registry.Progress)) (pipeline.ImageStore, string, error) {
	host := r.registryHost(cfg)
	if host == "" {
		if err := compose.IgnoreDir(g.dataDir(cfg)); err != nil {
			return nil, "", err
		}
		dir := filepath.Join(g.dataDir(cfg), "images")
		l, err := registry.OpenLayout(dir)
		if err != nil {
			return nil, "", err
		}
		return pipeline.LayoutStore{Layout: l}, "embedded image store " + dir, nil
	}
	opts := []registry.RemoteOption{registry.WithInsecure(r.insecure)}
	user, password, err := r.credentials(stdin)
	if err != nil {
		return nil, "", err
	}
	if user != "" {
		opts = append(opts, registry.WithBasicAuth(user, password))
	}
	if progress != nil {
		opts = append(opts, registry.WithProgress(progress))
	}
	return pipeline.RemoteStore{Remote: registry.NewRemote(opts...), Registry: strings.TrimSuffix(host, "/"), Insecure: r.insecure}, "registry " + host, nil
}

type buildOptions struct {
	storeIDs   []string
	all        bool
	jobs       int
	allowDirty bool
	asJSON     bool
	explain    bool
	reg        registryOptions
}

func newBuildCmd(g *globals) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Compose, build, pack and publish an image per store and app, tagged with the commit",
		Long: `build composes the selected stores, then for each store's app:

  - runs its build in .out/<store>/<app>: a .slipway/build.sh callback if present,
    else the app's configured build command, else the package.json "build"
    script with the package manager its lockfile names (installing first);
  - collects the production files into .deploy (next, nuxt or plain presets, or
    deploy.include/exclude globs);
  - packs them into an OCI image without a Docker daemon, reproducibly;
  - publishes it as <registry>/<projectName>/<app>:<commit-sha>.

An app whose inputs (composed files, build settings, base image) match an image
already published is neither rebuilt nor re-pushed: it is "up to date".
Builds run in parallel; a failing build fails only its store, and the command
exits 1 after the others finish.`,
		Example: `  slipway build --all
  slipway build --store-id us --registry registry.example.com
  echo "$TOKEN" | slipway build --all --registry ghcr.io/acme --registry-username bot --registry-password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ids, err := selectStores(cfg, o.storeIDs, o.all)
			if err != nil {
				return err
			}
			if o.explain {
				return runExplain(cmd.Context(), g, cfg, ids, o.asJSON)
			}
			log := newLiveOutput(g.stderr)
			defer log.Close()
			store, where, err := o.reg.store(g, cfg, cmd.InOrStdin(), log.Progress)
			if err != nil {
				return err
			}
			fmt.Fprintf(log, "building %d store(s) into the %s\n", len(ids), where)
			res, err := pipeline.Build(cmd.Context(), pipeline.BuildOptions{Config: cfg, Stores: ids, Store: store,
				Jobs: o.jobs, Verbose: g.verbose, AllowDirty: o.allowDirty, Log: log})
			if err != nil {
				return err
			}
			if o.asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res.Images); err != nil {
					return err
				}
			} else {
				printBuildSummary(g.stdout, res)
			}
			if res.Failed() {
				return &silentError{ExitFailed}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.storeIDs, "store-id", nil, "store to build (repeatable)")
	f.BoolVar(&o.all, "all", false, "build every deployable store")
	f.IntVar(&o.jobs, "jobs", 0, "builds run at once (default: number of cores)")
	f.BoolVar(&o.allowDirty, "allow-dirty", false, "build a working tree with uncommitted changes (tag <sha>-dirty-<hash>)")
	f.BoolVar(&o.asJSON, "json", false, "print the images as JSON")
	f.BoolVar(&o.explain, "explain", false, "print what each app's build would run and why (detected stack, files, commands, images, cache keys), without building")
	o.reg.bind(cmd)
	return cmd
}

func printBuildSummary(w io.Writer, res *pipeline.BuildResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tAPP\tRESULT\tIMAGE\tTIME")
	for _, im := range res.Images {
		result := "built"
		switch {
		case im.Err != nil:
			result = "FAILED"
		case im.UpToDate:
			result = "up to date"
		}
		img := im.Ref
		if im.Digest != "" {
			img += "@" + im.Digest[:min(len(im.Digest), 19)]
		}
		if im.Err != nil {
			img = firstLine(im.Err.Error())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", im.Store, im.App, result, img, im.Duration.Round(10*time.Millisecond))
	}
	tw.Flush()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
