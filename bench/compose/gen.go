package main

import (
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The generated monorepo: two base apps, a store tree of templates and deployable
// stores with overrides at both levels. Everything is derived from one seeded RNG,
// so the same seed and sizes give byte-identical repos.

const (
	largeFiles = 8 // per app, 64–256 KiB
	emptyFiles = 6 // per app
	execFiles  = 6 // per app, mode 0755, under scripts/
	spaceFiles = 6 // per app, names with spaces
	maxDepth   = 6 // directory levels below the app
)

// Overrides per store layer: existing base files replaced, and files only the store has.
var overrideCounts = map[string]struct{ replace, add int }{
	"brand/web": {24, 3}, "brand/api": {10, 1},
	"child/web": {16, 2}, "child/api": {6, 1},
}

var words = strings.Fields(`alpha bravo cart checkout product price banner hero footer header
	nav menu search filter facet review rating wishlist account order invoice
	shipping payment promo coupon locale currency theme layout grid card modal
	drawer toast button input select badge avatar icon image gallery slider
	tabs panel table chart stats report export import sync queue worker cache
	token session auth user admin store brand region catalog inventory stock`)

type appModel struct {
	ID        string
	Path      string // repo-relative
	Framework string
	Files     []string // paths relative to the app, sorted
	Dirs      []string // every directory below the app that holds files, sorted
	Plain     []string // ordinary small text files: candidates for the one-file change
}

type storeModel struct {
	ID        string
	Parent    string
	Template  bool
	Framework string // set only where the config sets it
	Dir       string // repo-relative
	// Files lists, per app folder, the paths this store layer has (relative to the app).
	Files map[string][]string
}

type model struct {
	Root    string
	Apps    []*appModel
	Stores  []*storeModel // config order
	byID    map[string]*storeModel
	Target  string // repo-relative path of the base file changed in step c
	Bytes   int64  // source bytes written
	NFiles  int    // source files written
	Largest int
}

type generator struct {
	r    *rand.Rand
	m    *model
	word func() string
}

// generate writes the monorepo below root and returns what it wrote.
func generate(root string, seed uint64, filesPerApp int) (*model, error) {
	if filesPerApp < largeFiles+emptyFiles+execFiles+spaceFiles+50 {
		return nil, fmt.Errorf("-files %d is too small (min %d)", filesPerApp, largeFiles+emptyFiles+execFiles+spaceFiles+50)
	}
	r := rand.New(rand.NewPCG(seed, 0x5a17ba7))
	g := &generator{r: r, m: &model{Root: root, byID: map[string]*storeModel{}}}
	g.word = func() string { return words[r.IntN(len(words))] }

	web := &appModel{ID: "web", Path: "apps/web", Framework: "next"}
	api := &appModel{ID: "api", Path: "apps/api"}
	g.m.Apps = []*appModel{web, api}
	tops := map[string][]string{
		"web": {"components", "pages", "lib", "styles", "public", "hooks", "utils", "config", "locales", "tests", "scripts"},
		"api": {"src", "routes", "services", "models", "middleware", "config", "lib", "tests", "scripts", "migrations", "public"},
	}
	for _, a := range g.m.Apps {
		if err := g.baseApp(a, tops[a.ID], filesPerApp); err != nil {
			return nil, err
		}
	}

	// 4 brands: three templates with 5 deployable children each, and one deployable
	// brand with 4 deployable children: 20 deployable stores, two levels deep.
	brands := []struct {
		id, prefix string
		template   bool
		children   []string
	}{
		{"brand-a", "a", true, []string{"us", "eu", "uk", "de", "jp"}},
		{"brand-b", "b", true, []string{"us", "eu", "uk", "de", "jp"}},
		{"brand-c", "c", true, []string{"us", "eu", "uk", "de", "jp"}},
		{"brand-d", "d", false, []string{"us", "eu", "uk", "de"}},
	}
	for _, b := range brands {
		bs := &storeModel{ID: b.id, Template: b.template, Framework: "next", Dir: "apps/stores/" + b.id}
		g.addStore(bs)
		if err := g.storeLayer(bs, "brand"); err != nil {
			return nil, err
		}
		for _, c := range b.children {
			cs := &storeModel{ID: b.prefix + "-" + c, Parent: b.id, Dir: bs.Dir + "/stores/" + b.prefix + "-" + c}
			g.addStore(cs)
			if err := g.storeLayer(cs, "child"); err != nil {
				return nil, err
			}
		}
	}

	// The file changed in step c: a plain web file that no store overrides.
	overridden := map[string]bool{}
	for _, s := range g.m.Stores {
		for _, p := range s.Files["web"] {
			overridden[p] = true
		}
	}
	var cands []string
	for _, p := range web.Plain {
		if !overridden[p] {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("no web file is free of overrides")
	}
	g.m.Target = web.Path + "/" + cands[r.IntN(len(cands))]

	if err := g.writeConfig(); err != nil {
		return nil, err
	}
	return g.m, nil
}

func (g *generator) addStore(s *storeModel) {
	s.Files = map[string][]string{}
	g.m.Stores = append(g.m.Stores, s)
	g.m.byID[s.ID] = s
}

func smallSize(r *rand.Rand) int {
	// 0.5–8 KiB, skewed towards small (mean ≈ 3.5 KiB); with the few large files the mean is ≈ 4 KiB.
	return 512 + int(7680*math.Pow(r.Float64(), 1.5))
}

func (g *generator) baseApp(a *appModel, tops []string, n int) error {
	r := g.r
	dirs := []string{""}
	dirs = append(dirs, tops...)
	nDirs := max(len(tops)+1, n/12)
	for len(dirs) < nDirs {
		var parent string
		if r.IntN(2) == 0 {
			parent = dirs[len(dirs)-1-r.IntN(min(20, len(dirs)-1))] // recent: grows deep chains
		} else {
			parent = dirs[1+r.IntN(len(dirs)-1)]
		}
		if strings.Count(parent, "/")+1 >= maxDepth {
			continue
		}
		dirs = append(dirs, parent+"/"+g.word()+"-"+strconv.Itoa(len(dirs)))
	}
	exts := map[string][]string{
		"web": {".tsx", ".tsx", ".tsx", ".ts", ".ts", ".js", ".css", ".json", ".md", ".svg"},
		"api": {".ts", ".ts", ".ts", ".js", ".js", ".json", ".sql", ".md", ".yaml"},
	}[a.ID]
	seen := map[string]bool{}
	for i := range n {
		var rel string
		mode := fs.FileMode(0o644)
		var data []byte
		plain := false
		switch {
		case i == 0:
			rel = "package.json"
			data = g.text(a.Path+"/"+rel, smallSize(r))
		case i <= largeFiles:
			dir := "public"
			if i%2 == 0 {
				dir = dirs[1+r.IntN(len(dirs)-1)]
			}
			rel = fmt.Sprintf("%s/asset-%d%s", dir, i, []string{".png", ".woff2", ".jpg", ".bin"}[i%4])
			data = g.binary(64<<10 + r.IntN(192<<10+1))
		case i <= largeFiles+emptyFiles:
			name := fmt.Sprintf("empty-%d.ts", i)
			if i%2 == 0 {
				name = ".gitkeep"
			}
			rel = path.Join(dirs[r.IntN(len(dirs))], name)
			data = []byte{}
		case i <= largeFiles+emptyFiles+execFiles:
			rel = fmt.Sprintf("scripts/%s-%d.sh", g.word(), i)
			mode = 0o755
			data = append([]byte("#!/bin/sh\nset -eu\n"), g.text(a.Path+"/"+rel, smallSize(r))...)
		case i <= largeFiles+emptyFiles+execFiles+spaceFiles:
			w := g.word()
			rel = path.Join(dirs[r.IntN(len(dirs))], fmt.Sprintf("%s%s copy %d.md", strings.ToUpper(w[:1]), w[1:], i))
			data = g.text(a.Path+"/"+rel, smallSize(r))
		default:
			rel = path.Join(dirs[r.IntN(len(dirs))], fmt.Sprintf("%s-%d%s", g.word(), i, exts[r.IntN(len(exts))]))
			data = g.text(a.Path+"/"+rel, smallSize(r))
			plain = true
		}
		if seen[rel] {
			return fmt.Errorf("generator: duplicate path %s", rel) // cannot happen: names carry i
		}
		seen[rel] = true
		if err := g.write(path.Join(a.Path, rel), data, mode); err != nil {
			return err
		}
		a.Files = append(a.Files, rel)
		if plain {
			a.Plain = append(a.Plain, rel)
		}
	}
	sort.Strings(a.Files)
	sort.Strings(a.Plain)
	a.Dirs = dirsOf(a.Files)
	return nil
}

// storeLayer writes a store's overrides: some base files replaced (at whatever
// depth they are), and a few files only the store has, one in a new directory.
func (g *generator) storeLayer(s *storeModel, level string) error {
	r := g.r
	for _, a := range g.m.Apps {
		c := overrideCounts[level+"/"+a.ID]
		idx := r.Perm(len(a.Files))[:c.replace]
		slices.Sort(idx)
		for _, i := range idx {
			rel := a.Files[i]
			src := filepath.Join(g.m.Root, filepath.FromSlash(a.Path+"/"+rel))
			fi, err := os.Stat(src)
			if err != nil {
				return err
			}
			var data []byte
			switch {
			case fi.Size() == 0:
				data = []byte("// " + s.ID + "\n")
			case fi.Size() > 32<<10:
				data = g.binary(int(fi.Size()))
			default:
				data = g.text(s.Dir+"/"+a.ID+"/"+rel, smallSize(r))
			}
			if err := g.write(path.Join(s.Dir, a.ID, rel), data, fi.Mode().Perm()); err != nil {
				return err
			}
			s.Files[a.ID] = append(s.Files[a.ID], rel)
		}
		for j := range c.add {
			dir := a.Dirs[r.IntN(len(a.Dirs))]
			if j == 0 {
				dir = path.Join(dir, s.ID+"-only", "parts")
			}
			rel := path.Join(dir, fmt.Sprintf("%s-%s-%d.ts", s.ID, g.word(), j))
			if err := g.write(path.Join(s.Dir, a.ID, rel), g.text(s.Dir+"/"+a.ID+"/"+rel, smallSize(r)), 0o644); err != nil {
				return err
			}
			s.Files[a.ID] = append(s.Files[a.ID], rel)
		}
		sort.Strings(s.Files[a.ID])
	}
	return nil
}

func (g *generator) write(rel string, data []byte, mode fs.FileMode) error {
	p := filepath.Join(g.m.Root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(p, mode); err != nil { // independent of the umask
		return err
	}
	g.m.Bytes += int64(len(data))
	g.m.NFiles++
	g.m.Largest = max(g.m.Largest, len(data))
	return nil
}

// text is size bytes of source-like lines, unique to the file (its path heads it).
func (g *generator) text(header string, size int) []byte {
	b := make([]byte, 0, size+16)
	b = append(b, "// "+header+"\n"...)
	col := 0
	for len(b) < size {
		w := g.word()
		if col+len(w) > 72 {
			b = append(b, '\n')
			col = 0
		} else if col > 0 {
			b = append(b, ' ')
			col++
		}
		b = append(b, w...)
		col += len(w)
	}
	b = b[:size]
	if size > 0 {
		b[size-1] = '\n'
	}
	return b
}

func (g *generator) binary(size int) []byte {
	b := make([]byte, size+8)
	for i := 0; i < size; i += 8 {
		v := g.r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b[:size]
}

func dirsOf(files []string) []string {
	set := map[string]bool{"": true}
	for _, f := range files {
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			set[d] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

func (g *generator) writeConfig() error {
	var b strings.Builder
	b.WriteString("# Generated by bench/compose: a synthetic multi-store monorepo.\nproject: bench\napps:\n")
	for _, a := range g.m.Apps {
		fmt.Fprintf(&b, "  - id: %s\n    path: %s\n", a.ID, a.Path)
		if a.Framework != "" {
			fmt.Fprintf(&b, "    framework: %s\n", a.Framework)
		}
	}
	b.WriteString("stores:\n")
	regions := []string{"us-east-1", "eu-west-1", "eu-central-1", "ap-northeast-1"}
	for i, s := range g.m.Stores {
		var kv []string
		if s.Template {
			kv = append(kv, "template: true")
		} else {
			kv = append(kv, "projectName: "+s.ID, "region: "+regions[i%len(regions)])
		}
		if s.Framework != "" {
			kv = append(kv, "framework: "+s.Framework)
		}
		fmt.Fprintf(&b, "  %s: {%s}\n", s.ID, strings.Join(kv, ", "))
	}
	if err := os.WriteFile(filepath.Join(g.m.Root, "slipway.yaml"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(g.m.Root, ".gitignore"), []byte(".out/\n"), 0o644)
}

// chain returns the store and its ancestors, root first.
func (m *model) chain(id string) []*storeModel {
	var c []*storeModel
	for s := m.byID[id]; s != nil; s = m.byID[s.Parent] {
		c = append(c, s)
	}
	slices.Reverse(c)
	return c
}

func (m *model) framework(id string) string {
	c := m.chain(id)
	for i := len(c) - 1; i >= 0; i-- {
		if c[i].Framework != "" {
			return c[i].Framework
		}
	}
	return ""
}

// appsFor mirrors the documented rule: the store's framework's base app plus every app without one.
func (m *model) appsFor(id string) []*appModel {
	fw := m.framework(id)
	var out []*appModel
	for _, a := range m.Apps {
		if a.Framework == "" || a.Framework == fw {
			out = append(out, a)
		}
	}
	return out
}

func (m *model) deployable() []string {
	var out []string
	for _, s := range m.Stores {
		if !s.Template {
			out = append(out, s.ID)
		}
	}
	sort.Strings(out)
	return out
}

// expected is the composed tree of one store, computed independently of slipway:
// path below .out/<store> -> repo-relative source file of the nearest layer.
func (m *model) expected(id string) map[string]string {
	out := map[string]string{}
	for _, a := range m.appsFor(id) {
		for _, rel := range a.Files {
			out[a.ID+"/"+rel] = a.Path + "/" + rel
		}
		for _, s := range m.chain(id) {
			for _, rel := range s.Files[a.ID] {
				out[a.ID+"/"+rel] = s.Dir + "/" + a.ID + "/" + rel
			}
		}
	}
	return out
}

// usesTarget lists the deployable stores whose composition includes the changed base file.
func (m *model) usesTarget() map[string]bool {
	out := map[string]bool{}
	for _, id := range m.deployable() {
		for _, src := range m.expected(id) {
			if src == m.Target {
				out[id] = true
			}
		}
	}
	return out
}
