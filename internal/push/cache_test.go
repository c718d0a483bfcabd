package push_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/push"
)

// A job built from a commit reuses the build caches kept in the state dir:
// node_modules keyed by the lockfile (the second job does not run npm ci; the
// third, after a lockfile change, does), npm's own cache, and .next/cache per
// store and app. The base Next.js app of the example gets a lockfile with one
// dependency (a tarball in the repository: no network) and a build step that
// keeps a line per build in .next/cache.
func TestCommitBuiltJobsReuseCaches(t *testing.T) {
	h := start(t, 0)
	probe := t.TempDir()
	const app = "apps/storefront-unified-nextjs/"
	files := func(version string) map[string]string {
		tgz := tinyTarball(t, version)
		pkg := map[string]any{
			"name": "storefront-unified-nextjs", "version": "1.0.0", "private": true,
			"scripts": map[string]string{
				// Runs only when npm ci does: a restored node_modules skips it.
				"preinstall": "node scripts/installed.js",
				"build":      "node scripts/build.js && node scripts/cache-probe.js",
				"start":      "node .next/standalone/server.js",
			},
			"dependencies": map[string]string{"tiny": "file:vendor/tiny-" + version + ".tgz"},
		}
		lock := map[string]any{
			"name": "storefront-unified-nextjs", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
			"packages": map[string]any{
				"": map[string]any{"name": "storefront-unified-nextjs", "version": "1.0.0", "hasInstallScript": true,
					"dependencies": map[string]string{"tiny": "file:vendor/tiny-" + version + ".tgz"}},
				"node_modules/tiny": map[string]any{"version": version, "resolved": "file:vendor/tiny-" + version + ".tgz",
					"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512Sum(tgz))},
			},
		}
		pj, _ := json.MarshalIndent(pkg, "", "  ")
		lj, _ := json.MarshalIndent(lock, "", "  ")
		return map[string]string{
			app + "package.json":                    string(pj) + "\n",
			app + "package-lock.json":               string(lj) + "\n",
			app + "vendor/tiny-" + version + ".tgz": string(tgz),
			app + "scripts/installed.js":            "require('fs').appendFileSync(" + jsString(filepath.Join(probe, "installs")) + ", process.env.SLIPWAY_STORE_ID + '\\n');\n",
			app + "scripts/cache-probe.js":          cacheProbe(filepath.Join(probe, "builds")),
			app + "components/footer.js":            footer("footer " + version),
		}
	}
	state := h.opts.DataDir
	run := func(label string) *jobs.Job {
		t.Helper()
		j, err := h.svc.Submit(context.Background(), "us", jobs.KindBuildDeploy, "", jobs.TriggerAPI, "test")
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		h.waitJobs(pushAnswerFor(j))
		return j
	}

	h.repo.Commit("main", "tiny 1.0.0 with a lockfile", files("1.0.0"))
	run("first job")
	keys1 := depsKeys(t, state)
	if got := lines(t, filepath.Join(probe, "installs")); len(got) != 1 {
		t.Fatalf("first job: npm ci ran %d times, want 1", len(got))
	}
	if _, own := os.LookupEnv("npm_config_cache"); own {
		// The builds honour a cache the environment chose over the state dir's.
		t.Log("npm_config_cache is set: npm's cache is not under the state dir, not checked")
	} else if !npmCacheHolds(t, state, "tiny") {
		t.Errorf("npm's cache under %s/cache/pm/npm does not hold the dependency the first job installed", state)
	}

	// Same lockfile, another source change: the install is not run again.
	h.repo.Commit("main", "footer only", map[string]string{app + "components/footer.js": footer("footer two")})
	j2 := run("second job")
	if got := lines(t, filepath.Join(probe, "installs")); len(got) != 1 {
		t.Fatalf("second job (lockfile unchanged): npm ci ran again (%d installs in all)", len(got))
	}
	if log := jobLog(t, h, j2.ID); !strings.Contains(log, "node_modules from cache") {
		t.Errorf("second job's log does not say node_modules came from the cache:\n%s", log)
	}
	if k := depsKeys(t, state); strings.Join(k, ",") != strings.Join(keys1, ",") {
		t.Errorf("deps keys changed without a lockfile change: %v then %v", keys1, k)
	}

	// A new lockfile: installed again, under a new key (the old one goes).
	h.repo.Commit("main", "tiny 1.0.1", files("1.0.1"))
	run("third job")
	if got := lines(t, filepath.Join(probe, "installs")); len(got) != 2 {
		t.Fatalf("third job (lockfile changed): %d installs in all, want 2", len(got))
	}
	keys3 := depsKeys(t, state)
	if len(keys3) != 1 || len(keys1) != 1 || keys3[0] == keys1[0] {
		t.Errorf("deps keys: %v then %v, want one new key", keys1, keys3)
	}

	// .next/cache went from build to build of us's Next.js app: each build saw the lines of the ones before.
	builds := lines(t, filepath.Join(probe, "builds"))
	want := []string{"us seen=0 tiny=1.0.0", "us seen=1 tiny=1.0.0", "us seen=2 tiny=1.0.1"}
	if strings.Join(builds, "\n") != strings.Join(want, "\n") {
		t.Errorf("builds saw:\n%s\nwant\n%s", strings.Join(builds, "\n"), strings.Join(want, "\n"))
	}
	kept := filepath.Join(state, "cache", "fw", "us", "storefront-unified-nextjs", ".next", "cache", "builds")
	if got := lines(t, kept); len(got) != 3 {
		t.Errorf("%s holds %d builds, want 3", kept, len(got))
	}
}

func pushAnswerFor(j *jobs.Job) push.Answer {
	return push.Answer{Stores: []push.StoreDecision{{Job: j.ID}}}
}

// tinyTarball is an npm package tarball (package/package.json, package/index.js).
func tinyTarball(t *testing.T, version string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{
		"package/package.json": `{"name":"tiny","version":"` + version + `","main":"index.js"}` + "\n",
		"package/index.js":     "module.exports = { version: '" + version + "' };\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(499162500, 0)})
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	return buf.Bytes()
}

func footer(text string) string {
	return "module.exports = { text: " + jsString(text) + ", from: 'cache test' };\n"
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sha512Sum(b []byte) []byte {
	s := sha512.Sum512(b)
	return s[:]
}

// cacheProbe is a build step: it counts the lines .next/cache kept from
// earlier builds, adds its own, and reports both and the installed dependency.
func cacheProbe(report string) string {
	return `'use strict';
const fs = require('fs');
const path = require('path');
const dir = path.join(__dirname, '..', '.next', 'cache');
fs.mkdirSync(dir, { recursive: true });
const f = path.join(dir, 'builds');
const seen = fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0;
fs.appendFileSync(f, 'build\n');
const tiny = require('tiny').version;
fs.appendFileSync(` + jsString(report) + `, process.env.SLIPWAY_STORE_ID + ' seen=' + seen + ' tiny=' + tiny + '\n');
`
}

func lines(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// depsKeys lists the node_modules keys kept for the Next.js app.
func depsKeys(t *testing.T, state string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(state, "cache", "deps", "storefront-unified-nextjs"))
	if err != nil {
		t.Fatalf("no node_modules kept in the state dir's build cache: %v", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !strings.HasSuffix(e.Name(), ".tmp") {
			out = append(out, e.Name())
		}
	}
	return out
}

// npmCacheHolds reports whether npm's content index under the state dir names pkg.
func npmCacheHolds(t *testing.T, state, pkg string) bool {
	found := false
	filepath.WalkDir(filepath.Join(state, "cache", "pm", "npm", "_cacache", "index-v5"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(pkg)) {
				found = true
			}
		}
		return nil
	})
	return found
}

func jobLog(t *testing.T, h *harness, id string) string {
	lines, err := h.svc.Queue.Logs(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}
