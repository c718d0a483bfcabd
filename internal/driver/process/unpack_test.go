package process

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is one tar header, with a body for regular files.
type entry struct {
	typ  byte
	name string
	body string // content, or link target
	mode int64
}

func dir(name string) entry { return entry{typ: tar.TypeDir, name: name, mode: 0o755} }
func file(name, body string) entry {
	return entry{typ: tar.TypeReg, name: name, body: body, mode: 0o644}
}
func symlink(name, target string) entry { return entry{typ: tar.TypeSymlink, name: name, body: target} }
func hardlink(name, target string) entry {
	return entry{typ: tar.TypeLink, name: name, body: target}
}

func layer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Mode: e.mode}
		switch e.typ {
		case tar.TypeReg:
			h.Size = int64(len(e.body))
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.body
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
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

func imageOf(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func unpackLayers(t *testing.T, layers ...v1.Layer) (string, error) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst, unpack(context.Background(), imageOf(t, layers...), dst)
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestUnpackWhiteouts(t *testing.T) {
	dst, err := unpackLayers(t,
		layer(t, dir("a/"), file("a/keep", "k"), file("a/gone", "g"), dir("a/sub/"), file("a/sub/x", "x"),
			dir("b/"), file("b/old1", "1"), dir("b/olddir/"), file("b/olddir/f", "f")),
		// Opaque whiteout after an entry of the same layer in that directory:
		// only lower layers' files go.
		layer(t, file("b/new", "n"), file("a/.wh.gone", ""), file("a/.wh.sub", ""), file("b/.wh..wh..opq", ""),
			dir("c/"), file("c/deeper/y", "y")),
		layer(t, file("a/gone", "back")),
	)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"a/keep": true, "a/gone": true, "a/sub": false, "b/old1": false, "b/olddir": false, "b/new": true,
		"a/.wh.gone": false, "b/.wh..wh..opq": false, "c/deeper/y": true,
	} {
		if got := exists(filepath.Join(dst, p)); got != want {
			t.Errorf("%s exists = %v, want %v", p, got, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a/gone")); string(b) != "back" {
		t.Errorf("a/gone = %q, want the upper layer's", b)
	}
}

func TestUnpackRejectsDotDot(t *testing.T) {
	for _, e := range []entry{
		file("../escape", "x"),
		file("a/../../escape", "x"),
		file("./../escape", "x"),
		hardlink("link", "../../etc/passwd"),
	} {
		_, err := unpackLayers(t, layer(t, dir("a/"), e))
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("entry %q -> %q: %v, want ErrUnsafePath", e.name, e.body, err)
		}
	}
}

func TestUnpackSymlinksStayInside(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("original"), 0o644)

	// A relative link out of the root, then a file written through it.
	_, err := unpackLayers(t,
		layer(t, symlink("esc", "../../../../../../../../"+strings.TrimPrefix(outside, "/"))),
		layer(t, file("esc/victim", "pwned"), file("esc/new", "pwned")),
	)
	if err == nil {
		t.Errorf("writing through a link that leaves the root succeeded")
	} else {
		t.Logf("writing through a link that leaves the root: %v", err)
	}
	if exists(filepath.Join(outside, "new")) {
		t.Errorf("a file was created outside the root")
	}

	// A link as the final component is replaced, not written through.
	dst, err := unpackLayers(t,
		layer(t, symlink("f", "../../../../../../../../"+strings.TrimPrefix(victim, "/"))),
		layer(t, file("f", "pwned")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "original" {
		t.Errorf("the file outside the root was overwritten: %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(dst, "f")); fi == nil || !fi.Mode().IsRegular() {
		t.Errorf("f is not a regular file in the root")
	}

	// Absolute links are rewritten to stay inside the root, so writing
	// through one lands inside, like in a container.
	dst, err = unpackLayers(t,
		layer(t, dir("usr/"), dir("usr/lib/"), symlink("lib", "/usr/lib"), symlink("etc", "/"+strings.TrimPrefix(outside, "/")), dir("bin/"), file("bin/busybox", "bb"), symlink("bin/sh", "/bin/busybox")),
		layer(t, file("lib/libc.so", "c")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "usr/lib/libc.so")); string(b) != "c" {
		t.Errorf("file written through /lib -> /usr/lib: %q", b)
	}
	for link, want := range map[string]string{"lib": "usr/lib", "bin/sh": "busybox"} {
		if got, _ := os.Readlink(filepath.Join(dst, link)); got != want {
			t.Errorf("%s -> %q, want %q", link, got, want)
		}
	}
	if got, _ := os.Readlink(filepath.Join(dst, "etc")); strings.HasPrefix(got, "/") {
		t.Errorf("etc -> %q: an absolute target was kept", got)
	}
}

func TestUnpackSkipsDevicesAndDropsSetuid(t *testing.T) {
	dst, err := unpackLayers(t, layer(t,
		dir("dev/"),
		entry{typ: tar.TypeChar, name: "dev/null", mode: 0o666},
		entry{typ: tar.TypeBlock, name: "dev/sda", mode: 0o660},
		entry{typ: tar.TypeFifo, name: "fifo", mode: 0o644},
		entry{typ: tar.TypeReg, name: "suid", mode: 0o4755},
		entry{typ: tar.TypeDir, name: "ro/", mode: 0o555},
		file("ro/f", "x"),
		hardlink("ro/g", "ro/f"),
	))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dev/null", "dev/sda", "fifo"} {
		if exists(filepath.Join(dst, p)) {
			t.Errorf("%s was created", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "suid")); err != nil || fi.Mode()&os.ModeSetuid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("suid: %v %v, want plain 0755", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "ro/g")); string(b) != "x" {
		t.Errorf("hard link ro/g = %q", b)
	}
	// The tree can be removed although the image made ro/ read-only.
	if err := os.RemoveAll(dst); err != nil {
		t.Errorf("removing the rootfs: %v", err)
	}
}

func TestRelativeTarget(t *testing.T) {
	for _, c := range []struct{ dir, target, want string }{
		{".", "/usr/lib", "usr/lib"},
		{"bin", "/bin/busybox", "busybox"},
		{"usr/bin", "/bin/sh", "../../bin/sh"},
		{"usr/bin", "/", "../.."},
		{".", "/", "."},
		{"a", "/../../etc", "../etc"},
	} {
		if got := relativeTarget(c.dir, c.target); got != c.want {
			t.Errorf("relativeTarget(%q, %q) = %q, want %q", c.dir, c.target, got, c.want)
		}
	}
}
