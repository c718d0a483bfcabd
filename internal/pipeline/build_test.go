package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/gitfs"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/testenv"
)

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v %s", args, err, out)
	}
}

// exampleRepo copies examples/multistore into a fresh git repository.
func exampleRepo(t *testing.T, extraConfig string) string {
	t.Helper()
	if testenv.Node(t) == "" {
		return ""
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "examples", "multistore")
	dir := filepath.Join(t.TempDir(), "shop")
	if out, err := exec.Command("cp", "-a", src, dir).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	os.RemoveAll(filepath.Join(dir, ".out"))
	os.RemoveAll(filepath.Join(dir, ".slipway"))
	if extraConfig != "" {
		f, _ := os.OpenFile(filepath.Join(dir, "slipway.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString(extraConfig)
		f.Close()
	}
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "initial")
	return dir
}

func load(t *testing.T, dir string) *config.Config {
	t.Helper()
	cfg, err := config.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runBuild(t *testing.T, dir string, store ImageStore) *BuildResult {
	t.Helper()
	cfg := load(t, dir)
	res, err := Build(context.Background(), BuildOptions{Config: cfg, Stores: cfg.DeployableIDs(), Store: store, Jobs: 2})
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

func digests(res *BuildResult) map[string]string {
	m := map[string]string{}
	for _, im := range res.Images {
		m[im.Store+"/"+im.App] = im.Digest
	}
	return m
}

func TestBuildExampleIntoEmbeddedStore(t *testing.T) {
	dir := exampleRepo(t, "")
	l, err := registry.OpenLayout(filepath.Join(dir, ".slipway", "images"))
	if err != nil {
		t.Fatal(err)
	}
	store := LayoutStore{l}
	first := runBuild(t, dir, store)
	if len(first.Images) != 6 {
		t.Fatalf("want 6 images (3 stores × 2 apps), got %d", len(first.Images))
	}
	for _, im := range first.Images {
		if im.UpToDate || !strings.HasSuffix(im.Ref, ":"+first.Revision.Commit) || !strings.HasPrefix(im.DriverRef, "oci-layout:") {
			t.Errorf("first build %+v", im)
		}
	}
	ref0, _ := name.ParseReference(first.Images[0].Ref)
	img, err := l.Image(ref0)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("validate.Image: %v", err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Labels["org.opencontainers.image.revision"] != first.Revision.Commit || cf.Config.Labels[LabelFingerprint] == "" ||
		cf.Config.WorkingDir != "/var/www" || cf.Config.Labels["dev.slipway.store"] == "" {
		t.Errorf("config: %+v", cf.Config)
	}

	// Same commit again: nothing is rebuilt, every digest is identical.
	second := runBuild(t, dir, store)
	for _, im := range second.Images {
		if !im.UpToDate {
			t.Errorf("%s/%s rebuilt", im.Store, im.App)
		}
	}
	if fmt.Sprint(digests(first)) != fmt.Sprint(digests(second)) {
		t.Errorf("digests changed:\n%v\n%v", digests(first), digests(second))
	}

	// A fresh data dir and .out (another machine): a rebuild gives the same digests.
	os.RemoveAll(filepath.Join(dir, ".out"))
	l2, _ := registry.OpenLayout(filepath.Join(t.TempDir(), "images"))
	third := runBuild(t, dir, LayoutStore{l2})
	if fmt.Sprint(digests(first)) != fmt.Sprint(digests(third)) {
		t.Errorf("rebuild from scratch is not reproducible:\n%v\n%v", digests(first), digests(third))
	}

	// One store's override changes: only that store/app is rebuilt; the rest get the new tag only.
	p := filepath.Join(dir, "apps/stores/fashion-brand/stores/us/storefront-unified-nextjs/config/locale.json")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), "USD", "USN", 1)), 0o644)
	if _, err := Build(context.Background(), BuildOptions{Config: load(t, dir), Stores: []string{"us"}, Store: store}); !errors.Is(err, gitfs.ErrDirty) {
		t.Fatalf("a dirty tree must be refused: %v", err)
	}
	git(t, dir, "commit", "-qam", "us locale")
	fourth := runBuild(t, dir, store)
	for _, im := range fourth.Images {
		rebuilt := im.Store == "us" && im.App == "storefront-unified-nextjs"
		if im.UpToDate == rebuilt {
			t.Errorf("%s/%s: upToDate=%v", im.Store, im.App, im.UpToDate)
		}
		if !strings.HasSuffix(im.Ref, ":"+fourth.Revision.Commit) {
			t.Errorf("%s not tagged with the new commit", im.Ref)
		}
		r, _ := name.ParseReference(im.Ref)
		if _, ok, _ := l.Exists(context.Background(), r); !ok {
			t.Errorf("%s missing from the store", im.Ref)
		}
	}
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

func TestBuildPublishesToRegistryOnceAndRunsInDocker(t *testing.T) {
	reg := testenv.StartRegistry(t)
	if reg == nil {
		return
	}
	// A node base image the test makes itself (no hub): busybox + the host's node.
	var baseCfg string
	if node := testenv.NodeImage(t); node != nil {
		bl, err := registry.OpenLayout(filepath.Join(t.TempDir(), "base"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bl.Publish(context.Background(), name.MustParseReference("slipway.local/base/node:20"), node); err != nil {
			t.Fatal(err)
		}
		baseCfg = fmt.Sprintf("image:\n  base: oci-layout:%s:slipway.local/base/node:20\n", bl.Dir())
	}
	dir := exampleRepo(t, baseCfg)
	cnt, proxyAddr := countingProxy(t, reg.URL())
	store := RemoteStore{Remote: registry.NewRemote(), Registry: proxyAddr}
	first := runBuild(t, dir, store)
	if cnt.blobWrites.Load() == 0 || cnt.manifestWrites.Load() == 0 {
		t.Fatalf("first build wrote nothing to the registry")
	}
	cnt.blobWrites.Store(0)
	cnt.manifestWrites.Store(0)
	second := runBuild(t, dir, store)
	if n, m := cnt.blobWrites.Load(), cnt.manifestWrites.Load(); n != 0 || m != 0 {
		t.Errorf("re-publishing the same commit: %d blob uploads, %d manifest writes; want 0 and 0", n, m)
	}
	if fmt.Sprint(digests(first)) != fmt.Sprint(digests(second)) {
		t.Errorf("digests differ")
	}

	if baseCfg == "" || testenv.RequireDocker(t) == "" {
		return
	}
	// The real Docker CLI pulls the image from the registry it was pushed to and runs it.
	var us BuiltImage
	for _, im := range first.Images {
		if im.Store == "us" && im.App == "storefront-unified-nextjs" {
			us = im
		}
	}
	ref := reg.Addr + "/fashion-us/storefront-unified-nextjs@" + us.Digest
	testenv.Docker(t, "pull", ref)
	port := testenv.FreePort(t)
	cname := fmt.Sprintf("slipway-test-build-%d", port)
	args := []string{"run", "-d", "--name", cname, "-e", fmt.Sprintf("PORT=%d", port), "-e", "SLIPWAY_STORE_ID=us"}
	if testenv.DockerNetwork() == "host" {
		args = append(args, "--network", "host", "-e", "HOST=127.0.0.1")
	} else {
		args = append(args, "-p", fmt.Sprintf("127.0.0.1:%d:%d", port, port))
	}
	testenv.Docker(t, append(args, ref)...)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", cname).Run() })
	body := ""
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				body = string(b)
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(body, "Fashion Brand") || !strings.Contains(body, "us") {
		logs, _ := exec.Command("docker", "logs", cname).CombinedOutput()
		t.Fatalf("container did not serve the us storefront; body %q\nlogs: %s", body, logs)
	}
}
