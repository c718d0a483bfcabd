package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver/docker"
	"github.com/slipway-dev/slipway/internal/export"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
)

type exportOptions struct {
	storeID  string
	output   string
	registry string
}

func newExportCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a store's live release as a docker-compose or Swarm stack file (no lock-in)",
		Long: `export writes what runs a store's live release without Slipway: its images
by digest, its env (secret values are never written: they go in an env_file of
placeholders, <store>.secrets.env beside the output, to fill in), the /data
volume (the same volume name the docker runtime uses, so the data comes along)
and the app ports, published on the host.

Images in the embedded store (slipway.local/…) are pulled from serve's
read-only registry: pass --image-registry with serve's --registry-listen address.`,
		Example: `  slipway export compose --store-id us            # ./docker-compose.yml
  slipway export stack --store-id us -o us-stack.yml
  slipway export compose --store-id us --image-registry 127.0.0.1:5050 -o -`,
	}
	cmd.AddCommand(newExportKindCmd(g, "compose", "docker-compose.yml", export.Compose),
		newExportKindCmd(g, "stack", "stack.yml", export.Stack))
	return cmd
}

func newExportKindCmd(g *globals, kind, def string, render func(export.Store) ([]byte, error)) *cobra.Command {
	o := &exportOptions{}
	cmd := &cobra.Command{
		Use:     kind,
		Short:   "Write the store's live release as a " + map[string]string{"compose": "docker-compose", "stack": "Swarm stack"}[kind] + " file",
		Example: "  slipway export " + kind + " --store-id us -o " + def,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.storeID == "" {
				return usagef("--store-id is required")
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			c, err := g.client(cfg)
			if err != nil {
				return err
			}
			st, err := exportStore(cmd.Context(), cfg, c, o)
			if err != nil {
				return err
			}
			return writeExport(g, o, st, render)
		},
	}
	cmd.Flags().StringVar(&o.storeID, "store-id", "", "the store to export")
	cmd.Flags().StringVarP(&o.output, "output", "o", def, `file to write ("-" for stdout)`)
	cmd.Flags().StringVar(&o.registry, "image-registry", "", "host[:port] to pull embedded-store images from (serve --registry-listen)")
	return cmd
}

// exportStore gathers the live release of the store and what its instances
// see, as the pipeline gives it to them.
func exportStore(ctx context.Context, cfg *config.Config, c *server.Client, o *exportOptions) (export.Store, error) {
	st := cfg.Store(o.storeID)
	if st == nil || !st.Deployable() {
		return export.Store{}, usagef("--store-id %s: not a deployable store of %s", o.storeID, cfg.File)
	}
	rs, err := c.Releases(ctx, o.storeID)
	if err != nil {
		return export.Store{}, err
	}
	var live *state.Release
	for _, r := range rs {
		if r.Status == state.StatusLive {
			live = r
			break
		}
	}
	if live == nil {
		return export.Store{}, fmt.Errorf("store %s has no live release to export: deploy it first", o.storeID)
	}
	runtimeEnv, err := c.Env(ctx, o.storeID)
	if err != nil {
		return export.Store{}, fmt.Errorf("reading the runtime env of %s: %w", o.storeID, err)
	}
	storeEnv := cfg.Env(o.storeID)
	maps.Copy(storeEnv, runtimeEnv)
	out := export.Store{Project: cfg.Project, Store: o.storeID, Region: st.Region, Release: live.ID, Commit: live.Commit,
		SecretsFile: o.storeID + ".secrets.env", DataVolume: docker.DataVolumeName(cfg.Project + "-" + o.storeID)}
	for _, s := range cfg.Chain(o.storeID) {
		out.Secrets = append(out.Secrets, s.Secrets...)
	}
	for _, app := range cfg.AppsFor(o.storeID) {
		im, ok := live.Images[app.ID]
		if !ok {
			continue
		}
		ref, err := exportRef(im, o.registry)
		if err != nil {
			return export.Store{}, err
		}
		env := maps.Clone(app.Env)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, storeEnv)
		env["SLIPWAY_STORE_ID"], env["SLIPWAY_APP"] = o.storeID, app.ID
		env["SLIPWAY_RELEASE"], env["SLIPWAY_COMMIT"] = live.ID, live.Commit
		env["PORT"], env["SLIPWAY_DATA_DIR"] = strconv.Itoa(app.Port), "/data"
		out.Apps = append(out.Apps, export.App{Name: app.ID, Image: ref, Port: app.Port, Env: env})
	}
	if len(out.Apps) == 0 {
		return export.Store{}, fmt.Errorf("release %s of %s has no image of the store's apps", live.ID, o.storeID)
	}
	return out, nil
}

// exportRef is the digest reference a compose engine pulls.
func exportRef(im state.Image, registry string) (string, error) {
	ref, err := name.ParseReference(im.Ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", im.Ref, err)
	}
	repo := ref.Context()
	if repo.RegistryStr() == pipeline.LayoutHost {
		if registry == "" {
			return "", usagef("image %s is in the embedded store: run serve with --registry-listen ADDR and pass --image-registry ADDR (or deploy with --registry)", im.Ref)
		}
		return registry + "/" + repo.RepositoryStr() + "@" + im.Digest, nil
	}
	return repo.Digest(im.Digest).String(), nil
}

// writeExport writes the file, and the secrets placeholder file beside it
// unless one is there already (it may hold the real values).
func writeExport(g *globals, o *exportOptions, st export.Store, render func(export.Store) ([]byte, error)) error {
	data, err := render(st)
	if err != nil {
		return err
	}
	dir := "."
	if o.output != "-" {
		dir = filepath.Dir(o.output)
	}
	if len(st.Secrets) > 0 {
		path := filepath.Join(dir, st.SecretsFile)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		switch {
		case errors.Is(err, os.ErrExist):
			fmt.Fprintf(g.stderr, "kept %s (secrets: %v)\n", path, st.Secrets)
		case err != nil:
			return fmt.Errorf("writing %s: %w", path, err)
		default:
			_, werr := f.Write(export.SecretsFile(st.Store, st.Secrets))
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				return fmt.Errorf("writing %s: %w", path, werr)
			}
			fmt.Fprintf(g.stderr, "wrote %s: fill in the values of %v\n", path, st.Secrets)
		}
	}
	if o.output == "-" {
		_, err := g.stdout.Write(data)
		return err
	}
	if err := atomicfile.WriteFile(o.output, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "wrote %s: release %s of %s\n", o.output, st.Release, st.Store)
	return nil
}
