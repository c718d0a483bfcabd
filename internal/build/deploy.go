package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// DeployDir is where production files are collected, relative to the composed app.
const DeployDir = ".deploy"

// EntrypointCallback runs before the main process when present in the app; it is
// shipped in .deploy at the same path.
const EntrypointCallback = ".slipway/entrypoint.sh"

// ArtifaktEntrypointCallback is used when the app has no EntrypointCallback;
// it is shipped in .deploy as EntrypointCallback.
const ArtifaktEntrypointCallback = ".artifakt/entrypoint.sh"

// Selection says which built files go to production.
type Selection struct {
	// Framework picks a preset: "next", "nuxt"; anything else is a plain app.
	Framework string
	// Include and Exclude are doublestar globs relative to the app; when either is
	// set they replace the preset.
	Include, Exclude []string
	// SourceDir names the app's source directory in messages (e.g.
	// apps/storefront-unified-nextjs); default the composed directory.
	SourceDir string
	// StartSet says the config or Procfile names how the app starts (or that
	// it is a configured static site): no start convention is looked for,
	// and no static site guessed.
	StartSet bool
}

// Production is the result of Collect.
type Production struct {
	// Dir is the .deploy directory.
	Dir string
	// Preset names the rule that selected the files: next, nuxt, globs,
	// plain or static (a detected static site: the directory holding its
	// index.html became .deploy, and nothing runs).
	Preset string
	// Stack is the detected stack (see DetectStack), "" when none.
	Stack string
	// Entrypoint is the preset's or stack's command, run from the image's working directory.
	Entrypoint []string
	// Env is what the stack's start needs in the image's env (e.g. PYTHONPATH).
	Env map[string]string
	// StartWhy says where Entrypoint came from, or why there is none.
	StartWhy string
	// Files counts regular files and symlinks; Bytes their size.
	Files int
	Bytes int64

	// shims are start scripts written to .deploy/ShimDir, by file name.
	shims map[string]string
}

// mapping copies the tree at src (relative to the app) to dst (relative to .deploy).
type mapping struct {
	src, dst string
	optional bool
}

// plainExcluded are never production files of a plain app.
var plainExcluded = []string{DeployDir, DeployDir + ".tmp", ".git", ".slipway", ".artifakt", "node_modules/.cache"}

// Collect (re)creates dir/.deploy with the production files of the built app in dir.
// Files are hard-linked from the build output where the file system allows it.
func Collect(dir string, sel Selection) (*Production, error) {
	p := &Production{Dir: filepath.Join(dir, DeployDir)}
	var maps []mapping
	var filter func(rel string) bool
	switch {
	case len(sel.Include) > 0 || len(sel.Exclude) > 0:
		p.Preset = "globs"
		for _, g := range append(append([]string{}, sel.Include...), sel.Exclude...) {
			if !doublestar.ValidatePattern(g) {
				return nil, fmt.Errorf("deploy glob %q is not valid", g)
			}
		}
		include := sel.Include
		if len(include) == 0 {
			include = []string{"**"}
		}
		maps = []mapping{{src: ".", dst: "."}}
		filter = func(rel string) bool {
			if first, _, _ := strings.Cut(rel, "/"); first == DeployDir || first == DeployDir+".tmp" {
				return false
			}
			in := false
			for _, g := range include {
				if ok, _ := doublestar.Match(g, rel); ok {
					in = true
					break
				}
			}
			for _, g := range sel.Exclude {
				if ok, _ := doublestar.Match(g, rel); ok {
					return false
				}
			}
			return in
		}
		if err := p.startConvention(dir, sel); err != nil {
			return nil, err
		}
	case sel.Framework == "next":
		p.Preset = "next"
		nm, err := nextMappings(dir, sel.SourceDir)
		if err != nil {
			return nil, err
		}
		maps = nm.maps
		p.Entrypoint = []string{"node", ShimDir + "/next-server.cjs"}
		p.shims = map[string]string{"next-server.cjs": nextShim(nm.server)}
	case sel.Framework == "nuxt":
		p.Preset = "nuxt"
		if st, err := os.Stat(filepath.Join(dir, ".output/server/index.mjs")); err != nil || st.IsDir() {
			return nil, fmt.Errorf("nuxt preset: %s/.output/server/index.mjs not found: did the build run `nuxt build`?", dir)
		}
		maps = []mapping{{src: ".output", dst: ".output"}}
		p.Entrypoint = []string{"node", ShimDir + "/nuxt-server.mjs"}
		p.shims = map[string]string{"nuxt-server.mjs": nuxtShim}
	default:
		p.Preset = "plain"
		maps = []mapping{{src: ".", dst: "."}}
		filter = plainFilter
		if err := p.startConvention(dir, sel); err != nil {
			return nil, err
		}
		if d := staticDir(dir); len(p.Entrypoint) == 0 && !sel.StartSet && d != "" {
			p.Preset, p.StartWhy = "static", "static site: "+path.Join(d, "index.html")+" and no start command, so the router serves "+d
			maps = []mapping{{src: d, dst: "."}}
		}
	}
	for _, cb := range []string{EntrypointCallback, ArtifaktEntrypointCallback} {
		if p.Preset == "static" {
			break // nothing runs, so nothing runs first
		}
		if _, err := os.Stat(filepath.Join(dir, cb)); err == nil {
			maps = append(maps, mapping{src: cb, dst: EntrypointCallback})
			break
		}
	}
	tmp := p.Dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, err
	}
	for _, m := range maps {
		if err := p.copyTree(dir, tmp, m, filter); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
	}
	if err := p.writeShims(tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, p.Dir); err != nil {
		return nil, err
	}
	return p, nil
}

