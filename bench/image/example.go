package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/config"
)

// buildExample does what `slipway build` does before packing, for one
// store/app: compose the store into work/compose (not the example's own
// .out), run the app's build there (the package.json build script: node
// scripts/build.js), collect the production files with the app's preset
// (next), and copy the .deploy to dst. None of this is timed.
func buildExample(ctx context.Context, exampleDir, storeID, appID, work, dst string) (*build.Production, error) {
	cfg, err := config.Load(exampleDir, "")
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", exampleDir, err)
	}
	app := cfg.App(appID)
	if app == nil {
		return nil, fmt.Errorf("%s has no app %q", cfg.File, appID)
	}
	st := cfg.Store(storeID)
	if st == nil {
		return nil, fmt.Errorf("%s has no store %q", cfg.File, storeID)
	}
	composed, err := compose.New(cfg, compose.WithOutDir(filepath.Join(work, "compose"))).Compose(ctx, []string{storeID})
	if err != nil {
		return nil, fmt.Errorf("composing %s: %w", storeID, err)
	}
	var dir string
	for _, sr := range composed {
		for _, ar := range sr.Apps {
			if sr.Store == storeID && ar.App == appID {
				dir = ar.Dir
			}
		}
	}
	if dir == "" {
		return nil, fmt.Errorf("store %s has no app %s after composing", storeID, appID)
	}
	env := maps.Clone(app.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, cfg.Env(storeID))
	var out bytes.Buffer
	runner := &build.Runner{Jobs: 1, Out: &out, Verbose: true, Commit: "bench"}
	res := runner.Run(ctx, []build.Task{{Store: storeID, App: appID, Dir: dir, Command: app.Build, Env: env}})
	if res[0].Err != nil {
		return nil, fmt.Errorf("building %s/%s: %w\n%s", storeID, appID, res[0].Err, out.String())
	}
	prod, err := build.Collect(dir, build.Selection{Framework: app.Framework, Include: app.Deploy.Include, Exclude: app.Deploy.Exclude})
	if err != nil {
		return nil, err
	}
	if err := copyTree(prod.Dir, dst); err != nil {
		return nil, fmt.Errorf("copying %s: %w", prod.Dir, err)
	}
	return prod, nil
}

// copyTree copies directories, regular files (with their mode) and symlinks.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case info.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, info.Mode().Type())
		}
	})
}

// treeSize counts regular files and their bytes, and symlinks.
func treeSize(dir string) (files int, bytes int64, links int, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			links++
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			files++
			bytes += info.Size()
		}
		return nil
	})
	return
}
