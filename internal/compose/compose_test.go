package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
)

// tree is a test fixture: path -> content. A trailing "/" makes a directory,
// "->target" a symlink, and a "#x" suffix on the path an executable file.
type tree map[string]string

func (tr tree) write(t *testing.T, root string) {
	t.Helper()
	keys := make([]string, 0, len(tr))
	for k := range tr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := tr[k]
		mode := fs.FileMode(0o644)
		p := k
		if strings.HasSuffix(p, "#x") {
			p, mode = strings.TrimSuffix(p, "#x"), 0o755
		}
		full := filepath.Join(root, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			must(t, os.MkdirAll(full, 0o755))
			continue
		}
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		if target, ok := strings.CutPrefix(v, "->"); ok {
			os.Remove(full)
			must(t, os.Symlink(target, full))
			continue
		}
		must(t, os.WriteFile(full, []byte(v), mode))
		must(t, os.Chmod(full, mode))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const threeLevelConfig = `project: t
apps:
  - {id: web, path: apps/web, framework: next}
  - {id: shop-nuxt, path: apps/shop-nuxt, framework: nuxt}
  - {id: api, path: apps/api}
stores:
  brand: {template: true, framework: next}
  europe: {template: true}
  de: {projectName: de, region: eu-central-1}
  fr: {projectName: fr, region: eu-west-3}
  us: {projectName: us, region: us-east-1}
  sport: {projectName: sport, region: eu-west-1, framework: nuxt}
`

// fixture is a three-level store tree (brand -> europe -> de/fr, brand -> us, and
// sport) with overrides at every level, deletions, executables, symlinks, empty
// directories, spaces and non-ASCII names, plus things composition must skip.
func fixture() tree {
	return tree{
		"slipway.yaml": threeLevelConfig,
		// base apps
		"apps/web/package.json":               `{"scripts":{"build":"node build.js"}}`,
		"apps/web/components/header.tsx":      "base header",
		"apps/web/components/footer.tsx":      "base footer",
		"apps/web/components/legacy/old.tsx":  "old",
		"apps/web/components/legacy/old2.tsx": "old2",
		"apps/web/pages/index.tsx":            "base index",
		"apps/web/pages/über uns.tsx":         "über",
		"apps/web/pages/with space.tsx":       "space",
		"apps/web/scripts/run.sh#x":           "#!/bin/sh\necho run\n",
		"apps/web/public/empty/":              "",
		"apps/web/link-to-header":             "->components/header.tsx",
		"apps/web/assets/tmp.log":             "log",
		"apps/web/assets/keep.css":            "css",
		"apps/web/node_modules/dep/index.js":  "skip me",
		"apps/web/.next/cache":                "skip me",
		"apps/web/nested/node_modules/x":      "skip me too",
		"apps/shop-nuxt/nuxt.config.ts":       "nuxt",
		"apps/shop-nuxt/pages/index.vue":      "base vue",
		"apps/api/server.js":                  "api",
		"apps/api/config/default.json":        `{"a":1}`,
		"apps/api/bin/start#x":                "#!/bin/sh\n",
		// brand (level 1, template)
		"apps/stores/brand/web/components/header.tsx": "brand header",
		"apps/stores/brand/web/theme/colors.css":      "brand colors",
		"apps/stores/brand/web/.slipway-delete":       "# drop the legacy folder\ncomponents/legacy\n",
		"apps/stores/brand/api/config/default.json":   `{"a":2}`,
		// europe (level 2, template)
		"apps/stores/brand/stores/europe/web/components/footer.tsx": "eu footer",
		"apps/stores/brand/stores/europe/web/.slipway-delete":       "assets/*.log\n",
		"apps/stores/brand/stores/europe/web/scripts/run.sh":        "#!/bin/sh\necho europe, no longer executable\n",
		// de (level 3)
		"apps/stores/brand/stores/europe/stores/de/web/pages/index.tsx":      "de index",
		"apps/stores/brand/stores/europe/stores/de/web/components/legacy/":   "",
		"apps/stores/brand/stores/europe/stores/de/web/components/legacy/re": "re-added below a deletion",
		"apps/stores/brand/stores/europe/stores/de/web/pages/straße.tsx":     "straße",
		// fr (level 3): brings back the base header file by overriding with its own
		"apps/stores/brand/stores/europe/stores/fr/web/components/header.tsx": "fr header",
		"apps/stores/brand/stores/europe/stores/fr/api/extra/fr.json":         "{}",
		// us (level 2 under brand)
		"apps/stores/brand/stores/us/web/theme/colors.css": "us colors",
		"apps/stores/brand/stores/us/web/newdir/":          "",
		// sport: nuxt store
		"apps/stores/sport/shop-nuxt/pages/index.vue": "sport vue",
		"apps/stores/sport/api/server.js":             "sport api",
	}
}

// reference composes naively — copy, overlay, delete — as the oracle for exactness.
func reference(t *testing.T, cfg *config.Config, store string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, app := range cfg.AppsFor(store) {
		files := map[string]string{}
		layers := []string{app.Path}
		for _, s := range cfg.Chain(store) {
			layers = append(layers, path.Join(s.Dir, app.ID))
		}
		for i, l := range layers {
			base := filepath.Join(cfg.Root, l)
			if i > 0 {
				if data, err := os.ReadFile(filepath.Join(base, ".slipway-delete")); err == nil {
					for _, line := range strings.Split(string(data), "\n") {
						line = strings.TrimSpace(line)
						if line == "" || strings.HasPrefix(line, "#") {
							continue
						}
						for p := range files {
							if ok, _ := path.Match(line, p); ok || strings.HasPrefix(p, line+"/") {
								delete(files, p)
							}
						}
					}
				}
			}
			filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
				if err != nil || p == base {
					return nil
				}
				if d.IsDir() && cfg.SkipSet()[d.Name()] {
					return filepath.SkipDir
				}
				rel, _ := filepath.Rel(base, p)
				rel = filepath.ToSlash(rel)
				if rel == ".slipway-delete" {
					return nil
				}
				files[rel] = describe(t, p)
				return nil
			})
		}
		out[app.ID] = "d755"
		for p, v := range files {
			out[app.ID+"/"+p] = v
		}
	}
	return out
}

