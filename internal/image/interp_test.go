package image

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-dev/slipway/internal/testenv"
)

func tarLayer(t *testing.T, files ...string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f, Mode: 0o755, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLookPath(t *testing.T) {
	if ok, err := LookPath(Scratch(), "node"); err != nil || ok {
		t.Errorf("scratch has node: %v %v", ok, err)
	}
	img, err := mutate.AppendLayers(Scratch(), tarLayer(t, "usr/local/bin/node", "bin/sh"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := LookPath(img, "node"); err != nil || !ok {
		t.Errorf("node on the default PATH not found: %v %v", ok, err)
	}
	// A PATH that leaves /usr/local/bin out does not find it.
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Env = []string{"PATH=/bin"}
	narrow, _ := mutate.ConfigFile(img, cf)
	if ok, _ := LookPath(narrow, "node"); ok {
		t.Errorf("node found outside PATH")
	}
	if ok, _ := LookPath(narrow, "sh"); !ok {
		t.Errorf("sh in /bin not found")
	}
	// A later layer's whiteout removes it.
	gone, _ := mutate.AppendLayers(img, tarLayer(t, "usr/local/bin/.wh.node"))
	if ok, _ := LookPath(gone, "node"); ok {
		t.Errorf("whited-out node found")
	}
	if _, err := LookPath(img, "./node"); err == nil {
		t.Errorf("a path is not a program name")
	}
}

func TestLookPathNodeImage(t *testing.T) {
	img := testenv.NodeImage(t)
	if img == nil {
		return
	}
	if ok, err := LookPath(img, "node"); err != nil || !ok {
		t.Errorf("node image has no node: %v %v", ok, err)
	}
}
