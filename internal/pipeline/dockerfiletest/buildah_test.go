//go:build integration

package dockerfiletest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/dockerbuild"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// buildahRepo is a multi-stage Dockerfile app whose build stage prints and
// checks its secret (the log must show it redacted), then copies a page a
// store overrides.
func buildahRepo(t *testing.T, base string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(dockerCanary))
	dir := filepath.Join(t.TempDir(), "shop")
	files := map[string]string{
		"slipway.yaml": `project: buildahshop
apps:
  - id: web
    path: apps/web
    framework: shop
    port: 8080
    build:
      target: runtime
      args: {GREETING: hello}
      secrets: [NPM_TOKEN]
stores:
  a: {projectName: buildahshop-a, region: local, framework: shop}
`,
		"apps/web/Dockerfile": "FROM " + base + " AS build\n" +
			"ARG GREETING\n" +
			"RUN --mount=type=secret,id=NPM_TOKEN echo \"token is $(cat /run/secrets/NPM_TOKEN)\" && " +
			"test \"$(sha256sum < /run/secrets/NPM_TOKEN)\" = \"" + hex.EncodeToString(sum[:]) + "  -\" && mkdir -p /www && echo \"$GREETING\" > /www/greeting\n" +
			"COPY page.txt /src/page.txt\n" +
			"RUN cat /www/greeting /src/page.txt > /www/index.html\n" +
			"FROM " + base + " AS runtime\n" +
			"COPY --from=build /www /www\n" +
			"WORKDIR /www\n" +
			"CMD [\"sh\", \"-c\", \"exec httpd -f -p ${PORT:-8080} -h .\"]\n",
		"apps/web/page.txt":          "web page\n",
		"apps/web/.dockerignore":     "notes/\n",
		"apps/web/notes/todo.md":     "ignored by the build\n",
		"apps/stores/a/web/page.txt": "store a page\n",
	}
	for p, body := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "initial")
	return dir
}

// syncBuffer is a job log written by parallel builds.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// TestBuildahBuildWithNoEngine builds the app with no Docker engine
// reachable (DOCKER_HOST is a dead socket): buildah builds it, its output
// in the job log with the secret redacted; the published image holds the
// store's page and no trace of the secret (config, history, every layer);
// an unchanged rebuild builds and writes nothing; a changed page rebuilds
// from the layer cache up to the COPY of the page.
func TestBuildahBuildWithNoEngine(t *testing.T) {
	bin := testenv.Buildah(t)
	reg := testenv.StartRegistry(t)
	base := testenv.RegistryBusybox(t, reg)
	if bin == "" || base == "" {
		return
	}
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
	t.Setenv(pipeline.BuilderEnv, "")
	t.Setenv("NPM_TOKEN", dockerCanary)
	dir := buildahRepo(t, base)
	cnt, proxyAddr := countingProxy(t, reg.URL())
	store := pipeline.RemoteStore{Remote: registry.NewRemote(), Registry: proxyAddr}
	cache := t.TempDir()
	t.Cleanup(func() { // before the temp dir goes: buildah's layers are removable through it only
		if b, err := dockerbuild.NewBuildah(bin, filepath.Join(cache, "buildah")); err == nil {
			b.RemoveStorage(context.Background())
		}
	})
	log := &syncBuffer{}
	build := func() *pipeline.BuildResult {
		t.Helper()
		cfg, err := config.Load(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := pipeline.Build(context.Background(), pipeline.BuildOptions{Config: cfg, Stores: cfg.DeployableIDs(),
			Store: store, Jobs: 2, CacheDir: cache, Verbose: true, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range res.Images {
			if im.Err != nil {
				t.Fatalf("%s/%s: %v\n%s", im.Store, im.App, im.Err, log.take())
			}
		}
		return res
	}
	first := build()
	out := log.take()
	if !strings.Contains(out, "building Dockerfile with buildah") || !strings.Contains(out, "STEP") {
		t.Fatalf("the job log does not show buildah building:\n%s", out)
	}
	if strings.Contains(out, dockerCanary) || !strings.Contains(out, "token is [REDACTED]") {
		t.Fatalf("the job log must show the printed secret redacted:\n%s", out)
	}
	im := first.Images[0]
	if im.UpToDate || !strings.HasSuffix(im.Ref, ":"+first.Revision.Commit) {
		t.Fatalf("first build: %+v", im)
	}
	assertNoCanary(t, im.Ref, "store a page")
	if _, err := os.Stat("/var/lib/containers/storage"); err == nil {
		t.Logf("note: /var/lib/containers/storage exists on this machine (not made by this test's builds, which keep their storage under %s)", cache)
	}
	if _, err := os.Stat(filepath.Join(cache, "buildah", "storage")); err != nil {
		t.Errorf("buildah's storage is not under the cache dir: %v", err)
	}

	cnt.blobWrites.Store(0)
	cnt.manifestWrites.Store(0)
	second := build()
	if n, m := cnt.blobWrites.Load(), cnt.manifestWrites.Load(); n != 0 || m != 0 {
		t.Errorf("rebuild with no change: %d blob uploads, %d manifest writes; want 0 and 0", n, m)
	}
	if out := log.take(); !second.Images[0].UpToDate || second.Images[0].Digest != im.Digest || strings.Contains(out, "STEP") {
		t.Errorf("rebuild with no change: %+v, want up to date at %s, nothing built:\n%s", second.Images[0], im.Digest, out)
	}

	os.WriteFile(filepath.Join(dir, "apps/stores/a/web/page.txt"), []byte("store a page, edited\n"), 0o644)
	git(t, dir, "commit", "-qam", "page")
	third := build()
	out = log.take()
	if third.Images[0].UpToDate || third.Images[0].Digest == im.Digest {
		t.Fatalf("after editing the page: %+v, want a new image", third.Images[0])
	}
	// The secret's RUN comes before the page's COPY: taken from the cache.
	if strings.Contains(out, "token is [REDACTED]") || !strings.Contains(out, "Using cache") {
		t.Errorf("after editing the page, the secret step ran again or nothing came from the layer cache:\n%s", out)
	}
	if !strings.Contains(out, "earlier build image(s) from buildah") {
		t.Errorf("after the third build, no earlier build was removed from buildah's storage:\n%s", out)
	}
	assertNoCanary(t, third.Images[0].Ref, "store a page, edited")
}
