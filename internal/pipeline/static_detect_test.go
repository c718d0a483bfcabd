package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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

// A static site runs no process: a configured health path must be one of
// its files, and a path that is none fails the deploy before anything
// starts or moves, saying why, instead of a bare 404 at verify after the
// cutover.
func TestStaticSiteHealthPath(t *testing.T) {
	d, fd := fakeDeployer(t)
	files := &imageFiles{root: t.TempDir()}
	if err := os.WriteFile(filepath.Join(files.root, "index.html"), []byte("static home"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Unpacker = files
	for _, tc := range []struct {
		name, static, want string
		spa                bool
	}{
		{"detected", "", "detected as one", false},
		{"configured", ".", "`static: .`", false},
		{"spa fallback does not count", ".", "none of healthz, healthz.html, healthz/index.html is in the site", true},
	} {
		req := fakeRequest("bad-" + tc.static) // health: /healthz
		req.Apps[0].Static, req.Apps[0].SPA = tc.static, tc.spa
		_, err := d.Deploy(context.Background(), req, nil)
		if err == nil || !strings.Contains(err.Error(), "health path /healthz cannot pass") ||
			!strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: deploy with a health path that is no file: %v", tc.name, err)
		}
		if got := serving(t, d); got == "static home" || fd.count() != 0 {
			t.Fatalf("%s: after the refused deploy the site answers %q, %d instances", tc.name, got, fd.count())
		}
	}
	// A file answers it (as the router finds files: healthz.html for
	// /healthz), and verify, which asks it of the site, passes.
	if err := os.WriteFile(filepath.Join(files.root, "healthz.html"), []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := d.Deploy(context.Background(), fakeRequest("good"), nil)
	if err != nil {
		t.Fatalf("deploy with healthz.html: %v", err)
	}
	if got := serving(t, d); got != "static home" {
		t.Fatalf("served %q", got)
	}
	for _, st := range rel.Stages {
		if st.Name == StageVerify && st.Status != "ok" {
			t.Errorf("verify: %s %s", st.Status, st.Output)
		}
	}
	// The default check (no health path configured) asks / of the site.
	os.Remove(filepath.Join(files.root, "healthz.html"))
	req := fakeRequest("default")
	req.Apps[0].Health.Path, req.Apps[0].Health.MaxStatus = "/", 500
	if _, err := d.Deploy(context.Background(), req, nil); err != nil {
		t.Fatalf("default health check on a static site: %v", err)
	}
}