// describe renders one path's kind, mode and content for comparison.
func describe(t *testing.T, p string) string {
	fi, err := os.Lstat(p)
	must(t, err)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		must(t, err)
		return "l " + target
	case fi.IsDir():
		return fmt.Sprintf("d%o", fi.Mode().Perm())
	default:
		data, err := os.ReadFile(p)
		must(t, err)
		return fmt.Sprintf("f%o %s", fi.Mode().Perm(), data)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = describe(t, p)
		return nil
	})
	return out
}

func diffMaps(want, got map[string]string) string {
	var b strings.Builder
	for k, v := range want {
		if g, ok := got[k]; !ok {
			fmt.Fprintf(&b, "missing %s (%s)\n", k, v)
		} else if g != v {
			fmt.Fprintf(&b, "differs %s: want %q got %q\n", k, v, g)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "extra %s (%s)\n", k, v)
		}
	}
	return b.String()
}

func setup(t *testing.T, tr tree) *config.Config {
	t.Helper()
	root := t.TempDir()
	tr.write(t, root)
	cfg, err := config.Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func composeAll(t *testing.T, cfg *config.Config) []StoreResult {
	t.Helper()
	res, err := New(cfg).Compose(context.Background(), cfg.DeployableIDs())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func byStore(rs []StoreResult) map[string]StoreResult {
	m := map[string]StoreResult{}
	for _, r := range rs {
		m[r.Store] = r
	}
	return m
}

func TestComposeIsExact(t *testing.T) {
	cfg := setup(t, fixture())
	composeAll(t, cfg)
	for _, id := range cfg.DeployableIDs() {
		want := reference(t, cfg, id)
		got := snapshot(t, filepath.Join(cfg.Root, ".out", id))
		if d := diffMaps(want, got); d != "" {
			t.Errorf("store %s differs from the reference:\n%s", id, d)
		}
	}
	// Spot checks that the oracle agrees with the rules, not just with the code.
	out := func(p string) string { return describe(t, filepath.Join(cfg.Root, ".out", p)) }
	checks := map[string]string{
		"de/web/components/header.tsx":    "f644 brand header",
		"de/web/components/footer.tsx":    "f644 eu footer",
		"de/web/pages/index.tsx":          "f644 de index",
		"de/web/pages/über uns.tsx":       "f644 über",
		"de/web/pages/straße.tsx":         "f644 straße",
		"de/web/pages/with space.tsx":     "f644 space",
		"de/web/components/legacy/re":     "f644 re-added below a deletion",
		"de/web/scripts/run.sh":           "f644 #!/bin/sh\necho europe, no longer executable\n",
		"us/web/scripts/run.sh":           "f755 #!/bin/sh\necho run\n",
		"fr/web/components/header.tsx":    "f644 fr header",
		"fr/api/config/default.json":      `f644 {"a":2}`,
		"us/web/theme/colors.css":         "f644 us colors",
		"us/web/public/empty":             "d755",
		"us/web/newdir":                   "d755",
		"us/web/link-to-header":           "l components/header.tsx",
		"us/api/bin/start":                "f755 #!/bin/sh\n",
		"sport/shop-nuxt/pages/index.vue": "f644 sport vue",
		"sport/api/server.js":             "f644 sport api",
	}
	for p, want := range checks {
		if got := out(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"us/web/components/legacy", "de/web/components/legacy/old.tsx", "de/web/assets/tmp.log",
		"us/web/node_modules", "us/web/.next", "us/web/nested/node_modules", "sport/web", "us/shop-nuxt", "us/web/.slipway-delete"} {
		if _, err := os.Lstat(filepath.Join(cfg.Root, ".out", p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s should not exist (err=%v)", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(cfg.Root, ".out", "us/web/assets/tmp.log")); err != nil {
		t.Errorf("us keeps tmp.log: only europe deletes it: %v", err)
	}
	for _, tmpl := range []string{"brand", "europe"} {
		if _, err := os.Lstat(filepath.Join(cfg.Root, ".out", tmpl)); err == nil {
			t.Errorf("template %s must not be composed on its own", tmpl)
		}
	}
}

func TestComposeAlokaiLayoutMatchesSlipwayLayout(t *testing.T) {
	files := tree{
		"apps/storefront-unified-nextjs/a.tsx":                            "a",
		"apps/storefront-unified-nextjs/b/c.tsx":                          "c",
		"apps/storefront-unified-nuxt/n.vue":                              "n",
		"apps/storefront-middleware/m.js":                                 "m",
		"apps/stores/fashion/storefront-unified-nextjs/a.tsx":             "fashion a",
		"apps/stores/fashion/stores/us/storefront-unified-nextjs/b/c.tsx": "us c",
		"apps/stores/fashion/stores/us/storefront-middleware/m.js":        "us m",
		"apps/stores/sports/storefront-unified-nuxt/n.vue":                "sports n",
	}
	alokai := tree{"alokai.config.json": `{"stores": {
		"us": {"projectName": "us", "region": "us-east-1", "framework": "next"},
		"sports": {"projectName": "sports", "region": "eu-west-1", "framework": "nuxt"}}}`}
	slip := tree{"slipway.yaml": `apps:
  - {path: apps/storefront-unified-nextjs, framework: next, port: 3000}
  - {path: apps/storefront-unified-nuxt, framework: nuxt, port: 3000}
  - {path: apps/storefront-middleware, port: 4000}
stores:
  fashion: {template: true}
  us: {projectName: us, region: us-east-1, framework: next}
  sports: {projectName: sports, region: eu-west-1, framework: nuxt}
`}
	var fps [2][]string
	var snaps [2]map[string]string
	for i, cfgFile := range []tree{alokai, slip} {
		tr := tree{}
		for k, v := range files {
			tr[k] = v
		}
		for k, v := range cfgFile {
			tr[k] = v
		}
		cfg := setup(t, tr)
		for _, r := range composeAll(t, cfg) {
			for _, a := range r.Apps {
				fps[i] = append(fps[i], r.Store+"/"+a.App+"="+a.Fingerprint)
			}
		}
		snaps[i] = snapshot(t, filepath.Join(cfg.Root, ".out"))
		for k := range snaps[i] {
			if strings.HasPrefix(k, ".slipway") {
				delete(snaps[i], k)
			}
		}
		for _, id := range cfg.DeployableIDs() {
			if d := diffMaps(reference(t, cfg, id), snapshot(t, filepath.Join(cfg.Root, ".out", id))); d != "" {
				t.Errorf("%s: %s", id, d)
			}
		}
	}
	if d := diffMaps(snaps[0], snaps[1]); d != "" {
		t.Errorf("the two config formats compose differently:\n%s", d)
	}
	if strings.Join(fps[0], " ") != strings.Join(fps[1], " ") {
		t.Errorf("fingerprints differ:\n%v\n%v", fps[0], fps[1])
	}
	if got := snaps[0]["us/storefront-middleware/m.js"]; got != "f644 us m" {
		t.Errorf("middleware override lost: %q", got)
	}
}

func TestCopiesAreIndependent(t *testing.T) {
	cfg := setup(t, fixture())
	composeAll(t, cfg)
	p := filepath.Join(cfg.Root, ".out/us/web/pages/index.tsx")
	must(t, os.WriteFile(p, []byte("changed in .out"), 0o644))
	if b, _ := os.ReadFile(filepath.Join(cfg.Root, "apps/web/pages/index.tsx")); string(b) != "base index" {
		t.Errorf("source changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.Root, ".out/fr/web/pages/index.tsx")); string(b) != "base index" {
		t.Errorf("another store changed: %q", b)
	}
	// And the next compose restores the tampered file: .out is exact, not merely cached.
	res := byStore(composeAll(t, cfg))
	if b, _ := os.ReadFile(p); string(b) != "base index" {
		t.Errorf("tampered file not restored: %q", b)
	}
	if res["us"].Written != 1 || res["fr"].Written != 0 {
		t.Errorf("written us=%d fr=%d, want 1 and 0", res["us"].Written, res["fr"].Written)
	}
}

type inodeInfo struct {
	ino   uint64
	mtime int64
}

func inodes(t *testing.T, dir string) map[string]inodeInfo {
	out := map[string]inodeInfo{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		rel, _ := filepath.Rel(dir, p)
		out[rel] = inodeInfo{uint64(st.Ino), statKey(&st).Mtime}
		return nil
	})
	return out
}

func TestRecomposeRewritesOnlyWhatChanged(t *testing.T) {
	cfg := setup(t, fixture())
	composeAll(t, cfg)
	out := filepath.Join(cfg.Root, ".out")
	before := inodes(t, out)

	// Nothing changed: nothing written, not even touched.
	for _, r := range composeAll(t, cfg) {
		if r.Written != 0 || r.Removed != 0 || r.Full {
			t.Errorf("no-op recompose of %s: %+v", r.Store, r)
		}
	}
	// A touched but identical source is not a change either.
	now := filepath.Join(cfg.Root, "apps/web/pages/index.tsx")
	must(t, os.Chtimes(now, timeFuture(), timeFuture()))
	for _, r := range composeAll(t, cfg) {
		if r.Written != 0 {
			t.Errorf("touch caused writes in %s", r.Store)
		}
	}

	// One base file changed: each store that inherits it rewrites exactly that file.
	must(t, os.WriteFile(now, []byte("new base index"), 0o644))
	res := byStore(composeAll(t, cfg))
	for id, want := range map[string]int{"us": 1, "fr": 1, "de": 0, "sport": 0} {
		if res[id].Written != want {
			t.Errorf("%s wrote %d files, want %d", id, res[id].Written, want)
		}
	}
	after := inodes(t, out)
	for p, b := range before {
		a, ok := after[p]
		changed := p == "us/web/pages/index.tsx" || p == "fr/web/pages/index.tsx"
		if strings.HasPrefix(p, ".slipway") {
			continue
		}
		if !ok {
			t.Errorf("%s disappeared", p)
		} else if !changed && a != b {
			t.Errorf("%s was rewritten", p)
		} else if changed && a == b {
			t.Errorf("%s was not rewritten", p)
		}
	}
	// A mode-only change is a change.
	must(t, os.Chmod(filepath.Join(cfg.Root, "apps/api/server.js"), 0o755))
	res = byStore(composeAll(t, cfg))
	if res["us"].Written != 1 || res["sport"].Written != 0 {
		t.Errorf("mode change: us wrote %d (want 1), sport %d (want 0: it overrides server.js)", res["us"].Written, res["sport"].Written)
	}
	if got := describe(t, filepath.Join(out, "us/api/server.js")); got != "f755 api" {
		t.Errorf("mode not applied: %q", got)
	}
	// A removed source file is removed, a new directory appears.
	must(t, os.Remove(filepath.Join(cfg.Root, "apps/web/pages/with space.tsx")))
	must(t, os.MkdirAll(filepath.Join(cfg.Root, "apps/web/added/deeper"), 0o755))
	must(t, os.WriteFile(filepath.Join(cfg.Root, "apps/web/added/deeper/f"), []byte("f"), 0o644))
	res = byStore(composeAll(t, cfg))
	if res["us"].Removed != 1 || res["us"].Written != 1 {
		t.Errorf("us: removed %d written %d, want 1 and 1", res["us"].Removed, res["us"].Written)
	}
	// Stray files in .out are removed: the tree is exact.
	must(t, os.WriteFile(filepath.Join(out, "us/web/stray"), []byte("x"), 0o644))
	must(t, os.MkdirAll(filepath.Join(out, "us/web/.next/cache"), 0o755))
	res = byStore(composeAll(t, cfg))
	if res["us"].Removed != 2 {
		t.Errorf("stray entries removed = %d, want 2", res["us"].Removed)
	}
	for _, id := range cfg.DeployableIDs() {
		if d := diffMaps(reference(t, cfg, id), snapshot(t, filepath.Join(out, id))); d != "" {
			t.Errorf("after incremental updates %s differs:\n%s", id, d)
		}
	}
}

func TestFailedComposeLeavesPreviousTree(t *testing.T) {
	for _, mode := range []string{"incremental", "full"} {
		t.Run(mode, func(t *testing.T) {
			cfg := setup(t, fixture())
			composeAll(t, cfg)
			out := filepath.Join(cfg.Root, ".out")
			if mode == "full" {
				// No manifest: the next compose rebuilds the store beside the old one.
				must(t, os.RemoveAll(filepath.Join(out, ".slipway")))
			}
			before := snapshot(t, filepath.Join(out, "us"))
			must(t, os.WriteFile(filepath.Join(cfg.Root, "apps/web/pages/index.tsx"), []byte("v2"), 0o644))
			must(t, os.WriteFile(filepath.Join(cfg.Root, "apps/web/components/footer.tsx"), []byte("v2"), 0o644))
			n := 0
			writeHook = func(dst string) error {
				if n++; n == 2 {
					return errors.New("injected write failure")
				}
				return nil
			}
			defer func() { writeHook = nil }()
			_, err := New(cfg, WithWorkers(1)).Compose(context.Background(), []string{"us"})
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("want the injected failure, got %v", err)
			}
			if d := diffMaps(before, snapshot(t, filepath.Join(out, "us"))); d != "" {
				t.Errorf("failed compose changed .out/us:\n%s", d)
			}
			writeHook = nil
			composeAll(t, cfg)
			if got := describe(t, filepath.Join(out, "us/web/pages/index.tsx")); got != "f644 v2" {
				t.Errorf("after recovery: %q", got)
			}
		})
	}
}

func TestRejectedInputsChangeNothing(t *testing.T) {
	outside := t.TempDir()
	cases := map[string]struct {
		add  tree
		want string
	}{
		"absolute symlink":         {tree{"apps/web/evil": "->" + outside}, "apps/web/evil: absolute symlink"},
		"symlink escaping the app": {tree{"apps/stores/brand/web/up": "->../../../../etc/passwd"}, "apps/stores/brand/web/up: symlink points outside"},
		"delete with ..":           {tree{"apps/stores/brand/stores/us/web/.slipway-delete": "../api/server.js\n"}, "apps/stores/brand/stores/us/web/.slipway-delete:1: invalid delete entry"},
		"a chain of links":         {tree{"apps/web/A": "->.", "apps/web/leak": "->A/A/A/A/../../../../etc/passwd"}, "apps/web/leak: symlink points outside the composed app"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := setup(t, fixture())
			composeAll(t, cfg)
			out := filepath.Join(cfg.Root, ".out")
			before := snapshot(t, out)
			c.add.write(t, cfg.Root)
			must(t, os.WriteFile(filepath.Join(cfg.Root, "apps/web/pages/index.tsx"), []byte("v2"), 0o644))
			_, err := New(cfg).Compose(context.Background(), cfg.DeployableIDs())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
			if d := diffMaps(before, snapshot(t, out)); d != "" {
				t.Errorf(".out changed:\n%s", d)
			}
		})
	}
	t.Run("fifo", func(t *testing.T) {
		cfg := setup(t, fixture())
		must(t, syscall.Mkfifo(filepath.Join(cfg.Root, "apps/api/pipe"), 0o644))
		_, err := New(cfg).Compose(context.Background(), cfg.DeployableIDs())
		if err == nil || !strings.Contains(err.Error(), "apps/api/pipe: unsupported file type") {
			t.Fatalf("got %v", err)
		}
		if _, err := os.Stat(filepath.Join(cfg.Root, ".out", "us")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf(".out/us written despite the error")
		}
	})
}

func TestFingerprintIsStable(t *testing.T) {
	fp := func(root string) map[string]string {
		cfg, err := config.Load(root, "")
		must(t, err)
		m := map[string]string{}
		for _, r := range composeAll(t, cfg) {
			for _, a := range r.Apps {
				m[r.Store+"/"+a.App] = a.Fingerprint
			}
		}
		return m
	}
	a, b := t.TempDir(), t.TempDir()
	fixture().write(t, a)
	old := syscall.Umask(0o002) // another machine, another umask and other mtimes
	fixture().write(t, b)
	syscall.Umask(old)
	for _, f := range []string{"apps/web/pages/index.tsx", "apps/api/server.js"} {
		must(t, os.Chtimes(filepath.Join(b, f), timeFuture(), timeFuture()))
	}
	fa, fb := fp(a), fp(b)
	if d := diffMaps(fa, fb); d != "" {
		t.Fatalf("same inputs, different fingerprints:\n%s", d)
	}
	must(t, os.Chmod(filepath.Join(b, "apps/api/server.js"), 0o755))
	fb = fp(b)
	if fa["us/api"] == fb["us/api"] || fa["sport/api"] != fb["sport/api"] {
		t.Errorf("exec bit: us/api must change, sport/api (overrides server.js) must not")
	}
	must(t, os.WriteFile(filepath.Join(b, "apps/stores/brand/stores/europe/web/components/footer.tsx"), []byte("x"), 0o644))
	fb2 := fp(b)
	if fb2["de/web"] == fb["de/web"] || fb2["us/web"] != fb["us/web"] {
		t.Errorf("europe change must change de/web and not us/web")
	}
}

func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, stderr.String())
	}
}

