package image

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-dev/slipway/internal/testenv"
)

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLoadBaseScratch(t *testing.T) {
	img, err := LoadBase(context.Background(), "scratch")
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	if len(ls) != 0 {
		t.Fatalf("scratch has %d layers", len(ls))
	}
}

func TestLoadBaseLayoutAndTarball(t *testing.T) {
	bb := testenv.BusyboxImage(t)
	want := digestOf(t, bb)
	ctx := context.Background()

	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(bb, layout.WithAnnotations(map[string]string{RefNameAnnotation: "busybox:1.35"})); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{
		"oci-layout:" + dir,
		"oci-layout:" + dir + ":1.35",
		"oci-layout:" + dir + ":busybox:1.35",
		"oci-layout:" + dir + "@" + want.String(),
	} {
		img, err := LoadBase(ctx, ref)
		if err != nil {
			t.Errorf("LoadBase(%s): %v", ref, err)
			continue
		}
		if got := digestOf(t, img); got != want {
			t.Errorf("LoadBase(%s) = %s, want %s", ref, got, want)
		}
	}
	bad := "oci-layout:" + dir + ":nope"
	if _, err := LoadBase(ctx, bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "busybox:1.35") {
		t.Errorf("missing tag: err = %v, want one naming the ref and listing busybox:1.35", err)
	}

	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := tarball.WriteToFile(tarPath, name.MustParseReference("busybox:test"), bb); err != nil {
		t.Fatal(err)
	}
	img, err := LoadBase(ctx, "tarball:"+tarPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	wantCfg, _ := bb.ConfigName()
	if cfg != wantCfg {
		t.Errorf("tarball config %s, want %s", cfg, wantCfg)
	}

	missing := "tarball:" + filepath.Join(t.TempDir(), "none.tar")
	if _, err := LoadBase(ctx, missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v, want one naming %s", err, missing)
	}
}

func TestLoadBaseRegistry(t *testing.T) {
	reg := testenv.StartRegistry(t)
	bb := testenv.BusyboxImage(t)
	ref := reg.Addr + "/base/busybox:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, bb); err != nil {
		t.Fatal(err)
	}
	img, err := LoadBase(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digestOf(t, img), digestOf(t, bb); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	missing := reg.Addr + "/base/nothing:1"
	if _, err := LoadBase(context.Background(), missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("err = %v, want one naming %s", err, missing)
	}
}

func TestIsLoopback(t *testing.T) {
	for ref, want := range map[string]bool{
		"127.0.0.1:5000/a":  true,
		"127.1.2.3:5000/a":  true,
		"[::1]:5000/a":      true,
		"localhost/a":       true,
		"localhost:5000/a":  true,
		"10.0.0.1:5000/a":   false,
		"registry.io/a":     false,
		"library/busybox":   false,
		"192.168.1.1:443/a": false,
	} {
		if got := isLoopback(ref); got != want {
			t.Errorf("isLoopback(%s) = %v", ref, got)
		}
	}
}
