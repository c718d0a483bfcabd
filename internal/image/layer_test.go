package image

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// writeTree creates a small app tree under dir. umask and mtime vary the
// metadata that must not leak into the layer.
func writeTree(t *testing.T, dir string, umask int, mtime time.Time) {
	t.Helper()
	old := syscall.Umask(umask)
	defer syscall.Umask(old)
	files := map[string]string{
		"server.js":                        "console.log('hi')\n",
		"node_modules/a/index.js":          "module.exports = 1\n",
		"node_modules/a/package.json":      `{"name":"a"}`,
		"node_modules/.bin/.keep":          "",
		"public/img/logo.svg":              "<svg/>",
		"a.txt":                            "a",
		"a/b.txt":                          "b",
		strings.Repeat("long", 30) + ".js": "long name",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho run\n"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("node_modules/a/index.js", filepath.Join(dir, "link.js")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("../", 50)+"target", filepath.Join(dir, "longlink")); err != nil {
		t.Fatal(err)
	}
	// Hard links are stored as plain copies (inode numbers are machine-specific).
	if err := os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "hard.txt")); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(dir, strings.Repeat("deep/", 60)+"x.txt")
	if err := os.MkdirAll(filepath.Dir(deep), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(deep, []byte("deep"), 0o666); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustLayer(t *testing.T, dir string, opts ...Option) *DirLayer {
	t.Helper()
	l, err := Layer(context.Background(), dir, opts...)
	if err != nil {
		t.Fatalf("Layer(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func digests(t *testing.T, l *DirLayer) (diffID, digest v1.Hash) {
	t.Helper()
	diffID, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	digest, err = l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return diffID, digest
}

func TestLayerReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, 0o022, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	writeTree(t, b, 0o077, time.Date(2024, 6, 7, 8, 9, 10, 0, time.UTC))

	when := WithModTime(time.Unix(1700000000, 0))
	da, ga := digests(t, mustLayer(t, a, when))
	db, gb := digests(t, mustLayer(t, b, when))
	if da != db || ga != gb {
		t.Fatalf("same content, different layers: %s/%s vs %s/%s", da, ga, db, gb)
	}

	if err := os.WriteFile(filepath.Join(b, "a/b.txt"), []byte("c"), 0o644); err != nil {
		t.Fatal(err)
	}
	dc, gc := digests(t, mustLayer(t, b, when))
	if dc == da || gc == ga {
		t.Fatalf("one byte changed, same layer %s/%s", dc, gc)
	}

	// The mtime option is part of the content.
	dd, _ := digests(t, mustLayer(t, a, WithModTime(time.Unix(1, 0))))
	if dd == da {
		t.Fatal("different mtime option, same diff ID")
	}
}

func TestLayerEntries(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, 0o077, time.Now())
	mtime := time.Unix(1700000000, 0).UTC()
	l := mustLayer(t, dir, WithModTime(mtime), WithWorkDir("/srv/app/"))

	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	byName := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		byName[h.Name] = h
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q, want 0:0 unnamed", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, mtime)
		}
		if len(h.PAXRecords) > 0 || (h.Format != tar.FormatGNU) {
			t.Errorf("%s: format %v, PAX records %v; want GNU without PAX", h.Name, h.Format, h.PAXRecords)
		}
	}
	if names[0] != "srv/" || names[1] != "srv/app/" {
		t.Fatalf("first entries %q, want the parents srv/ and srv/app/", names[:2])
	}
	// Sorted per directory by name, depth-first, as GNU tar --sort=name.
	wantOrder := []string{"srv/app/a/", "srv/app/a/b.txt", "srv/app/a.txt", "srv/app/empty/"}
	idx := func(n string) int {
		for i, m := range names {
			if m == n {
				return i
			}
		}
		t.Fatalf("no entry %s in %q", n, names)
		return -1
	}
	for i := 1; i < len(wantOrder); i++ {
		if idx(wantOrder[i-1]) > idx(wantOrder[i]) {
			t.Errorf("%s comes after %s", wantOrder[i-1], wantOrder[i])
		}
	}
	checks := map[string]struct {
		typ  byte
		mode int64
	}{
		"srv/app/":            {tar.TypeDir, 0o755},
		"srv/app/empty/":      {tar.TypeDir, 0o755},
		"srv/app/a.txt":       {tar.TypeReg, 0o644},
		"srv/app/hard.txt":    {tar.TypeReg, 0o644},
		"srv/app/run.sh":      {tar.TypeReg, 0o755},
		"srv/app/link.js":     {tar.TypeSymlink, 0o777},
		"srv/app/public/img/": {tar.TypeDir, 0o755},
	}
	for n, c := range checks {
		h := byName[n]
		if h == nil {
			t.Errorf("missing %s", n)
			continue
		}
		if h.Typeflag != c.typ || h.Mode != c.mode {
			t.Errorf("%s: type %c mode %o, want %c %o", n, h.Typeflag, h.Mode, c.typ, c.mode)
		}
	}
	if h := byName["srv/app/link.js"]; h != nil && h.Linkname != "node_modules/a/index.js" {
		t.Errorf("symlink target %q", h.Linkname)
	}
	if h := byName["srv/app/longlink"]; h == nil || h.Linkname != strings.Repeat("../", 50)+"target" {
		t.Errorf("long symlink target not kept: %+v", h)
	}
	long := "srv/app/" + strings.Repeat("deep/", 60) + "x.txt"
	if byName[long] == nil {
		t.Errorf("missing the %d-byte path", len(long))
	}
}