func TestChangedSince(t *testing.T) {
	cfg := setup(t, fixture())
	root := cfg.Root
	// The monorepo is a subdirectory of the git repository, as examples/ are.
	repo := t.TempDir()
	must(t, os.Rename(root, filepath.Join(repo, "mono")))
	root = filepath.Join(repo, "mono")
	gitRun(t, repo, "init", "-q")
	gitRun(t, repo, "add", "-A")
	gitRun(t, repo, "commit", "-q", "-m", "base")
	changed := func() map[string][]Reason {
		t.Helper()
		cfg, err := config.Load(root, "")
		must(t, err)
		chs, err := New(cfg).Changed(context.Background(), "HEAD")
		must(t, err)
		m := map[string][]Reason{}
		for _, c := range chs {
			m[c.Store] = c.Reasons
		}
		return m
	}
	if m := changed(); len(m) != 0 {
		t.Fatalf("clean tree reports changes: %v", m)
	}
	w := func(p, s string) { must(t, os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)) }
	// A base file that fr overrides: us and de change, fr does not.
	w("apps/web/components/header.tsx", "x")
	if got := fmt.Sprint(changed()); got != "map[]" {
		// brand overrides header.tsx for every brand store: nobody sees the base change.
		t.Errorf("base header is overridden by brand for all stores, got %v", got)
	}
	w("apps/web/pages/index.tsx", "new index") // de overrides index.tsx
	if got := fmt.Sprint(changed()); got != "map[fr:[BASE_APP_CHANGED] us:[BASE_APP_CHANGED]]" {
		t.Errorf("base index change: %s", got)
	}
	gitRun(t, repo, "checkout", "-q", "--", ".")
	w("apps/stores/brand/stores/europe/web/components/footer.tsx", "eu2")
	if got := fmt.Sprint(changed()); got != "map[de:[ANCESTOR_CHANGED] fr:[ANCESTOR_CHANGED]]" {
		t.Errorf("europe change: %s", got)
	}
	w("apps/stores/brand/stores/europe/stores/de/web/pages/index.tsx", "de2")
	if got := fmt.Sprint(changed()); got != "map[de:[STORE_CHANGED ANCESTOR_CHANGED] fr:[ANCESTOR_CHANGED]]" {
		t.Errorf("de + europe change: %s", got)
	}
	gitRun(t, repo, "checkout", "-q", "--", ".")
	// A delete list change is the store's change.
	w("apps/stores/brand/stores/us/web/.slipway-delete", "assets/keep.css\n")
	if got := fmt.Sprint(changed()); got != "map[us:[STORE_CHANGED]]" {
		t.Errorf("delete list: %s", got)
	}
	must(t, os.Remove(filepath.Join(root, "apps/stores/brand/stores/us/web/.slipway-delete")))
	// Config: a store's env changes.
	w("slipway.yaml", strings.Replace(threeLevelConfig, "us: {projectName: us,", "us: {env: {A: b}, projectName: us,", 1))
	if got := fmt.Sprint(changed()); got != "map[us:[CONFIG_CHANGED]]" {
		t.Errorf("config change: %s", got)
	}
}

func timeFuture() time.Time { return time.Now().Add(time.Hour) }
