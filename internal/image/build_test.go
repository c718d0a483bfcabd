package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway-dev/slipway/internal/testenv"
)

var amd64 = &v1.Platform{OS: "linux", Architecture: "amd64"}

func goldenDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "public"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "server.js"), []byte("require('http').createServer().listen(process.env.PORT)\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<h1>hi</h1>\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "start"), []byte("#!/bin/sh\nexec node server.js\n"), 0o755))
	must(os.Symlink("public/index.html", filepath.Join(dir, "index.html")))
	return dir
}

func goldenSpec(dir string) Spec {
	created := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return Spec{
		Dir:         dir,
		Cmd:         []string{"node", "server.js"},
		Env:         map[string]string{"NODE_ENV": "production", "A": "1"},
		ExposedPort: 3000,
		Labels:      Labels(LabelInfo{Project: "p", Store: "de", App: "web", Revision: "abc123", Source: "https://example.com/repo", Created: created}),
		Created:     created,
		Platform:    amd64,
	}
}

// TestBuildGolden pins the digests of a fixed input. If it fails, the layer
// or config bytes changed: every user's next build would be a "new" image.
// Only update the constants for a deliberate format change.
func TestBuildGolden(t *testing.T) {
	img, err := Build(context.Background(), goldenSpec(goldenDir(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	cfgName, _ := img.ConfigName()
	digest, _ := img.Digest()
	ls, _ := img.Layers()
	diffID, _ := ls[0].DiffID()
	const (
		wantDiffID = "sha256:856c0bf4b9ae8ec3d85ccbc46d588a0b1678826468b99075678e6800662cdbcd"
		wantConfig = "sha256:06e2f0f0ae2dfe958554bc00ec3979d5646ef15ff9c136c1f42443aa385e0f48"
		wantDigest = "sha256:0854a081ecc41b8bf556a880bbee5a523f2a1ca739751de3f5425f58df917969"
	)
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 10)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	// gzip: magic, deflate, no flags, MTIME 0, XFL 4 (fastest), OS 255.
	if want := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255}; !bytes.Equal(head, want) {
		t.Errorf("gzip header % x, want % x", head, want)
	}
	if diffID.String() != wantDiffID || cfgName.String() != wantConfig || digest.String() != wantDigest {
		t.Errorf("golden digests changed:\n diff ID %s\n config  %s\n digest  %s", diffID, cfgName, digest)
	}
}

func TestBuildScratchConfig(t *testing.T) {
	dir := goldenDir(t)
	spec := goldenSpec(dir)
	img, err := Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("media type %s, want OCI on scratch", mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.WorkingDir != DefaultWorkDir {
		t.Errorf("WorkingDir %q", c.WorkingDir)
	}
	if want := []string{"A=1", "NODE_ENV=production"}; !reflect.DeepEqual(c.Env, want) {
		t.Errorf("Env %q, want %q (sorted)", c.Env, want)
	}
	if _, ok := c.ExposedPorts["3000/tcp"]; !ok {
		t.Errorf("ExposedPorts %v", c.ExposedPorts)
	}
	if c.Labels[LabelRevision] != "abc123" || c.Labels[LabelStore] != "de" || c.Labels[LabelCreated] != "2025-03-04T05:06:07Z" {
		t.Errorf("Labels %v", c.Labels)
	}
	if !cf.Created.Equal(spec.Created) || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("created %v platform %s/%s", cf.Created, cf.OS, cf.Architecture)
	}

	// Building again gives the same image, and ConfigName is known before
	// anything is compressed.
	again, err := Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := img.ConfigName()
	c2, _ := again.ConfigName()
	if c1 != c2 {
		t.Fatalf("config digests differ: %s vs %s", c1, c2)
	}
	if again.(*built).layer.done {
		t.Fatal("ConfigName compressed the layer")
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("digests differ: %s vs %s", d1, d2)
	}
}

func TestBuildEntrypointScriptOnScratch(t *testing.T) {
	dir := goldenDir(t)
	os.WriteFile(filepath.Join(dir, EntrypointScript), []byte("echo prep\n"), 0o755)
	_, err := Build(context.Background(), goldenSpec(dir))
	if !errors.Is(err, ErrNoShell) || !strings.Contains(err.Error(), "scratch") {
		t.Fatalf("err = %v, want ErrNoShell mentioning scratch", err)
	}
}

func TestBuildOnBusybox(t *testing.T) {
	base := testenv.BusyboxImage(t)
	dir := goldenDir(t)
	os.WriteFile(filepath.Join(dir, EntrypointScript), []byte("echo prep\n"), 0o644)
	spec := goldenSpec(dir)
	spec.Base = base
	spec.Platform = nil
	spec.Entrypoint = []string{"/var/www/start"}
	spec.Cmd = []string{"--port", "3000"}
	spec.Env["PATH"] = "/usr/local/bin:/bin"
	img, err := Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	mt, _ := img.MediaType()
	bmt, _ := base.MediaType()
	if mt != bmt {
		t.Errorf("media type %s, want the base's %s", mt, bmt)
	}
	cf, _ := img.ConfigFile()
	c := cf.Config
	wantEP := []string{"/bin/sh", "-c", `/bin/sh '/var/www/entrypoint.sh' && exec "$@"`, "slipway-entrypoint", "/var/www/start"}
	if !reflect.DeepEqual(c.Entrypoint, wantEP) {
		t.Errorf("Entrypoint\n %q\nwant\n %q", c.Entrypoint, wantEP)
	}
	if !reflect.DeepEqual(c.Cmd, []string{"--port", "3000"}) {
		t.Errorf("Cmd %q", c.Cmd)
	}
	// PATH is replaced in place, the rest appended sorted.
	if want := []string{"PATH=/usr/local/bin:/bin", "A=1", "NODE_ENV=production"}; !reflect.DeepEqual(c.Env, want) {
		t.Errorf("Env %q, want %q", c.Env, want)
	}
	bcf, _ := base.ConfigFile()
	if cf.Architecture != bcf.Architecture || len(cf.RootFS.DiffIDs) != len(bcf.RootFS.DiffIDs)+1 {
		t.Errorf("platform or layers not taken from the base")
	}
	if c.Labels["org.opencontainers.image.title"] == "" {
		t.Errorf("base labels dropped: %v", c.Labels)
	}
}

func TestBuildEntrypointScriptOutsideDir(t *testing.T) {
	base := testenv.BusyboxImage(t)
	app := t.TempDir()
	dir := filepath.Join(app, ".deploy")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644)
	script := filepath.Join(app, EntrypointScript)
	os.WriteFile(script, []byte("#!/bin/sh\necho prep\n"), 0o755)
	img, err := Build(context.Background(), Spec{Base: base, Dir: dir, Cmd: []string{"true"}, EntrypointScript: script})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if got := cf.Config.Entrypoint[2]; got != `'`+ScriptPath+`' && exec "$@"` {
		t.Errorf("wrapper %q, want the executable script run directly from %s", got, ScriptPath)
	}
	// An empty (non-nil) Entrypoint clears the base's Cmd: nothing to exec.
	_, err = Build(context.Background(), Spec{Base: base, Dir: dir, Entrypoint: []string{}, EntrypointScript: script})
	if err == nil || !strings.Contains(err.Error(), "no main process") {
		t.Fatalf("err = %v, want one saying there is no main process", err)
	}
}
