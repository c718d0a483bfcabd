package dockerbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	gzip "github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"
)

// layerCacheAge is how long a compressed layer nobody used stays in the cache.
const layerCacheAge = 7 * 24 * time.Hour

// Compress returns img (exported from the engine, layers uncompressed) with
// each layer gzipped once, in parallel, into dir, keyed by its diff ID: a
// later build reuses the blob of every layer it shares (the base, the
// unchanged steps) without compressing it again, and the registry check
// then needs no compression at all. Publishing reads the files as they are.
func Compress(ctx context.Context, img v1.Image, dir string, jobs int) (v1.Image, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	out := &gzImage{rawConfig: raw, layers: make([]*gzLayer, len(layers))}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, jobs))
	for i, l := range layers {
		g.Go(func() error {
			gl, err := cachedLayer(ctx, l, dir)
			if err != nil {
				return fmt.Errorf("compressing layer %d: %w", i+1, err)
			}
			out.layers[i] = gl
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	pruneLayers(dir, out.layers)
	return out, nil
}

// gzLayer is a gzipped layer in a file of the cache.
type gzLayer struct {
	path   string
	Dig    v1.Hash `json:"digest"`
	Diff   v1.Hash `json:"diffID"`
	Bytes  int64   `json:"size"`
	mtType types.MediaType
}

func cachedLayer(ctx context.Context, l v1.Layer, dir string) (*gzLayer, error) {
	diff, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, diff.Hex)
	gl := &gzLayer{path: base + ".gz", mtType: types.DockerLayer}
	if b, err := os.ReadFile(base + ".json"); err == nil && json.Unmarshal(b, gl) == nil && gl.Diff == diff {
		if st, err := os.Stat(gl.path); err == nil && st.Size() == gl.Bytes {
			now := time.Now()
			os.Chtimes(gl.path, now, now)
			return gl, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".layer-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	cw := &counter{}
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(tmp, h, cw), gzip.BestSpeed)
	zw.Header = gzip.Header{ModTime: time.Unix(0, 0), OS: 255} // no timestamp: same input, same blob
	if _, err := io.Copy(zw, rc); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	gl.Dig, gl.Diff, gl.Bytes = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}, diff, cw.n
	if err := os.Rename(tmp.Name(), gl.path); err != nil {
		return nil, err
	}
	meta, _ := json.Marshal(gl)
	if err := os.WriteFile(base+".json", meta, 0o600); err != nil {
		return nil, err
	}
	return gl, nil
}

// pruneLayers removes the cache's layers unused for layerCacheAge, keeping those of the image at hand.
func pruneLayers(dir string, keep []*gzLayer) {
	in := map[string]bool{}
	for _, l := range keep {
		in[l.path] = true
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.gz"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && !in[f] && time.Since(st.ModTime()) > layerCacheAge {
			os.Remove(f)
			os.Remove(f[:len(f)-len(".gz")] + ".json")
		}
	}
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func (l *gzLayer) Digest() (v1.Hash, error)            { return l.Dig, nil }
func (l *gzLayer) DiffID() (v1.Hash, error)            { return l.Diff, nil }
func (l *gzLayer) Size() (int64, error)                { return l.Bytes, nil }
func (l *gzLayer) MediaType() (types.MediaType, error) { return l.mtType, nil }
func (l *gzLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

func (l *gzLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &readCloser{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// gzImage is a Docker v2 image of gzLayers and the engine's config as it is.
type gzImage struct {
	rawConfig []byte
	layers    []*gzLayer

	once     sync.Once
	manifest []byte
}

var _ v1.Image = (*gzImage)(nil)

func (m *gzImage) MediaType() (types.MediaType, error) { return types.DockerManifestSchema2, nil }
func (m *gzImage) RawConfigFile() ([]byte, error)      { return m.rawConfig, nil }
func (m *gzImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(m.rawConfig))
}

func (m *gzImage) ConfigName() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(m.rawConfig))
	return h, err
}

func (m *gzImage) Layers() ([]v1.Layer, error) {
	out := make([]v1.Layer, len(m.layers))
	for i, l := range m.layers {
		out[i] = l
	}
	return out, nil
}

func (m *gzImage) RawManifest() ([]byte, error) {
	m.once.Do(func() {
		cfg, _ := m.ConfigName()
		man := v1.Manifest{SchemaVersion: 2, MediaType: types.DockerManifestSchema2,
			Config: v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(m.rawConfig)), Digest: cfg}}
		for _, l := range m.layers {
			man.Layers = append(man.Layers, v1.Descriptor{MediaType: l.mtType, Size: l.Bytes, Digest: l.Dig})
		}
		m.manifest, _ = json.Marshal(man)
	})
	return m.manifest, nil
}

func (m *gzImage) Manifest() (*v1.Manifest, error) {
	raw, _ := m.RawManifest()
	return v1.ParseManifest(bytes.NewReader(raw))
}

func (m *gzImage) Digest() (v1.Hash, error) {
	raw, _ := m.RawManifest()
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	return h, err
}

func (m *gzImage) Size() (int64, error) {
	raw, _ := m.RawManifest()
	return int64(len(raw)), nil
}

func (m *gzImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if cfg, _ := m.ConfigName(); cfg == h {
		return static.NewLayer(m.rawConfig, types.DockerConfigJSON), nil
	}
	for _, l := range m.layers {
		if l.Dig == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no layer %s", h)
}

func (m *gzImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for _, l := range m.layers {
		if l.Diff == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no layer with diff ID %s", h)
}
