package registry

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/testenv"
)

func listBlobs(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, _ := e.Info()
		out[e.Name()] = info.ModTime().UnixNano()
	}
	return out
}

func readIndex(t *testing.T, dir string) v1.IndexManifest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestLayoutPublishIdempotentAndReplace(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "images")
	store, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app := appDir(t, "v1")
	img := build(t, testenv.BusyboxImage(t), app)
	ref := mustRef(t, "slipway.local/shop/web:abc")

	d, err := store.Publish(ctx, ref, img)
	if err != nil {
		t.Fatal(err)
	}
	blobs := listBlobs(t, dir)
	if len(blobs) != 4 { // base layer, app layer, config, manifest
		t.Fatalf("%d blobs, want 4", len(blobs))
	}
	indexInfo, _ := os.Stat(filepath.Join(dir, "index.json"))

	// Same image, and a rebuild of the same dir: nothing written at all.
	for _, again := range []v1.Image{img, build(t, testenv.BusyboxImage(t), app)} {
		d2, err := store.Publish(ctx, ref, again)
		if err != nil || d2 != d {
			t.Fatalf("republish: %s %v, want %s", d2, err, d)
		}
	}
	if after := listBlobs(t, dir); len(after) != len(blobs) {
		t.Errorf("republish changed blobs: %d -> %d", len(blobs), len(after))
	}
	if info, _ := os.Stat(filepath.Join(dir, "index.json")); !info.ModTime().Equal(indexInfo.ModTime()) {
		t.Errorf("republish rewrote index.json")
	}
	if n := len(readIndex(t, dir).Manifests); n != 1 {
		t.Errorf("%d index entries, want 1", n)
	}

	// Lookup.
	h, ok, err := store.Exists(ctx, ref)
	if err != nil || !ok || h.String() != d.DigestStr() {
		t.Fatalf("Exists = %s %v %v", h, ok, err)
	}
	if _, ok, _ := store.Exists(ctx, mustRef(t, "slipway.local/shop/web:other")); ok {
		t.Fatal("Exists(other tag) = true")
	}
	got, err := store.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("validate: %v", err)
	}

	// The store is a valid base for LoadBase.
	base, err := image.LoadBase(ctx, "oci-layout:"+dir+":shop/web:abc")
	if err != nil {
		t.Fatal(err)
	}
	if bd, _ := base.Digest(); bd.String() != d.DigestStr() {
		t.Errorf("LoadBase from the store: %s, want %s", bd, d.DigestStr())
	}

	// A new image under the same tag replaces the entry; a second tag adds one.
	d3, err := store.Publish(ctx, ref, build(t, testenv.BusyboxImage(t), appDir(t, "v2")))
	if err != nil || d3 == d {
		t.Fatalf("replace: %s %v", d3, err)
	}
	if _, err := store.Publish(ctx, mustRef(t, "slipway.local/shop/web:old"), img); err != nil {
		t.Fatal(err)
	}
	idx := readIndex(t, dir)
	if len(idx.Manifests) != 2 {
		t.Fatalf("%d index entries, want 2: %+v", len(idx.Manifests), idx.Manifests)
	}
	if h, _, _ := store.Exists(ctx, ref); h.String() != d3.DigestStr() {
		t.Errorf("tag points at %s, want %s", h, d3.DigestStr())
	}
}

func TestLayoutConcurrentPublishers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	const n = 6
	imgs := make([]v1.Image, n)
	for i := range imgs {
		imgs[i] = build(t, nil, appDir(t, string(rune('a'+i))))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate handles, as separate processes would have.
			store, err := OpenLayout(dir)
			if err == nil {
				_, err = store.Publish(ctx, mustRef(t, "slipway.local/shop/app"+string(rune('a'+i))+":1"), imgs[i])
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(readIndex(t, dir).Manifests); got != n {
		t.Fatalf("%d index entries, want %d: lost updates", got, n)
	}
}
