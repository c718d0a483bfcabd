package registry

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// TestIndexCacheSeesOtherHandlesPublishes: a handle that cached index.json
// sees what another handle (another process, say) publishes afterwards, and
// its own publishes at once.
func TestIndexCacheSeesOtherHandlesPublishes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	a, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := mustRef(t, "slipway.local/shop/web:abc")
	for i := range 3 {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		pub, by := a, b
		if i%2 == 1 {
			pub, by = b, a
		}
		want, err := pub.Publish(ctx, ref, img)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []*Layout{by, pub, by} { // by has the previous index cached
			got, ok, err := l.Exists(ctx, ref)
			if err != nil || !ok || got.String() != want.DigestStr() {
				t.Fatalf("publish %d: Exists = %s %v %v, want %s", i+1, got, ok, err, want.DigestStr())
			}
		}
	}
	if n := len(readIndex(t, dir).Manifests); n != 1 {
		t.Errorf("index lists %d images, want 1 (the tag replaced twice)", n)
	}
}
