package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrChanged is wrapped by errors from a layer whose source directory changed
// after the layer's diff ID was computed.
var ErrChanged = errors.New("layer source changed since the layer was built")

// ErrClosed is returned by a DirLayer used after Close.
var ErrClosed = errors.New("layer is closed")

// DirLayer is a reproducible layer made from a directory tree.
//
// Its content identity, the diff ID (sha256 of the uncompressed tar), is
// computed when the layer is made, in one cheap pass (read + sha256, no
// compression). The gzip blob and its digest are produced lazily, on the
// first call to Digest, Size or Compressed: a publish that finds the image
// already in place never compresses anything. The compressing pass re-reads
// the directory and fails with ErrChanged unless it sees the same bytes.
//
// The compressed blob is spooled to an unlinked temporary file rather than
// held in memory or recompressed for each reader: compression is the
// expensive step, a registry may ask for the blob more than once (retries),
// and what is uploaded must be exactly what was hashed even if the directory
// changes meanwhile. Memory use stays at a few buffers whatever the size.
type DirLayer struct {
	src       *tarSource
	level     int
	tempDir   string
	mediaType types.MediaType

	diffID v1.Hash
	usize  int64

	mu     sync.Mutex
	done   bool // compress ran
	closed bool
	spool  *os.File
	digest v1.Hash
	size   int64
	err    error
}

var _ v1.Layer = (*DirLayer)(nil)

// Layer makes a reproducible layer from the tree at dir, placed at the work
// dir inside the image (WithWorkDir, default /var/www). Entries are sorted,
// parent directories are emitted, every mtime is the WithModTime time, owners
// are 0:0 without names, permissions are normalised to 0755 (directories and
// executables), 0644 (other files) and 0777 (symlinks, kept as symlinks).
// Hard links are stored as separate files. Device nodes, sockets, named pipes
// and .wh.* names are rejected with ErrUnsupportedFile naming the file.
func Layer(ctx context.Context, dir string, opts ...Option) (*DirLayer, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	src, err := newTarSource(dir, o)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	cw := &countWriter{w: h}
	if err := src.WriteTo(ctx, cw); err != nil {
		return nil, err
	}
	return &DirLayer{
		src:       src,
		level:     o.level,
		tempDir:   o.tempDir,
		mediaType: o.mediaType,
		diffID:    sum(h),
		usize:     cw.n,
	}, nil
}

// DiffID returns the sha256 of the uncompressed tar; it never compresses.
func (l *DirLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// UncompressedSize returns the length of the uncompressed tar.
func (l *DirLayer) UncompressedSize() int64 { return l.usize }

// MediaType returns the layer's media type (gzip tar, OCI or Docker flavour).
func (l *DirLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Digest returns the sha256 of the gzip blob, compressing on first use.
func (l *DirLayer) Digest() (v1.Hash, error) {
	if err := l.compress(); err != nil {
		return v1.Hash{}, err
	}
	return l.digest, nil
}

// Size returns the length of the gzip blob, compressing on first use.
func (l *DirLayer) Size() (int64, error) {
	if err := l.compress(); err != nil {
		return 0, err
	}
	return l.size, nil
}

// Compressed returns the gzip blob, compressing on first use. Readers are
// independent and may be used concurrently.
func (l *DirLayer) Compressed() (io.ReadCloser, error) {
	if err := l.compress(); err != nil {
		return nil, err
	}
	return io.NopCloser(io.NewSectionReader(l.spool, 0, l.size)), nil
}

// Uncompressed returns the tar stream: from the spooled blob when there is
// one, else regenerated from the directory and checked against the diff ID
// (a mismatch surfaces as ErrChanged from Read).
func (l *DirLayer) Uncompressed() (io.ReadCloser, error) {
	l.mu.Lock()
	done, closed, spool, size, err := l.done, l.closed, l.spool, l.size, l.err
	l.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if done && err == nil {
		return newGunzipReader(io.NewSectionReader(spool, 0, size))
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(l.writeVerified(pw))
	}()
	return pr, nil
}

// Close releases the spooled blob. The layer is unusable afterwards.
func (l *DirLayer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.spool != nil {
		err := l.spool.Close()
		l.spool = nil
		return err
	}
	return nil
}

// writeVerified writes the tar to w and fails unless it hashes to the diff ID.
func (l *DirLayer) writeVerified(w io.Writer) error {
	h := sha256.New()
	if err := l.src.WriteTo(context.Background(), io.MultiWriter(w, h)); err != nil {
		return err
	}
	if got := sum(h); got != l.diffID {
		return fmt.Errorf("%w: diff ID was %s, now %s", ErrChanged, l.diffID, got)
	}
	return nil
}

func (l *DirLayer) compress() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.done {
		return l.err
	}
	l.done = true
	l.err = l.compressLocked()
	return l.err
}

func (l *DirLayer) compressLocked() error {
	f, err := os.CreateTemp(l.tempDir, "slipway-layer-*.tar.gz")
	if err != nil {
		return fmt.Errorf("layer: spooling: %w", err)
	}
	// Unlinked now, freed when the last descriptor closes: no leftovers.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return fmt.Errorf("layer: spooling: %w", err)
	}

	// Tar and hash on one goroutine, gzip on this one: two cores busy.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(l.writeVerified(pw)) }()

	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	err = gzipTo(bw, pr, l.level)
	pr.CloseWithError(err) // stops the producer if we failed first
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("layer: compressing: %w", err)
	}
	l.spool, l.digest, l.size = f, sum(h), cw.n
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func sum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}
