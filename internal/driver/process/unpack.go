package process

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrUnsafePath is wrapped by unpack's error for a layer entry whose name
// (or hard link target) would land outside the root filesystem.
var ErrUnsafePath = errors.New("layer entry escapes the root filesystem")

// Whiteout prefixes of the OCI image spec (layer changesets).
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// unpack applies img's layers in order to the directory dst, which must
// exist and be empty.
//
// Every write goes through an os.Root, so no entry (nor a symbolic link met
// on the way) can reach outside dst; names with ".." components are refused
// outright. Absolute symbolic link targets are rewritten relative to the
// link, so that links keep pointing inside the root when the host follows
// them. Whiteouts delete lower-layer files; device nodes and FIFOs are never
// created; ownership is not kept (files belong to the user running Slipway)
// and setuid/setgid/sticky bits are dropped. Directories get owner rwx so
// that the tree can always be removed.
func unpack(ctx context.Context, img v1.Image, dst string) error {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("listing layers: %w", err)
	}
	for i, l := range layers {
		if err := applyLayer(ctx, root, l); err != nil {
			d, _ := l.Digest()
			return fmt.Errorf("layer %d (%s): %w", i+1, d, err)
		}
	}
	return nil
}

func applyLayer(ctx context.Context, root *os.Root, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return applyTar(ctx, root, rc)
}

// applyTar applies one layer's tar stream to root.
func applyTar(ctx context.Context, root *os.Root, r io.Reader) error {
	tr := tar.NewReader(r)
	// Paths this layer wrote (and their parents): an opaque whiteout hides
	// only what lower layers put in a directory.
	written := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		p, err := entryPath(hdr.Name)
		if err != nil {
			return err
		}
		if p == "." {
			continue // the root itself
		}
		dir, base := path.Dir(p), path.Base(p)

		if base == whiteoutOpaque {
			if err := opaque(root, dir, written); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			if err := root.RemoveAll(path.Join(dir, base[len(whiteoutPrefix):])); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			continue
		}
		if err := applyEntry(root, tr, hdr, p); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		for q := p; q != "." && !written[q]; q = path.Dir(q) {
			written[q] = true
		}
	}
}

// entryPath cleans a tar entry name into a path relative to the root,
// refusing ".." components instead of silently clamping them.
func entryPath(name string) (string, error) {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%q: %w", name, ErrUnsafePath)
		}
	}
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if p == "" {
		p = "."
	}
	return p, nil
}

// opaque empties dir of everything lower layers put there.
func opaque(root *os.Root, dir string, written map[string]bool) error {
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		child := path.Join(dir, n)
		if written[child] {
			continue
		}
		if err := root.RemoveAll(child); err != nil {
			return err
		}
	}
	return nil
}

func applyEntry(root *os.Root, tr *tar.Reader, hdr *tar.Header, p string) error {
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return nil // never create devices; a FIFO would only block readers
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink:
	default:
		return nil // extended headers are consumed by archive/tar; nothing else is a file
	}
	if err := root.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	perm := fs.FileMode(hdr.Mode) & fs.ModePerm
	// An entry replaces what lower layers had at its path, except that a
	// directory over a directory merges.
	if fi, err := root.Lstat(p); err == nil {
		if hdr.Typeflag == tar.TypeDir && fi.IsDir() {
			return root.Chmod(p, perm|0o700)
		}
		if err := root.RemoveAll(p); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.Mkdir(p, 0o700); err != nil {
			return err
		}
		return root.Chmod(p, perm|0o700)
	case tar.TypeReg, tar.TypeGNUSparse: // archive/tar fills a sparse file's holes
		// O_EXCL: never open (and so follow) something already there.
		f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if err == nil {
			err = f.Chmod(perm)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return root.Chtimes(p, hdr.ModTime, hdr.ModTime)
	case tar.TypeSymlink:
		target := hdr.Linkname
		if path.IsAbs(target) {
			target = relativeTarget(path.Dir(p), target)
		}
		return root.Symlink(target, p)
	case tar.TypeLink:
		old, err := entryPath(hdr.Linkname)
		if err != nil {
			return err
		}
		return root.Link(old, p)
	}
	return nil
}

// relativeTarget rewrites an absolute link target (as the image sees it) into
// one relative to the link's directory linkDir (relative to the root).
func relativeTarget(linkDir, target string) string {
	from := strings.Split(path.Clean("/"+linkDir), "/")[1:]
	if linkDir == "." {
		from = nil
	}
	to := strings.Split(path.Clean(target), "/")[1:]
	if path.Clean(target) == "/" {
		to = nil
	}
	i := 0
	for i < len(from) && i < len(to) && from[i] == to[i] {
		i++
	}
	parts := make([]string, 0, len(from)-i+len(to)-i)
	for range from[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, to[i:]...)
	if len(parts) == 0 {
		return "."
	}
	return strings.Join(parts, "/")
}
