package process

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// HasProcess reads an image's config without unpacking it.
func TestHasProcess(t *testing.T) {
	store := newLayoutStore(t)
	d := newDriver(t, t.TempDir())
	files := imageOf(t, layer(t, file("index.html", "<h1>home</h1>")))
	withCmd, err := mutate.Config(files, v1.Config{Cmd: []string{"/bin/app"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		img  v1.Image
		want bool
	}{{files, false}, {withCmd, true}} {
		im := store.publish(t, tc.img)
		got, err := d.HasProcess(context.Background(), im)
		if err != nil || got != tc.want {
			t.Errorf("HasProcess: %v, %v; want %v", got, err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(d.dir, "images")); len(ents) != 0 {
		t.Errorf("HasProcess unpacked %d image(s)", len(ents))
	}
}
