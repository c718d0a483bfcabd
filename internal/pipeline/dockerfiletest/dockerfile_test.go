//go:build integration

package dockerfiletest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/testenv"
)

const dockerCanary = "canary-b41d-never-in-an-image"

// dockerfileRepo is a git repository with one app built from a multi-stage
// Dockerfile whose first stage mounts a secret, and one store.
func dockerfileRepo(t *testing.T, base string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(dockerCanary))
	files := map[string]string{
		"slipway.yaml": `project: dockerfiletest
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
  a: {projectName: dockershop-a, region: local, framework: shop}
`,
		"apps/web/Dockerfile": "FROM " + base + " AS build\n" +
			"ARG GREETING\n" +
			"COPY page.txt /src/page.txt\n" +
			"RUN --mount=type=secret,id=NPM_TOKEN test \"$(sha256sum < /run/secrets/NPM_TOKEN)\" = \"" + hex.EncodeToString(sum[:]) + "  -\" && " +
			"mkdir -p /www && { echo \"$GREETING\"; cat /src/page.txt; } > /www/index.html\n" +
			"FROM " + base + " AS runtime\n" +
			"COPY --from=build /www /www\n" +
			"CMD [\"sh\", \"-c\", \"exec httpd -f -p ${PORT:-8080} -h /www\"]\n",
		"apps/web/page.txt":          "web page\n",
		"apps/web/.dockerignore":     "notes/\n",
		"apps/web/notes/todo.md":     "ignored by the build\n",
		"apps/stores/a/web/page.txt": "store a page\n",
	}
	dir := filepath.Join(t.TempDir(), "shop")
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

// TestDockerfileBuildPublishesOnceWithoutTheSecret builds the app with the
// engine, publishes it by commit, finds the secret in no blob the registry
// holds, and publishes nothing when nothing (or only an ignored file) changed.
func TestDockerfileBuildPublishesOnceWithoutTheSecret(t *testing.T) {
	base := testenv.EngineBusybox(t)
	reg := testenv.StartRegistry(t)
	if base == "" || reg == nil {
		return
	}
	t.Setenv("NPM_TOKEN", dockerCanary)
	dir := dockerfileRepo(t, base)
	cnt, proxyAddr := countingProxy(t, reg.URL())
	store := pipeline.RemoteStore{Remote: registry.NewRemote(), Registry: proxyAddr}
	first := runBuild(t, dir, store)
	if len(first.Images) != 1 || first.Images[0].UpToDate {
		t.Fatalf("first build: %+v", first.Images)
	}
	im := first.Images[0]
	if !strings.HasSuffix(im.Ref, ":"+first.Revision.Commit) {
		t.Errorf("ref %s is not tagged by the commit", im.Ref)
	}
	if cnt.blobWrites.Load() == 0 || cnt.manifestWrites.Load() == 0 {
		t.Fatalf("first build wrote nothing to the registry")
	}
	assertNoCanary(t, im.Ref, "store a page")

	cnt.blobWrites.Store(0)
	cnt.manifestWrites.Store(0)
	second := runBuild(t, dir, store)
	if n, m := cnt.blobWrites.Load(), cnt.manifestWrites.Load(); n != 0 || m != 0 {
		t.Errorf("rebuild with no change: %d blob uploads, %d manifest writes; want 0 and 0", n, m)
	}
	if !second.Images[0].UpToDate || second.Images[0].Digest != im.Digest {
		t.Errorf("rebuild with no change: %+v, want up to date at %s", second.Images[0], im.Digest)
	}

	// A file .dockerignore excludes is not in the context: still up to date.
	os.WriteFile(filepath.Join(dir, "apps/web/notes/todo.md"), []byte("changed\n"), 0o644)
	git(t, dir, "commit", "-qam", "notes")
	third := runBuild(t, dir, store)
	if !third.Images[0].UpToDate || third.Images[0].Digest != im.Digest {
		t.Errorf("after changing an ignored file: %+v, want up to date", third.Images[0])
	}

	// A changed build arg rebuilds.
	cfgPath := filepath.Join(dir, "slipway.yaml")
	b, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, bytes.Replace(b, []byte("GREETING: hello"), []byte("GREETING: howdy"), 1), 0o644)
	git(t, dir, "commit", "-qam", "arg")
	fourth := runBuild(t, dir, store)
	if fourth.Images[0].UpToDate || fourth.Images[0].Digest == im.Digest {
		t.Errorf("after changing a build arg: %+v, want a new image", fourth.Images[0])
	}
	assertNoCanary(t, fourth.Images[0].Ref, "howdy")
}

// assertNoCanary reads every blob of the published image (config with its
// history, each layer uncompressed) and fails if one holds the canary; the
// image must hold want.
func assertNoCanary(t *testing.T, ref, want string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfg, []byte(dockerCanary)) {
		t.Fatalf("the image config (history included) holds the secret")
	}
	man, _ := img.RawManifest()
	if bytes.Contains(man, []byte(dockerCanary)) {
		t.Fatalf("the manifest holds the secret")
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(tr)
			if bytes.Contains(body, []byte(dockerCanary)) || strings.Contains(h.Name, dockerCanary) {
				t.Fatalf("layer %d: %s holds the secret", i, h.Name)
			}
			if strings.Contains(string(body), want) {
				found = true
			}
		}
		rc.Close()
	}
	if !found {
		t.Fatalf("no layer holds %q", want)
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v %s", args, err, out)
	}
}

func runBuild(t *testing.T, dir string, store pipeline.ImageStore) *pipeline.BuildResult {
	t.Helper()
	cfg, err := config.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Build(context.Background(), pipeline.BuildOptions{Config: cfg, Stores: cfg.DeployableIDs(), Store: store, Jobs: 2, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range res.Images {
		if im.Err != nil {
			t.Fatalf("%s/%s: %v", im.Store, im.App, im.Err)
		}
	}
	return res
}

// counter counts registry writes passing through a reverse proxy.
type counter struct {
	blobWrites, manifestWrites atomic.Int64
}

func countingProxy(t *testing.T, target string) (*counter, string) {
	c := &counter{}
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/blobs/") && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch):
			c.blobWrites.Add(1)
		case strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodPut:
			c.manifestWrites.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return c, strings.TrimPrefix(srv.URL, "http://")
}
