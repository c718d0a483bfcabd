package source

import (
	"context"
	"sync"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/gitfs"
)

// A commit never changes, so what is read from one is kept: a burst of
// webhooks for one push (or a console page per second) reads git once.
const maxCached = 32

type commitData struct {
	once sync.Once
	cfg  *config.Config
	tree *gitfs.Tree
	err  error
}

type cache struct {
	mu      sync.Mutex
	has     map[string]bool
	configs map[string]*commitData
	trees   map[string]*commitData
	changes map[string]StoreChange
}

func (c *cache) init() {
	if c.has == nil {
		c.has, c.configs, c.trees, c.changes = map[string]bool{}, map[string]*commitData{}, map[string]*commitData{}, map[string]StoreChange{}
	}
}

// entry returns the slot for key in m, making room when the map is full.
func (c *cache) entry(m map[string]*commitData, key string) *commitData {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if e := m[key]; e != nil {
		return e
	}
	if len(m) >= maxCached {
		for k := range m {
			delete(m, k)
			break
		}
	}
	e := &commitData{}
	m[key] = e
	return e
}

func (c *cache) known(commit string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.has[commit]
}

func (c *cache) remember(commit string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if len(c.has) > 4096 {
		clear(c.has)
	}
	c.has[commit] = true
}

func (c *cache) change(key string) (StoreChange, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc, ok := c.changes[key]
	return sc, ok
}

func (c *cache) keepChange(key string, sc StoreChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if len(c.changes) > 4096 {
		clear(c.changes)
	}
	c.changes[key] = sc
}

// tree opens a commit's tree once.
func (r *Repo) cachedTree(ctx context.Context, commit string) (*gitfs.Tree, error) {
	if !IsSHA(commit) {
		return gitfs.OpenBatch(ctx, r.batch, commit)
	}
	e := r.cache.entry(r.cache.trees, commit)
	e.once.Do(func() { e.tree, e.err = gitfs.OpenBatch(context.WithoutCancel(ctx), r.batch, commit) })
	if e.err != nil {
		r.cache.mu.Lock()
		delete(r.cache.trees, commit)
		r.cache.mu.Unlock()
	}
	return e.tree, e.err
}
