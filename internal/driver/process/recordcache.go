package process

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"sync"
	"syscall"
	"time"
)

// recordCache keeps decoded instance records by file identity (inode, size,
// modification time). List runs on every deploy (old instances, prune) and
// every supervisor round, over every record of the host: with 60 instances
// that was 60 files read and JSON-decoded each time, a quarter of serve's
// CPU in a 30-store rollout. Records are replaced by rename (writeAtomic),
// so any write, from this process or another, changes the identity and the
// next read decodes the new file; only the stat is paid for an unchanged one.
type recordCache struct {
	mu sync.Mutex
	m  map[string]cachedRecord
}

type cachedRecord struct {
	ino, size uint64
	mod       time.Time
	rec       record
}

// read returns the record stored at path, decoding it only when the file
// changed. A hit costs one stat. The file is read after the stat, so what is
// cached under an identity is never older than that identity: a file
// replaced in between is read again on the next call.
func (c *recordCache) read(path string) (*record, error) {
	fi, err := os.Stat(path)
	if err != nil {
		c.forget(path)
		return nil, err
	}
	key := cachedRecord{size: uint64(fi.Size()), mod: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.ino = uint64(st.Ino)
	}
	c.mu.Lock()
	hit, ok := c.m[path]
	c.mu.Unlock()
	if ok && hit.ino == key.ino && hit.size == key.size && hit.mod.Equal(key.mod) {
		r := hit.rec
		r.Labels = maps.Clone(hit.rec.Labels) // callers may change their copy
		return &r, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		c.forget(path)
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	key.rec = r
	key.rec.Labels = maps.Clone(r.Labels)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedRecord{}
	}
	c.m[path] = key
	c.mu.Unlock()
	return &r, nil
}

func (c *recordCache) forget(path string) {
	c.mu.Lock()
	delete(c.m, path)
	c.mu.Unlock()
}

// keepOnly drops the entries of records that are gone.
func (c *recordCache) keepOnly(paths map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.m {
		if !paths[p] {
			delete(c.m, p)
		}
	}
}
