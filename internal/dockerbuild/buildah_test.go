//go:build integration

package dockerbuild

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestBuildahBuildSecretNotInImage builds a two-stage Dockerfile with
// buildah, its base pulled from a loopback registry over http: the secret
// reaches the RUN (the step checks its hash) and is in no layer, nor the
// config with its history; the secret file is gone after the build; a
// second build takes every step from the layer cache and gives the same
// image; a failing step is named in the error.
func TestBuildahBuildSecretNotInImage(t *testing.T) {
	bin := testenv.Buildah(t)
	reg := testenv.StartRegistry(t)
	base := testenv.RegistryBusybox(t, reg)
	if bin == "" || base == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	writeFiles(t, dir, secretApp(base))
	bc, err := NewContext(dir, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBuildah(bin, filepath.Join(t.TempDir(), "buildah"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.RemoveStorage(context.Background()) })
	b.secretsIn = t.TempDir()
	ids, err := b.BaseIDs(ctx, []string{base})
	if err != nil || len(ids) != 1 || len(ids[0]) != 64 {
		t.Fatalf("BaseIDs = %q, %v; want one image ID", ids, err)
	}
	req := Request{Context: bc, Args: map[string]string{"GREETING": "hello"},
		Secrets: map[string][]byte{"NPM_TOKEN": []byte(canary)}, Tag: "slipway-test/dockerbuild:buildah",
		Labels: map[string]string{"dev.slipway.test": "1"}}
	out, id := buildahBuild(t, ctx, b, req)
	for _, l := range out {
		if strings.Contains(l, canary) {
			t.Fatalf("build output has the secret: %q", l)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(b.secretsIn, "*")); len(left) > 0 {
		t.Errorf("secret files left after the build: %v", left)
	}
	img, remove, err := b.Export(ctx, id, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	assertImage(t, img, "app/out.txt", "hello 27")

	// No change: every step from the layer cache, the same image.
	out2, id2 := buildahBuild(t, ctx, b, req)
	if id2 != id {
		t.Errorf("rebuild with no change gave image %s, want %s\n%s", id2, id, strings.Join(out2, "\n"))
	}
	if n := strings.Count(strings.Join(out2, "\n"), "Using cache"); n < 3 {
		t.Errorf("rebuild used the layer cache %d times, want every step:\n%s", n, strings.Join(out2, "\n"))
	}

	// A build with other labels (a new commit) leaves the earlier build
	// untagged: pruning removes it, keeps the new one and the layer cache.
	req3 := req
	req3.Labels = map[string]string{"dev.slipway.test": "1", "dev.slipway.commit": "2"}
	out3, id3 := buildahBuild(t, ctx, b, req3)
	if strings.Count(strings.Join(out3, "\n"), "Using cache") < 3 {
		t.Errorf("a build with new labels did not use the layer cache:\n%s", strings.Join(out3, "\n"))
	}
	removed, err := b.PruneBuilds(ctx, map[string]string{"dev.slipway.test": "1"}, id3)
	if err != nil || !slices.Contains(removed, strings.TrimPrefix(id, "sha256:")) {
		t.Fatalf("PruneBuilds removed %v, %v; want the first build %s among them", removed, err, id)
	}
	if left, err := b.untaggedWith(ctx, map[string]string{"dev.slipway.test": "1"}); err != nil || len(left) != 0 {
		t.Errorf("after pruning, untagged builds left: %v, %v", left, err)
	}
	if _, _, err := b.labels(ctx, strings.TrimPrefix(id3, "sha256:")); err != nil {
		t.Errorf("the kept build is gone: %v", err)
	}
	out4, _ := buildahBuild(t, ctx, b, req)
	if strings.Count(strings.Join(out4, "\n"), "Using cache") < 3 {
		t.Errorf("after pruning, the layer cache is gone:\n%s", strings.Join(out4, "\n"))
	}

	// A failing step is named.
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\nRUN echo about to fail && false\n"), 0o644)
	bc, _ = NewContext(dir, "Dockerfile")
	req.Context = bc
	if _, err := b.Build(ctx, req); err == nil || !strings.Contains(err.Error(), "STEP 2/") || !strings.Contains(err.Error(), "about to fail && false") {
		t.Errorf("failing build: err %v, want it to name STEP 2 and its command", err)
	}
}

func buildahBuild(t *testing.T, ctx context.Context, b *Buildah, req Request) ([]string, string) {
	t.Helper()
	var out []string
	req.Line = func(s string) { out = append(out, s) }
	start := time.Now()
	id, err := b.Build(ctx, req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, strings.Join(out, "\n"))
	}
	t.Logf("buildah build in %s:\n%s", time.Since(start).Round(time.Millisecond), strings.Join(out, "\n"))
	return out, id
}

// assertImage fails if the config (history included) or any single layer
// holds the canary, and unless file holds want.
func assertImage(t *testing.T, img v1.Image, file, want string) {
	t.Helper()
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfg, []byte(canary)) {
		t.Fatalf("image config has the secret: %s", cfg)
	}
	if !bytes.Contains(cfg, []byte("dev.slipway.test")) {
		t.Fatalf("image config lacks the label: %s", cfg)
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
			if bytes.Contains(body, []byte(canary)) || strings.Contains(h.Name, canary) {
				t.Fatalf("layer %d: %s holds the secret", i, h.Name)
			}
			if strings.TrimPrefix(h.Name, "./") == file {
				found = strings.TrimSpace(string(body)) == want
			}
		}
		rc.Close()
	}
	if !found {
		t.Fatalf("no layer has %s = %q", file, want)
	}
}