func TestLayerRejectsSpecialFiles(t *testing.T) {
	t.Run("socket", func(t *testing.T) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "app.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Skipf("no unix sockets: %v", err)
		}
		defer ln.Close()
		_, err = Layer(context.Background(), dir)
		if !errors.Is(err, ErrUnsupportedFile) || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "socket") {
			t.Fatalf("err = %v, want ErrUnsupportedFile naming %s as a socket", err, sock)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		dir := t.TempDir()
		fifo := filepath.Join(dir, "sub", "pipe")
		os.Mkdir(filepath.Dir(fifo), 0o755)
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		_, err := Layer(context.Background(), dir)
		if !errors.Is(err, ErrUnsupportedFile) || !strings.Contains(err.Error(), fifo) {
			t.Fatalf("err = %v, want ErrUnsupportedFile naming %s", err, fifo)
		}
	})
	t.Run("whiteout", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ".wh.gone"), nil, 0o644)
		_, err := Layer(context.Background(), dir)
		if !errors.Is(err, ErrUnsupportedFile) || !strings.Contains(err.Error(), ".wh.gone") {
			t.Fatalf("err = %v, want ErrUnsupportedFile naming .wh.gone", err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		_, err := Layer(context.Background(), filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("err = %v, want one naming the directory", err)
		}
	})
}

func TestLayerLazyCompressionAndChange(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("one"), 0o644)
	l := mustLayer(t, dir)
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if done {
		t.Fatal("Layer compressed eagerly; only DiffID should be computed up front")
	}
	// Change after the diff ID was taken: the compressing pass must notice.
	os.WriteFile(filepath.Join(dir, "f"), []byte("two"), 0o644)
	if _, err := l.Digest(); !errors.Is(err, ErrChanged) {
		t.Fatalf("Digest after change: %v, want ErrChanged", err)
	}
}

func TestLayerCompressedIsStableAndSpooled(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, 0o022, time.Now())
	l := mustLayer(t, dir)
	d1, _ := l.Digest()
	// Compressed blob survives the directory going away (it is spooled).
	os.RemoveAll(dir)
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := v1.SHA256(rc)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := l.Size()
	if h != d1 || n != size {
		t.Fatalf("Compressed hashes to %s (%d bytes), Digest says %s (%d)", h, n, d1, size)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Compressed(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Compressed after Close: %v", err)
	}
}

func TestLayerFollowsRootSymlink(t *testing.T) {
	real := t.TempDir()
	os.WriteFile(filepath.Join(real, "f"), []byte("x"), 0o644)
	link := filepath.Join(t.TempDir(), ".deploy")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	a, _ := digests(t, mustLayer(t, real))
	b, _ := digests(t, mustLayer(t, link))
	if a != b {
		t.Fatalf("a symlinked .deploy gives %s, the directory itself %s", b, a)
	}
}
