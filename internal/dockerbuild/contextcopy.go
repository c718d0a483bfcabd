package dockerbuild

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// CopyTo writes the context's files into dest (which must not exist) as
// WriteTar sends them to the engine: only the files .dockerignore keeps,
// modes and links as they are, every mtime contextTime. A builder reading a
// directory (buildah) then sees the same context as the engine.
func (c *Context) CopyTo(dest string) error {
	if err := os.Mkdir(dest, 0o755); err != nil {
		return fmt.Errorf("copying the build context: %w", err)
	}
	type dir struct {
		path string
		perm fs.FileMode
	}
	var dirs []dir
	for _, rel := range c.files {
		to := filepath.Join(dest, filepath.FromSlash(rel))
		st, err := c.copyEntry(rel, to)
		if err != nil {
			return fmt.Errorf("copying the build context: %s: %w", rel, err)
		}
		switch {
		case st.IsDir():
			dirs = append(dirs, dir{to, st.Mode().Perm()})
		case st.Mode().IsRegular(): // never a link: Chtimes would follow it
			os.Chtimes(to, contextTime, contextTime)
		}
	}
	// Directories last, deepest first: writing into one changes its mtime,
	// and a read-only one takes no files.
	slices.Reverse(dirs)
	for _, d := range append(dirs, dir{dest, 0o755}) {
		if err := os.Chmod(d.path, d.perm); err != nil {
			return fmt.Errorf("copying the build context: %w", err)
		}
		os.Chtimes(d.path, contextTime, contextTime)
	}
	return nil
}

// copyEntry copies one file, link or directory (its perms set later).
func (c *Context) copyEntry(rel, to string) (fs.FileInfo, error) {
	from := filepath.Join(c.Dir, filepath.FromSlash(rel))
	st, err := os.Lstat(from)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return nil, err
	}
	switch {
	case st.IsDir():
		if err := os.Mkdir(to, 0o700); err != nil && !os.IsExist(err) {
			return nil, err
		}
	case st.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(from)
		if err != nil {
			return nil, err
		}
		err = os.Symlink(link, to)
		return st, err
	case st.Mode().IsRegular():
		return st, copyFile(from, to, st.Mode().Perm())
	}
	return st, nil // sockets, devices: the engine gets only their header
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(to, perm) // the umask took bits away
}
