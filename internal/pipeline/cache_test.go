package pipeline

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// cacheRepo is a one-store repository whose app installs a dependency with
// npm ci (from a local tarball: no registry) and builds with node.
func cacheRepo(t *testing.T) string {
	t.Helper()
	npm := testenv.NPM(t)
	testenv.Node(t)
	dir := filepath.Join(t.TempDir(), "shop")
	files := map[string]string{
		"slipway.yaml":          "apps:\n  - {path: apps/web, framework: node, entrypoint: [node, dist/server.js]}\nstores:\n  us: {projectName: us, region: r, framework: node}\n",
		"apps/stores/us/.keep":  "",
		"apps/web/package.json": `{"name":"web","version":"1.0.0","dependencies":{"dep":"file:dep-1.0.0.tgz"},"scripts":{"build":"node build.js"}}`,
		"apps/web/build.js":     "const fs = require('fs'); fs.mkdirSync('dist', {recursive: true}); fs.writeFileSync('dist/server.js', fs.readFileSync('src.js', 'utf8') + '\\n// dep=' + require('dep'));",
		"apps/web/src.js":       "console.log('v1');",
		"dep/package.json":      `{"name":"dep","version":"1.0.0","main":"i.js"}`,
		"dep/i.js":              "module.exports = 42;",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{
		{filepath.Join(dir, "dep"), npm, "pack", "--silent", "--pack-destination", filepath.Join(dir, "apps/web")},
		{filepath.Join(dir, "apps/web"), npm, "install", "--package-lock-only", "--offline", "--no-audit", "--no-fund"},
	} {
		cmd := exec.Command(c[1], c[2:]...)
		cmd.Dir = c[0]
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c[1:], err, out)
		}
	}
	os.RemoveAll(filepath.Join(dir, "dep"))
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "v1")
	return dir
}

func buildIn(t *testing.T, dir, state string) BuiltImage {
	t.Helper()
	l, err := registry.OpenLayout(filepath.Join(state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	res := runBuild(t, dir, LayoutStore{l})
	if len(res.Images) != 1 {
		t.Fatalf("images: %+v", res.Images)
	}
	return res.Images[0]
}

// A rebuild after a one-file change, with node_modules from the cache, is
// byte for byte the image a cold build of the same commit makes.
func TestCachedRebuildIsByteIdentical(t *testing.T) {
	dir := cacheRepo(t)
	warmState := t.TempDir()
	if first := buildIn(t, dir, warmState); !strings.HasPrefix(first.Phases[0].Name, "npm ci") {
		t.Fatalf("cold build phases %+v", first.Phases)
	}
	os.WriteFile(filepath.Join(dir, "apps/web/src.js"), []byte("console.log('v2');"), 0o644)
	git(t, dir, "commit", "-qam", "v2")
	warm := buildIn(t, dir, warmState)
	if warm.UpToDate || warm.Phases[0].Name != "node_modules from cache" {
		t.Fatalf("warm rebuild phases %+v (up to date %v)", warm.Phases, warm.UpToDate)
	}
	// Up to date: nothing is built, and the interpreter check still holds
	// (scratch has no node: a container runtime must refuse it).
	if again := buildIn(t, dir, warmState); !again.UpToDate || again.MissingInterpreter != "node" || warm.MissingInterpreter != "node" {
		t.Errorf("up to date %v, missing interpreter %q (built: %q)", again.UpToDate, again.MissingInterpreter, warm.MissingInterpreter)
	}
	os.RemoveAll(filepath.Join(dir, ".out"))
	cold := buildIn(t, dir, t.TempDir())
	if !strings.HasPrefix(cold.Phases[0].Name, "npm ci") {
		t.Fatalf("second cold build phases %+v", cold.Phases)
	}
	if warm.Digest != cold.Digest {
		t.Errorf("cached rebuild %s differs from the cold build %s of the same commit", warm.Digest, cold.Digest)
	}
}
