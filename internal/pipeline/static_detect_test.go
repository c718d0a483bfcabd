package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/slipway-dev/slipway/internal/driver"
)

// imageFiles is a static unpacker beside a runtime that does not unpack
// (as with docker): HasProcess answers from runs, Unpack serves root.
type imageFiles struct {
	root     string
	runs     bool
	unpacked atomic.Int64
}

func (f *imageFiles) HasProcess(context.Context, driver.Image) (bool, error) { return f.runs, nil }

func (f *imageFiles) Unpack(context.Context, driver.Image) (driver.Unpacked, error) {
	f.unpacked.Add(1)
	return driver.Unpacked{Root: f.root, WorkDir: "/"}, nil
}

// On a runtime that does not unpack images, an image with nothing to run
// and an index.html is served as a static site; an image that runs
// something is started and never unpacked.
func TestStaticDetectedBesideContainerRuntime(t *testing.T) {
	d, fd := fakeDeployer(t)
	files := &imageFiles{root: t.TempDir()}
	if err := os.WriteFile(filepath.Join(files.root, "index.html"), []byte("static home"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Unpacker = files
	req := fakeRequest("c1")
	req.Apps[0].Health.Path = "/" // verify asks it of the site
	if _, err := d.Deploy(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if got := serving(t, d); got != "static home" {
		t.Fatalf("served %q, want the image's index.html", got)
	}
	if fd.count() != 0 {
		t.Errorf("%d instances started for a static site", fd.count())
	}
	files.runs = true
	before := files.unpacked.Load()
	if _, err := d.Deploy(context.Background(), fakeRequest("c2"), nil); err != nil {
		t.Fatal(err)
	}
	if fd.count() != 1 || files.unpacked.Load() != before {
		t.Errorf("an image with a process: %d instances, unpacked %d more times", fd.count(), files.unpacked.Load()-before)
	}
	if got := serving(t, d); got == "static home" {
		t.Error("the static site still answers after a deploy of an app with a process")
	}
}
