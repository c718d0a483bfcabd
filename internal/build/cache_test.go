package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/testenv"
)

// npmApp writes an app whose lockfile pins one dependency from a local
// tarball, so that npm ci runs for real without a registry.
func npmApp(t *testing.T, dir string) {
	t.Helper()
	npm := testenv.NPM(t)
	testenv.Node(t)
	dep := filepath.Join(t.TempDir(), "dep")
	writeFiles(t, dep, map[string]string{"package.json": `{"name":"dep","version":"1.0.0","main":"i.js"}`, "i.js": "module.exports = 42;"})
	pack := exec.Command(npm, "pack", "--silent", "--pack-destination", dir)
	pack.Dir = dep
	if out, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("npm pack: %v %s", err, out)
	}
	writeFiles(t, dir, map[string]string{
		"package.json": `{"name":"app","version":"1.0.0","dependencies":{"dep":"file:dep-1.0.0.tgz"},"scripts":{"build":"node build.js"}}`,
		"build.js":     `require('fs').writeFileSync('out.txt', 'dep=' + require('dep'));`,
	})
	lock := exec.Command(npm, "install", "--package-lock-only", "--offline", "--no-audit", "--no-fund")
	lock.Dir = dir
	if out, err := lock.CombinedOutput(); err != nil {
		t.Fatalf("npm install --package-lock-only: %v %s", err, out)
	}
}

func TestCacheSkipsInstallUntilTheLockfileChanges(t *testing.T) {
	dir := t.TempDir()
	npmApp(t, dir)
	cache := &Cache{Dir: t.TempDir()}
	r := &Runner{Cache: cache}
	build := func() Result {
		t.Helper()
		res := r.Run(context.Background(), []Task{{Store: "us", App: "web", Dir: dir}})[0]
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, strings.Join(res.Tail, "\n"))
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(b) != "dep=42" {
			t.Fatalf("build output %q", b)
		}
		return res
	}
	if res := build(); !strings.HasPrefix(res.Steps[0], "npm ci") {
		t.Fatalf("cold build steps %q", res.Steps)
	}
	// The next compose deletes node_modules from .out: the cache puts it back.
	os.RemoveAll(filepath.Join(dir, "node_modules"))
	if res := build(); res.Steps[0] != "node_modules from cache" {
		t.Errorf("warm build steps %q", res.Steps)
	}
	// Linked, not copied: the same inode as the cache's file.
	a, _ := os.Stat(filepath.Join(dir, "node_modules/dep/i.js"))
	matches, _ := filepath.Glob(filepath.Join(cache.Dir, "deps/web/*/node_modules/dep/i.js"))
	if len(matches) != 1 {
		t.Fatalf("cache entries: %q", matches)
	}
	if b, _ := os.Stat(matches[0]); !os.SameFile(a, b) {
		t.Errorf("node_modules was copied, not linked")
	}
	// Another lockfile: installed again, and the old entry is dropped.
	lock := filepath.Join(dir, "package-lock.json")
	b, _ := os.ReadFile(lock)
	os.WriteFile(lock, []byte(strings.Replace(string(b), `"name": "app"`, `"name": "app2"`, 1)), 0o644)
	os.WriteFile(filepath.Join(dir, "package.json"), []byte(strings.Replace(mustRead(t, filepath.Join(dir, "package.json")), `"name":"app"`, `"name":"app2"`, 1)), 0o644)
	if res := build(); !strings.HasPrefix(res.Steps[0], "npm ci") {
		t.Errorf("a changed lockfile must reinstall: %q", res.Steps)
	}
	if m, _ := filepath.Glob(filepath.Join(cache.Dir, "deps/web/*")); len(m) != 1 {
		t.Errorf("stale entries kept: %q", m)
	}
	if _, err := os.Stat(filepath.Join(cache.Dir, "pm/npm")); err != nil {
		t.Errorf("npm's cache is not under the cache dir: %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// .next/cache survives between builds of the same store/app, and only of it.
func TestCacheKeepsFrameworkCachePerStoreAndApp(t *testing.T) {
	cache := &Cache{Dir: t.TempDir()}
	r := &Runner{Cache: cache}
	cmd := `mkdir -p .next/cache; echo x >> .next/cache/runs; wc -l < .next/cache/runs | tr -d ' ' > runs.txt`
	run := func(store string) string {
		dir := filepath.Join(t.TempDir(), store)
		os.MkdirAll(dir, 0o755)
		res := r.Run(context.Background(), []Task{{Store: store, App: "web", Dir: dir, Command: cmd}})[0]
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if _, err := os.Stat(filepath.Join(dir, ".next/cache")); err == nil {
			t.Errorf(".next/cache left in the app dir")
		}
		return strings.TrimSpace(mustRead(t, filepath.Join(dir, "runs.txt")))
	}
	if a, b, c := run("us"), run("us"), run("eu"); a != "1" || b != "2" || c != "1" {
		t.Errorf("runs: us %s, us %s, eu %s; want 1, 2, 1", a, b, c)
	}
}
