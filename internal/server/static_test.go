package server

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// staticApp publishes an image of files under /var/www (no entrypoint
// unless given) and returns its deploy spec for app "site".
func (h *harness) staticApp(tag string, files map[string]string, static string, entry []string) pipeline.AppDeploy {
	h.t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		for d := path.Dir("var/www/" + n); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: "var/www/" + n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		h.t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		h.t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{WorkingDir: "/var/www", Entrypoint: entry})
	if err != nil {
		h.t.Fatal(err)
	}
	ref, _ := name.ParseReference("slipway.local/shop/site:" + tag)
	d, err := h.s.Images.Publish(context.Background(), ref, img)
	if err != nil {
		h.t.Fatal(err)
	}
	return pipeline.AppDeploy{App: "site", Image: driver.Image{Ref: "oci-layout:" + h.s.Images.Dir() + "@" + d.DigestStr()},
		Ref: ref.String(), Digest: d.DigestStr(), Port: 3000, Static: static, Hosts: []string{"site.localhost"}}
}

// A static app runs no process: the router serves its release's files, a
// new release replaces them in one swap, and an image with nothing to run
// and an index.html is detected as static.
func TestStaticSiteDeploys(t *testing.T) {
	h := start(t, t.TempDir())
	v1app := h.staticApp("v1", map[string]string{"out/index.html": "<h1>v1</h1>", "out/_next/static/a-3c2f7a1b9e.js": "js1", "src/secret.ts": "x"}, "out", nil)
	if _, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{v1app}}); err != nil {
		t.Fatalf("%v %v", err, evs)
	}
	if code, b := h.get("site.localhost", "/"); code != 200 || b != "<h1>v1</h1>" {
		t.Fatalf("v1: %d %q", code, b)
	}
	if code, b := h.get("site.localhost", "/_next/static/a-3c2f7a1b9e.js"); code != 200 || b != "js1" {
		t.Errorf("asset: %d %q", code, b)
	}
	if code, _ := h.get("site.localhost", "/../src/secret.ts"); code == 200 {
		t.Error("a file outside the static directory was served")
	}
	if n := len(h.instances(map[string]string{driver.LabelApp: "site"})); n != 0 {
		t.Errorf("%d instances run for a static site", n)
	}
	// Detected: no entrypoint, index.html at the top.
	v2app := h.staticApp("v2", map[string]string{"index.html": "<h1>v2</h1>"}, "", nil)
	if _, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c2", Apps: []pipeline.AppDeploy{v2app}}); err != nil {
		t.Fatalf("%v %v", err, evs)
	}
	if code, b := h.get("site.localhost", "/"); code != 200 || b != "<h1>v2</h1>" {
		t.Fatalf("v2: %d %q", code, b)
	}
	if code, _ := h.get("site.localhost", "/_next/static/a-3c2f7a1b9e.js"); code != 404 {
		t.Errorf("v1's asset after the v2 cutover: %d", code)
	}
	// A static directory the image lacks fails the deploy; v2 keeps serving.
	bad := h.staticApp("v3", map[string]string{"index.html": "<h1>v3</h1>"}, "dist", nil)
	if _, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c3", Apps: []pipeline.AppDeploy{bad}}); err == nil || !strings.Contains(err.Error(), `"dist"`) {
		t.Errorf("missing static dir: %v", err)
	}
	if code, b := h.get("site.localhost", "/"); code != 200 || b != "<h1>v2</h1>" {
		t.Errorf("after the failed deploy: %d %q", code, b)
	}
}
