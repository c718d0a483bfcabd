package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// EngineBusybox loads BusyboxImage into RequireDocker's engine (once per
// digest: the tag names it) and returns its tag, for a Dockerfile's FROM:
// no hub is reachable, so a build's base is made here. It skips, or fails
// under SLIPWAY_REQUIRE_DOCKER=1, without an engine or busybox.
func EngineBusybox(t testing.TB) string {
	t.Helper()
	if RequireDocker(t) == "" {
		return ""
	}
	img := BusyboxImage(t)
	if img == nil {
		return ""
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("slipway-testenv/busybox:" + d.Hex[:12])
	if err != nil {
		t.Fatal(err)
	}
	if out := Docker(t, "image", "ls", "-q", tag.String()); strings.TrimSpace(out) != "" {
		return tag.String()
	}
	path := filepath.Join(t.TempDir(), "busybox.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.Write(tag, img, f); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	Docker(t, "load", "-i", path)
	return tag.String()
}
