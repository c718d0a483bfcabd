package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-dev/slipway/internal/atomicfile"
)

// RefNameAnnotation names an image in a layout's index.json. Layout stores
// the fully qualified reference (ref.Name()) there.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Layout is the embedded image store: an OCI image layout directory. Publish
// adds missing blobs (each written to a temporary file, verified, renamed)
// and points the reference at the image in index.json, replacing what it
// named before; index.json is rewritten atomically under a file lock, so
// concurrent publishers, in or across processes, do not lose entries.
// Re-publishing an image that is already there writes nothing.
//
// Blobs no longer named by any entry stay on disk; collecting them is left
// to a later garbage-collection step.
type Layout struct {
	dir string
	mu  sync.Mutex // serialises this process; the file lock serialises processes
	idx indexCache // decoded index.json (indexcache.go)
}

var (
	_ Publisher = (*Layout)(nil)
	_ Checker   = (*Layout)(nil)
)

// OpenLayout opens the layout at dir, creating it (and its oci-layout and
// index.json files) if needed.
func OpenLayout(dir string) (*Layout, error) {
	l := &Layout{dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("opening image layout %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); errors.Is(err, os.ErrNotExist) {
		if err := writeAtomic(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return nil, fmt.Errorf("opening image layout %s: %w", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, os.ErrNotExist) {
		// Under the lock, and only if still missing: another handle (another
		// process) may have created it and published into it meanwhile.
		unlock, err := l.lock()
		if err != nil {
			return nil, fmt.Errorf("opening image layout %s: %w", dir, err)
		}
		defer unlock()
		if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, os.ErrNotExist) {
			empty := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
			raw, _ := json.Marshal(empty)
			if err := writeAtomic(filepath.Join(dir, "index.json"), raw); err != nil {
				return nil, fmt.Errorf("opening image layout %s: %w", dir, err)
			}
		}
	}
	return l, nil
}

// Dir returns the layout directory (usable as "oci-layout:DIR:TAG" base).
func (l *Layout) Dir() string { return l.dir }

// Exists resolves ref in index.json: by name for tags, by presence for digests.
func (l *Layout) Exists(ctx context.Context, ref name.Reference) (v1.Hash, bool, error) {
	idx, err := l.readIndex()
	if err != nil {
		return v1.Hash{}, false, fmt.Errorf("looking up %s in %s: %w", ref, l.dir, err)
	}
	d, ok := find(idx, ref)
	return d.Digest, ok, nil
}

// Image returns the image ref names in the layout.
func (l *Layout) Image(ref name.Reference) (v1.Image, error) {
	idx, err := l.readIndex()
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", ref, l.dir, err)
	}
	d, ok := find(idx, ref)
	if !ok {
		return nil, fmt.Errorf("reading %s from %s: no such image", ref, l.dir)
	}
	p, err := layout.FromPath(l.dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", ref, l.dir, err)
	}
	img, err := p.Image(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", ref, l.dir, err)
	}
	return img, nil
}

func find(idx *v1.IndexManifest, ref name.Reference) (v1.Descriptor, bool) {
	if dref, ok := ref.(name.Digest); ok {
		for _, d := range idx.Manifests {
			if d.Digest.String() == dref.DigestStr() {
				return d, true
			}
		}
		return v1.Descriptor{}, false
	}
	for _, d := range idx.Manifests {
		if d.Annotations[RefNameAnnotation] == ref.Name() {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// Publish stores img under ref (see Layout).
func (l *Layout) Publish(ctx context.Context, ref name.Reference, img v1.Image) (name.Digest, error) {
	fail := func(step string, err error) (name.Digest, error) {
		return name.Digest{}, fmt.Errorf("publishing %s to %s: %s: %w", ref, l.dir, step, err)
	}
	want, err := img.ConfigName()
	if err != nil {
		return fail("reading the image config", err)
	}
	// Fast path without the lock: already there?
	if idx, err := l.readIndex(); err == nil {
		if d, ok := find(idx, ref); ok && l.configOf(d.Digest) == want {
			return ref.Context().Digest(d.Digest.String()), nil
		}
	}

	// Blobs first, outside the lock: content-addressed and written by rename.
	if err := l.writeBlobs(ctx, img); err != nil {
		return fail("writing blobs", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fail("reading the image digest", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return fail("reading the image media type", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return fail("reading the manifest", err)
	}
	desc := v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: digest}
	if _, isTag := ref.(name.Tag); isTag {
		desc.Annotations = map[string]string{RefNameAnnotation: ref.Name()}
	}

	unlock, err := l.lock()
	if err != nil {
		return fail("locking index.json", err)
	}
	defer unlock()
	idx, err := l.readIndex()
	if err != nil {
		return fail("reading index.json", err)
	}
	if d, ok := find(idx, ref); ok && d.Digest == digest {
		return ref.Context().Digest(digest.String()), nil
	}
	kept := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if desc.Annotations != nil && d.Annotations[RefNameAnnotation] == ref.Name() {
			continue // replaced
		}
		if desc.Annotations == nil && d.Digest == digest {
			return ref.Context().Digest(digest.String()), nil // digest ref, already listed
		}
		kept = append(kept, d)
	}
	idx.Manifests = append(kept, desc)
	rawIdx, err := json.Marshal(idx)
	if err != nil {
		return fail("encoding index.json", err)
	}
	err = writeAtomic(filepath.Join(l.dir, "index.json"), rawIdx)
	l.idx.forget()
	if err != nil {
		return fail("writing index.json", err)
	}
	return ref.Context().Digest(digest.String()), nil
}

// configOf returns the config digest of a stored manifest (zero if unreadable).
func (l *Layout) configOf(manifest v1.Hash) v1.Hash {
	raw, err := os.ReadFile(l.blobPath(manifest))
	if err != nil {
		return v1.Hash{}
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}
	}
	return m.Config.Digest
}

func (l *Layout) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(l.dir, "index.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return l.idx.read(f)
}

func (l *Layout) blobPath(h v1.Hash) string {
	return filepath.Join(l.dir, "blobs", h.Algorithm, h.Hex)
}

func (l *Layout) writeBlobs(ctx context.Context, img v1.Image) error {
	blobs, err := blobsOf(img)
	if err != nil {
		return err
	}
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.writeBlob(b.digest, b.size, b.layer.Compressed); err != nil {
			return fmt.Errorf("%s %s: %w", b.what, b.digest, err)
		}
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	return l.writeBlob(d, int64(len(raw)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	})
}

// writeBlob stores a blob unless a file of the right size is there already;
// the content is verified against the digest before it takes its name.
func (l *Layout) writeBlob(h v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	final := l.blobPath(h)
	if fi, err := os.Stat(final); err == nil && fi.Size() == size {
		return nil
	}
	if h.Algorithm != "sha256" {
		return fmt.Errorf("unsupported digest algorithm %s", h.Algorithm)
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(final), ".tmp-"+h.Hex+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	sha := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sha), rc)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(sha.Sum(nil)); got != h.Hex || n != size {
		return fmt.Errorf("content is sha256:%s (%d bytes), want %s (%d bytes)", got, n, h, size)
	}
	return os.Rename(tmp.Name(), final)
}

// writeAtomic replaces path with data (0644: the layout is read by docker pull's server).
func writeAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644)
}

// lock takes the in-process mutex and an exclusive lock on DIR/.lock.
func (l *Layout) lock() (func(), error) {
	l.mu.Lock()
	unlockFile, err := lockFile(filepath.Join(l.dir, ".lock"))
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	return func() { unlockFile(); l.mu.Unlock() }, nil
}