// plainFilter keeps every file of a plain app but plainExcluded.
func plainFilter(rel string) bool {
	for _, x := range plainExcluded {
		if rel == x || strings.HasPrefix(rel, x+"/") {
			return false
		}
	}
	return true
}

// startConvention fills Stack, Entrypoint, Env and StartWhy from the
// detected stack's convention (StartConvention). An app with no stack files
// gets Node's (a bare server.js runs with node).
func (p *Production) startConvention(dir string, sel Selection) error {
	d, err := DetectStack(dir)
	if err != nil {
		return err
	}
	p.Stack = d.Stack
	stack := d.Stack
	if stack == "" || stack == StackStatic {
		stack = StackNode
	}
	st := StartConvention(dir, stack)
	p.Env = st.Env
	if sel.StartSet {
		p.StartWhy = "the config or Procfile names the start command"
		return nil
	}
	p.Entrypoint, p.StartWhy = st.Command, st.Why
	return nil
}

func (p *Production) copyTree(appDir, deployDir string, m mapping, filter func(string) bool) error {
	srcRoot := filepath.Join(appDir, filepath.FromSlash(m.src))
	st, err := os.Lstat(srcRoot)
	if errors.Is(err, fs.ErrNotExist) && m.optional {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return p.copyOne(srcRoot, filepath.Join(deployDir, filepath.FromSlash(m.dst)), st)
	}
	return filepath.WalkDir(srcRoot, func(src string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(srcRoot, src)
		rel = filepath.ToSlash(rel)
		appRel := path.Join(m.src, rel)
		if rel != "." && filter != nil && !filter(appRel) {
			if d.IsDir() && !dirMayMatch(filter, appRel) {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				return nil
			}
		}
		dst := filepath.Join(deployDir, filepath.FromSlash(path.Join(m.dst, rel)))
		info, err := d.Info()
		if err != nil {
			return err
		}
		return p.copyOne(src, dst, info)
	})
}

// dirMayMatch is conservative: directories excluded by a plain rule are skipped
// whole; with globs a directory must be walked, since "a/**/b" can match below it.
func dirMayMatch(filter func(string) bool, rel string) bool {
	for _, x := range plainExcluded {
		if rel == x {
			return false
		}
	}
	return rel != DeployDir && rel != DeployDir+".tmp"
}

func (p *Production) copyOne(src, dst string, info fs.FileInfo) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case info.IsDir():
		if err := os.Mkdir(dst, info.Mode().Perm()|0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		p.Files++
		return os.Symlink(target, dst)
	case info.Mode().IsRegular():
		p.Files++
		p.Bytes += info.Size()
		if err := os.Link(src, dst); err == nil {
			return nil
		}
		return copyFile(src, dst, info.Mode())
	}
	return fmt.Errorf("%s: unsupported file type %s", src, info.Mode().Type())
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode.Perm()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
