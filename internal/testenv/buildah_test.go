package testenv

import (
	"path/filepath"
	"testing"
)

// Buildah must fail, not skip, where CI requires the real parts, and skip locally.
func TestBuildahMissing(t *testing.T) {
	t.Setenv("SLIPWAY_BUILDAH", filepath.Join(t.TempDir(), "no-buildah"))
	for _, required := range []bool{true, false} {
		t.Run(map[bool]string{true: "required", false: "local"}[required], func(t *testing.T) {
			t.Setenv(RequireEnv, map[bool]string{true: "1", false: ""}[required])
			rec := &recorder{TB: t}
			got := Buildah(rec)
			if got != "" || (rec.fatal != "") != required || (rec.skipped != "") == required {
				t.Fatalf("Buildah = %q (skip %q, fatal %q), want required=%v", got, rec.skipped, rec.fatal, required)
			}
		})
	}
}

// On a machine with buildah, Buildah finds it and a busybox base reaches a registry.
func TestBuildahAndRegistryBusybox(t *testing.T) {
	if Buildah(t) == "" {
		return
	}
	reg := StartRegistry(t)
	if ref := RegistryBusybox(t, reg); ref != reg.Repo("slipway-testenv/busybox:latest") {
		t.Fatalf("RegistryBusybox = %q", ref)
	}
}
