package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Buildah returns the path of Debian's buildah (SLIPWAY_BUILDAH, else
// buildah on PATH), for Dockerfile builds with no Docker engine. It skips,
// or fails under SLIPWAY_REQUIRE_DOCKER=1, when buildah is missing or this
// is not root (buildah builds as root here; scripts/ci/setup-buildah.sh
// installs and checks it).
func Buildah(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath(setting("SLIPWAY_BUILDAH", "buildah"))
	if err != nil {
		unavailable(t, "buildah is not installed: %v", err)
		return ""
	}
	if os.Geteuid() != 0 {
		unavailable(t, "buildah builds as root here, and this is uid %d", os.Geteuid())
		return ""
	}
	if out, err := exec.Command(p, "--version").CombinedOutput(); err != nil {
		unavailable(t, "%s --version: %v %s", p, err, out)
		return ""
	}
	return p
}

// RegistryBusybox pushes BusyboxImage to reg and returns its reference, for
// a Dockerfile's FROM when buildah builds it: buildah pulls its bases from
// a registry (over plain http, as reg is on loopback). "" when busybox is
// missing (the test is then skipped or failed).
func RegistryBusybox(t testing.TB, reg *Registry) string {
	t.Helper()
	img := BusyboxImage(t)
	if img == nil || reg == nil {
		return ""
	}
	ref, err := name.NewTag(reg.Repo("slipway-testenv/busybox:latest"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(context.Background()), remote.WithAuth(reg.Authenticator())); err != nil {
		t.Fatalf("pushing busybox to %s: %v", ref, err)
	}
	return ref.String()
}
