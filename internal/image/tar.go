package image

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrUnsupportedFile is wrapped by errors for entries a layer cannot hold:
// device nodes, sockets, named pipes, and names that OCI reserves for
// whiteouts.
var ErrUnsupportedFile = errors.New("unsupported file")

// Normalised permissions. Only "is it executable" survives from the source
// tree: the umask and the checkout tool decide the rest, and they differ
// between machines, so keeping them would break reproducibility.
const (
	modeDir     = 0o755
	modeExec    = 0o755
	modeFile    = 0o644
	modeSymlink = 0o777
)

// root is one host path placed at an absolute path in the image.
type root struct {
	host  string
	image string // clean, absolute
	dir   bool
}

// tarSource writes the deterministic tar stream of a set of roots.
type tarSource struct {
	roots   []root
	modTime time.Time
}

func newTarSource(dir string, o *options) (*tarSource, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("layer source: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("layer source %s: not a directory", dir)
	}
	roots := []root{{host: dir, image: o.workDir, dir: true}}
	for _, e := range o.extra {
		info, err := os.Stat(e.host)
		if err != nil {
			return nil, fmt.Errorf("layer extra file: %w", err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("layer extra file %s: not a regular file", e.host)
		}
		roots = append(roots, root{host: e.host, image: e.image})
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].image < roots[j].image })
	for i := range roots {
		for j := range roots {
			if i != j && (roots[i].image == roots[j].image || strings.HasPrefix(roots[j].image, roots[i].image+"/")) {
				return nil, fmt.Errorf("layer: %s (from %s) overlaps %s (from %s)", roots[j].image, roots[j].host, roots[i].image, roots[i].host)
			}
		}
	}
	return &tarSource{roots: roots, modTime: o.modTime}, nil
}

// bufPool holds copy buffers; one large buffer per file copy keeps syscalls
// and hash calls few.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// WriteTo writes the tar stream to w. Entries come in a fixed order: each
// root's missing parent directories, then the root, then (for a directory)
// its contents depth-first with names sorted bytewise, as os.ReadDir returns
// them.
func (s *tarSource) WriteTo(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	emitted := map[string]bool{}
	for _, r := range s.roots {
		if err := s.parents(tw, r.image, emitted); err != nil {
			return err
		}
		// Roots are followed if they are symlinks (.deploy may be one);
		// links inside them are kept as links.
		info, err := os.Stat(r.host)
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		if err := s.entry(tw, r.host, r.image, info); err != nil {
			return err
		}
		if r.dir {
			if err := s.walk(ctx, tw, r.host, r.image); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("layer: closing tar: %w", err)
	}
	return bw.Flush()
}

// parents emits the directories above imagePath that no earlier root emitted.
func (s *tarSource) parents(tw *tar.Writer, imagePath string, emitted map[string]bool) error {
	parts := strings.Split(strings.TrimPrefix(imagePath, "/"), "/")
	for i := 1; i < len(parts); i++ {
		p := "/" + strings.Join(parts[:i], "/")
		if emitted[p] {
			continue
		}
		emitted[p] = true
		if err := tw.WriteHeader(s.header(tar.TypeDir, p, modeDir, 0, "")); err != nil {
			return fmt.Errorf("layer: writing %s: %w", p, err)
		}
	}
	return nil
}

func (s *tarSource) walk(ctx context.Context, tw *tar.Writer, hostDir, imageDir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(hostDir)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	for _, e := range entries {
		hp := filepath.Join(hostDir, e.Name())
		ip := imageDir + "/" + e.Name()
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		if err := s.entry(tw, hp, ip, info); err != nil {
			return err
		}
		if info.IsDir() {
			if err := s.walk(ctx, tw, hp, ip); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry writes one header (and a regular file's content).
func (s *tarSource) entry(tw *tar.Writer, hostPath, imagePath string, info fs.FileInfo) error {
	if strings.HasPrefix(info.Name(), ".wh.") {
		return fmt.Errorf("layer: %s: %w: names starting with .wh. mean deletions in image layers", hostPath, ErrUnsupportedFile)
	}
	m := info.Mode()
	switch {
	case m.IsDir():
		return s.write(tw, s.header(tar.TypeDir, imagePath, modeDir, 0, ""), hostPath)
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(hostPath)
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		return s.write(tw, s.header(tar.TypeSymlink, imagePath, modeSymlink, 0, target), hostPath)
	case m.IsRegular():
		perm := int64(modeFile)
		if m&0o111 != 0 {
			perm = modeExec
		}
		if err := s.write(tw, s.header(tar.TypeReg, imagePath, perm, info.Size(), ""), hostPath); err != nil {
			return err
		}
		return copyFile(tw, hostPath, info.Size())
	default:
		return fmt.Errorf("layer: %s: %w: %s", hostPath, ErrUnsupportedFile, kind(m))
	}
}

func (s *tarSource) write(tw *tar.Writer, h *tar.Header, hostPath string) error {
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("layer: %s: %w", hostPath, err)
	}
	return nil
}

// header builds a GNU-format header with nothing machine-specific in it:
// root ownership, no user or group names, one fixed mtime, no atime/ctime
// and never a PAX record (GNU long-name entries carry paths over 100 bytes).
func (s *tarSource) header(typ byte, imagePath string, mode, size int64, link string) *tar.Header {
	name := strings.TrimPrefix(imagePath, "/")
	if typ == tar.TypeDir {
		name += "/"
	}
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Linkname: link,
		Size:     size,
		Mode:     mode,
		ModTime:  s.modTime,
		Format:   tar.FormatGNU,
	}
}

// copyFile streams exactly size bytes of the file into the tar; a file that
// grew or shrank since it was listed is an error, not a silently different layer.
func copyFile(w io.Writer, hostPath string, size int64) error {
	f, err := os.Open(hostPath)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer f.Close()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	// Hide f's WriteTo so that CopyBuffer uses our large buffer.
	n, err := io.CopyBuffer(w, struct{ io.Reader }{io.LimitReader(f, size)}, *bp)
	if err != nil {
		return fmt.Errorf("layer: %s: %w", hostPath, err)
	}
	if n != size {
		return fmt.Errorf("layer: %s: file changed while reading (%d of %d bytes)", hostPath, n, size)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	default:
		return "irregular file (" + m.Type().String() + ")"
	}
}
