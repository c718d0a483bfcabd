package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Cache keeps, under one directory (the state dir's cache/), what makes a
// rebuild fast without changing what it produces:
//
//   - deps/<app>/<key>/node_modules: an app's installed dependencies, keyed by
//     its lockfile, the package manager's command and the Node.js version;
//     the install reruns only when that key changes. A hit is hard-linked
//     into the composed app (no copy of the bytes).
//   - pm/<manager>: the package manager's own download cache.
//   - fw/<store>/<app>/<dir>: the framework's build cache (.next/cache),
//     moved out after a build and back before the next one.
//   - deps/<app>/<key>/next-trace: a Next.js app's standalone trace
//     analyses of that node_modules (nexttrace.cjs), shared by its stores.
//
// A nil *Cache caches nothing.
type Cache struct {
	Dir string

	mu       sync.Mutex
	keyLocks map[string]*sync.Mutex
	nodeOnce sync.Once
	nodeVer  string
	hookOnce sync.Once
	hookPath string
	hookErr  error
}

// FrameworkCaches are the build caches kept per store and app, relative to the app.
var FrameworkCaches = []string{".next/cache"}

// completeMarker marks a dependency cache entry written to the end.
const completeMarker = ".slipway-complete"

func (c *Cache) lockKey(k string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keyLocks == nil {
		c.keyLocks = map[string]*sync.Mutex{}
	}
	l, ok := c.keyLocks[k]
	if !ok {
		l = &sync.Mutex{}
		c.keyLocks[k] = l
	}
	return l
}

// nodeVersion is `node --version` of the build env's PATH ("" without node).
func (c *Cache) nodeVersion(env []string) string {
	c.nodeOnce.Do(func() {
		cmd := exec.Command("node", "--version")
		cmd.Env = env
		if p := lookPathIn("node", env); p != "" {
			cmd.Path = p
		}
		if out, err := cmd.Output(); err == nil {
			c.nodeVer = strings.TrimSpace(string(out))
		}
	})
	return c.nodeVer
}

// lookPathIn finds prog on the PATH of env.
func lookPathIn(prog string, env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range filepath.SplitList(v) {
				p := filepath.Join(d, prog)
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
					return p
				}
			}
		}
	}
	return ""
}

// depsKey identifies an install: the lockfile's bytes, the install command
// and the Node.js version. "" when the app has no lockfile.
func (c *Cache) depsKey(dir string, s Step, env []string) (string, error) {
	h := sha256.New()
	found := false
	for _, f := range lockfiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
		found = true
	}
	if !found {
		return "", nil
	}
	argv, _ := json.Marshal(s.Argv)
	fmt.Fprintf(h, "%s\x00%s\x00", argv, c.nodeVersion(env))
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

var lockfiles = []string{"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"}

func (c *Cache) depsDir(app, key string) string {
	return filepath.Join(c.Dir, "deps", app, key)
}

// restoreDeps links a cached node_modules into dir; false on a miss.
func (c *Cache) restoreDeps(app, key, dir string) (bool, error) {
	src := c.depsDir(app, key)
	if _, err := os.Stat(filepath.Join(src, completeMarker)); err != nil {
		return false, nil
	}
	dst := filepath.Join(dir, "node_modules")
	if err := os.RemoveAll(dst); err != nil {
		return false, err
	}
	if err := linkTree(filepath.Join(src, "node_modules"), dst); err != nil {
		os.RemoveAll(dst)
		return false, fmt.Errorf("linking cached node_modules: %w", err)
	}
	return true, nil
}

// saveDeps keeps dir's freshly installed node_modules under key. It is
// written beside and renamed into place, so a crash leaves no half entry.
func (c *Cache) saveDeps(app, key, dir string) error {
	final := c.depsDir(app, key)
	if _, err := os.Stat(filepath.Join(final, completeMarker)); err == nil {
		return nil
	}
	src := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(src); err != nil {
		return nil // nothing installed
	}
	tmp := final + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := linkTree(src, filepath.Join(tmp, "node_modules")); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	os.RemoveAll(final)
	// Older keys of this app go: a lockfile change makes them dead weight.
	if olds, _ := filepath.Glob(filepath.Join(c.Dir, "deps", app, "*")); len(olds) > 0 {
		for _, o := range olds {
			if o != tmp {
				os.RemoveAll(o)
			}
		}
	}
	return os.Rename(tmp, final)
}

// fwDir is where store/app's framework cache rel is kept.
func (c *Cache) fwDir(store, app, rel string) string {
	return filepath.Join(c.Dir, "fw", store, app, filepath.FromSlash(rel))
}

// restoreFramework moves kept framework caches back into the app before a build.
func (c *Cache) restoreFramework(store, app, dir string) {
	for _, rel := range FrameworkCaches {
		src := c.fwDir(store, app, rel)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		os.RemoveAll(dst)
		if os.MkdirAll(filepath.Dir(dst), 0o755) == nil {
			os.Rename(src, dst)
		}
	}
}

// saveFramework moves the app's framework caches out after a build: the
// next compose would delete them from .out, and no image includes them.
func (c *Cache) saveFramework(store, app, dir string) error {
	for _, rel := range FrameworkCaches {
		src := filepath.Join(dir, filepath.FromSlash(rel))
		if st, err := os.Stat(src); err != nil || !st.IsDir() {
			continue
		}
		dst := c.fwDir(store, app, rel)
		os.RemoveAll(dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("keeping %s: %w", rel, err)
		}
	}
	return nil
}

// pmEnv points the package managers' download caches under the cache dir,
// unless the environment already chose one. pnpm's store is set only for an
// app with a pnpm lockfile in dir: npm warns on every install about a
// store-dir setting it does not know.
func (c *Cache) pmEnv(base []string, dir string) map[string]string {
	has := map[string]bool{}
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		has[strings.ToLower(k)] = true
	}
	if _, err := os.Stat(filepath.Join(dir, "pnpm-lock.yaml")); err != nil {
		has["npm_config_store_dir"] = true
	}
	out := map[string]string{}
	for k, sub := range map[string]string{"npm_config_cache": "npm", "YARN_CACHE_FOLDER": "yarn", "npm_config_store_dir": "pnpm"} {
		if !has[strings.ToLower(k)] {
			out[k] = filepath.Join(c.Dir, "pm", sub)
		}
	}
	return out
}

// linkTree recreates the tree at src at dst, hard-linking regular files and
// copying symlinks; directories keep their modes.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case info.Mode().IsRegular():
			if err := os.Link(p, target); err != nil {
				return copyFile(p, target, info.Mode())
			}
			return nil
		}
		return nil // sockets and the like are not dependencies
	})
}
