package registry

import (
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// indexCache keeps the layout's decoded index.json by file identity (inode,
// size, modification time). Serve looks images up in it for every store it
// plans and every instance it starts; after a few fleet deploys the index
// lists hundreds of images, and decoding it each time was a tenth of serve's
// CPU in a 30-store rollout. index.json is replaced by rename, so a publish
// from any process changes its identity; this handle's own publishes drop
// the cached copy outright (timestamps are coarse).
type indexCache struct {
	mu  sync.Mutex
	ino uint64
	sz  int64
	mod time.Time
	idx *v1.IndexManifest
}

// read returns a copy of the index in f (whose name is index.json), decoding
// it only when the file changed. The copy's Manifests may be changed freely.
func (c *indexCache) read(f *os.File) (*v1.IndexManifest, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	c.mu.Lock()
	if c.idx != nil && c.ino == ino && c.sz == fi.Size() && c.mod.Equal(fi.ModTime()) {
		cp := copyIndex(c.idx)
		c.mu.Unlock()
		return cp, nil
	}
	c.mu.Unlock()
	idx, err := v1.ParseIndexManifest(f)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.ino, c.sz, c.mod, c.idx = ino, fi.Size(), fi.ModTime(), copyIndex(idx)
	c.mu.Unlock()
	return idx, nil
}

// forget drops the cached index (after this handle rewrote it).
func (c *indexCache) forget() {
	c.mu.Lock()
	c.idx = nil
	c.mu.Unlock()
}

// copyIndex copies the index and its list of descriptors (the descriptors'
// annotation maps are shared: nothing changes them in place).
func copyIndex(idx *v1.IndexManifest) *v1.IndexManifest {
	cp := *idx
	cp.Manifests = slices.Clone(idx.Manifests)
	return &cp
}
