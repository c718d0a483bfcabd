package compose

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// manifestVersion changes whenever the manifest layout or composition semantics do;
// an older manifest forces a full, exact re-compose.
const manifestVersion = 1

// manifest records what the last compose wrote for a store, so the next one can
// prove a file unchanged from its stat alone and rewrite only what differs.
type manifest struct {
	Version int
	Files   map[string]outEntry // by path relative to <out>/<store>
}

// outEntry is one written entry: its content identity and the stat it had when written.
type outEntry struct {
	Kind Kind
	Mode fs.FileMode
	Hash string
	Link string
	Stat StatKey
}

func (c *Composer) manifestPath(store string) string {
	return filepath.Join(c.stateDir(), "manifest", store+".gob")
}

func (c *Composer) loadManifest(store string) *manifest {
	f, err := os.Open(c.manifestPath(store))
	if err != nil {
		return nil
	}
	defer f.Close()
	var m manifest
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&m); err != nil || m.Version != manifestVersion {
		return nil
	}
	return &m
}

func (c *Composer) saveManifest(store string, m *manifest) error {
	return writeGobAtomic(c.manifestPath(store), m)
}

// writeGobAtomic writes v to p through a temp file and a rename.
func writeGobAtomic(p string, v any) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp-" + randomSuffix()
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	err = gob.NewEncoder(bw).Encode(v)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

type hashFile struct {
	Version int
	Hashes  map[string]hashEntry
}

func (c *Composer) loadHashes() {
	f, err := os.Open(filepath.Join(c.stateDir(), "hashes.gob"))
	if err != nil {
		return
	}
	defer f.Close()
	var h hashFile
	if gob.NewDecoder(bufio.NewReader(f)).Decode(&h) != nil || h.Version != manifestVersion {
		return
	}
	c.src.mu.Lock()
	for k, v := range h.Hashes {
		if _, ok := c.src.hashes[k]; !ok {
			c.src.hashes[k] = v
		}
	}
	c.src.mu.Unlock()
}

func (c *Composer) saveHashes() error {
	c.src.mu.Lock()
	defer c.src.mu.Unlock()
	if !c.src.dirty {
		return nil
	}
	if err := writeGobAtomic(filepath.Join(c.stateDir(), "hashes.gob"), hashFile{Version: manifestVersion, Hashes: c.src.hashes}); err != nil {
		return err
	}
	c.src.dirty = false
	return nil
}

// scanned is what is on disk at one path of a store's out tree.
type scanned struct {
	Kind Kind
	Mode fs.FileMode
	Stat StatKey
}

// scanTree lstats everything below dir; nil (no error) when dir does not exist.
// Directories are read in parallel: on a warm cache this is bound by syscalls, not disk.
func scanTree(dir string, sizeHint int) (map[string]scanned, error) {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	out := make(map[string]scanned, sizeHint)
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
		sem   = make(chan struct{}, 8)
	)
	var walk func(rel string)
	walk = func(rel string) {
		defer wg.Done()
		sem <- struct{}{}
		d := filepath.Join(dir, filepath.FromSlash(rel))
		f, err := os.Open(d)
		var names []string
		if err == nil {
			names, err = f.Readdirnames(-1)
		}
		type item struct {
			rel string
			s   scanned
		}
		local := make([]item, 0, len(names))
		var subdirs []string
		if err == nil {
			fd := int(f.Fd())
			for _, name := range names {
				r := name
				if rel != "" {
					r = rel + "/" + name
				}
				st, k, mode, lerr := statAt(fd, d, name)
				if lerr != nil {
					err = lerr
					break
				}
				local = append(local, item{r, scanned{Kind: k, Mode: mode, Stat: st}})
				if k == Dir {
					subdirs = append(subdirs, r)
				}
			}
		}
		if f != nil {
			f.Close()
		}
		<-sem
		mu.Lock()
		if err != nil && first == nil {
			first = err
		}
		for _, it := range local {
			out[it.rel] = it.s
		}
		mu.Unlock()
		for _, s := range subdirs {
			wg.Add(1)
			go walk(s)
		}
	}
	wg.Add(1)
	walk("")
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}
