package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/pipeline"
)

// explainRepo has a store with five apps: a Python app with a Procfile
// worker, a Go module (whose web: command the store's override Procfile
// sets), a static site, a pnpm Node app and a Dockerfile; and a Next.js store.
func explainRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"slipway.yaml": `project: shop
image:
  stacks: {python: "registry.example.com/base/python:3.12"}
apps:
  - {path: apps/py, framework: f}
  - {path: apps/gosvc, framework: f}
  - {path: apps/site, framework: f}
  - {path: apps/web, framework: f}
  - {path: apps/dock, framework: f}
  - {path: apps/nx, framework: next}
stores:
  us: {projectName: shop, region: r, framework: f}
  nx: {projectName: shop, region: r, framework: next}
`,
		"apps/py/requirements.txt":      "gunicorn==22.0\n",
		"apps/py/wsgi.py":               "app = None\n",
		"apps/py/Procfile":              "worker: python3 worker.py\n",
		"apps/gosvc/go.mod":             "module x\n",
		"apps/gosvc/main.go":            "package main\nfunc main() {}\n",
		"apps/stores/us/gosvc/Procfile": "web: ./.gobin/app --store us\n",
		"apps/site/index.html":          "<p>",
		"apps/web/package.json":         `{"scripts":{"build":"vite build"}}`,
		"apps/web/pnpm-lock.yaml":       "lockfileVersion: 9\n",
		"apps/dock/package.json":        "{}",
		"apps/dock/Dockerfile":          "FROM busybox:1.36\nCOPY . /app\nCMD [\"httpd\", \"-f\"]\n",
		"apps/nx/package.json":          `{"scripts":{"build":"next build"},"dependencies":{"next":"15.5.29"}}`,
		"apps/nx/package-lock.json":     `{"lockfileVersion":3}`,
		"apps/stores/nx/nx/README":      "the Next.js store",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build --explain says per app what was detected from which file, the
// commands, images and cache keys, builds nothing, and has a --json form.
func TestBuildExplain(t *testing.T) {
	dir := explainRepo(t)
	code, out, errOut := run(t, "build", "--explain", "--store-id", "us", "-C", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	for _, want := range []string{
		"us/py  (",
		"build:       stack python: requirements.txt exists",
		"install:     python3 -m pip install --no-cache-dir --disable-pip-version-check --target .python_packages -r requirements.txt",
		"start:       /bin/sh -c exec python3 -m gunicorn --bind ${HOST:-0.0.0.0}:${PORT} wsgi:app  (python: gunicorn is a dependency and wsgi.py exists)",
		"process:     worker: python3 worker.py",
		"build image: registry.example.com/base/python:3.12  (image.stacks.python); unused: the steps run on this host (SLIPWAY_BUILD_IN=container runs them in it)",
		"base image:  scratch",
		"us/gosvc",
		"build:       stack go: go.mod exists",
		"build:       go build -trimpath -buildvcs=false -o .gobin/app .",
		"start:       /bin/sh -c ./.gobin/app --store us  (the Procfile's web: line)",
		"build image: golang:1.24  (the official go image (set image.stacks.go to change it))",
		"us/site",
		"build:       stack static: no package.json",
		"start:       -  (none: a static site (index.html), served by the router)",
		"us/web",
		"packages:    pnpm (pnpm-lock.yaml)",
		"install:     pnpm install --frozen-lockfile",
		"build:       pnpm run build",
		"deps key:    ",
		"fingerprint: ",
		"us/dock",
		"build:       dockerfile: Dockerfile is built by the Docker engine",
		"base image:  busybox:1.36",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".out", "us", "gosvc", ".gobin")); err == nil {
		t.Error("--explain built the Go app")
	}

	code, out, errOut = run(t, "build", "--explain", "--json", "--store-id", "us", "-C", dir)
	if code != 0 {
		t.Fatalf("--json exit %d: %s", code, errOut)
	}
	var ex []pipeline.Explanation
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(ex) != 5 || ex[0].App != "py" || ex[0].Detection.Stack != "python" || ex[0].Detection.Matched != "requirements.txt" ||
		ex[3].Detection.PackageManager != "pnpm" || ex[3].DepsKey == "" || len(ex[1].Fingerprint) != 64 {
		t.Errorf("--json: %s", out)
	}

	// A Next.js app: its kept caches, the trace analyses among them.
	code, out, errOut = run(t, "build", "--explain", "--store-id", "nx", "-C", dir)
	for _, want := range []string{
		"nx/nx",
		"kept cache:  .next/cache (per store and app)",
		"kept cache:  next build's trace analyses of node_modules, kept with the deps key and shared by the app's stores (SLIPWAY_NEXT_TRACE_CACHE=off turns it off)",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, missing %q in:\n%s%s", code, want, out, errOut)
		}
	}
}
