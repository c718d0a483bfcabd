package source

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"

	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/gitfs"
)

// configNames are looked for at the root of a commit, in config.Find's order.
var configNames = []string{"slipway.yaml", "slipway.yml", "slipway.json", "alokai.config.json"}

// Config loads and validates the config of a commit from the cache, without
// a working tree. Root is where Snapshot puts that commit.
func (r *Repo) Config(ctx context.Context, commit string) (*config.Config, *gitfs.Tree, error) {
	if !IsSHA(commit) {
		return r.loadConfig(ctx, commit)
	}
	e := r.cache.entry(r.cache.configs, commit)
	e.once.Do(func() { e.cfg, e.tree, e.err = r.loadConfig(context.WithoutCancel(ctx), commit) })
	if e.err != nil {
		r.cache.mu.Lock()
		delete(r.cache.configs, commit)
		r.cache.mu.Unlock()
	}
	return e.cfg, e.tree, e.err
}

func (r *Repo) loadConfig(ctx context.Context, commit string) (*config.Config, *gitfs.Tree, error) {
	t, err := r.Tree(ctx, commit)
	if err != nil {
		return nil, nil, err
	}
	root := filepath.Join(r.o.CacheDir, "trees", t.Commit)
	for _, n := range configNames {
		if st, err := fs.Stat(t, n); err == nil && !st.IsDir() {
			cfg, err := config.LoadFS(t, root, n)
			if err != nil {
				return nil, nil, fmt.Errorf("the config at %s: %w", short(t.Commit), err)
			}
			return cfg, t, nil
		}
	}
	return nil, nil, fmt.Errorf("commit %s has no slipway.yaml, slipway.json or alokai.config.json at its root: %w", short(t.Commit), config.ErrNotFound)
}

// StoreChange is what a commit means for one store.
type StoreChange struct {
	Store string `json:"store"`
	// Changed is false when the store composes to the same content as at Since.
	Changed bool             `json:"changed"`
	Reasons []compose.Reason `json:"reasons,omitempty"`
	// Since is the commit compared against: the store's live commit ("" when it has none).
	Since string `json:"since,omitempty"`
	// Files are the changed composed paths (at most MaxFiles).
	Files []compose.ChangedFile `json:"files,omitempty"`
	// Note says why a store counts as changed without a comparison.
	Note string `json:"note,omitempty"`
}

// MaxFiles bounds the changed paths listed per store.
const MaxFiles = 20

// Changes says, for each deployable store of commit (or only stores, when
// given), whether its composed content differs from its live commit (since
// maps a store to it; "" or absent: never deployed, so changed).
func (r *Repo) Changes(ctx context.Context, commit string, since map[string]string, stores []string) (*config.Config, []StoreChange, error) {
	cfg, now, err := r.Config(ctx, commit)
	if err != nil {
		return nil, nil, err
	}
	ids := stores
	if ids == nil {
		ids = cfg.DeployableIDs()
	}
	for _, id := range ids {
		if st := cfg.Store(id); st == nil || !st.Deployable() {
			return nil, nil, fmt.Errorf("store %q is not a deployable store at %s", id, short(now.Commit))
		}
	}
	out := make(map[string]StoreChange, len(ids))
	bySince := map[string][]string{}
	for _, id := range ids {
		s := since[id]
		switch {
		case s == "":
			out[id] = StoreChange{Store: id, Changed: true, Reasons: []compose.Reason{compose.StoreChanged}, Note: "never deployed"}
		case s == now.Commit:
			out[id] = StoreChange{Store: id, Since: s}
		case !r.Has(ctx, s):
			out[id] = StoreChange{Store: id, Since: s, Changed: true, Reasons: []compose.Reason{compose.StoreChanged}, Note: "the live commit is not in the repository"}
		default:
			bySince[s] = append(bySince[s], id)
		}
	}
	for s, group := range bySince {
		if err := r.compare(ctx, cfg, now, s, group, out); err != nil {
			return nil, nil, err
		}
	}
	list := make([]StoreChange, 0, len(out))
	for _, sc := range out {
		list = append(list, sc)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Store < list[j].Store })
	return cfg, list, nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// compare fills out for the stores of group, compared between since and now;
// results are kept per (commit, since, store), and one comparison runs at a time
// per commit so that a burst of deliveries computes it once.
func (r *Repo) compare(ctx context.Context, cfg *config.Config, now *gitfs.Tree, since string, group []string, out map[string]StoreChange) error {
	mu := r.snapLock("compare:" + now.Commit)
	mu.Lock()
	defer mu.Unlock()
	var todo []string
	for _, id := range group {
		if sc, ok := r.cache.change(now.Commit + "|" + since + "|" + id); ok {
			out[id] = sc
			continue
		}
		todo = append(todo, id)
	}
	if len(todo) == 0 {
		return nil
	}
	old, err := r.Tree(ctx, since)
	if err != nil {
		return err
	}
	chs, err := compose.ChangedTrees(ctx, cfg, old, now, short(since), todo)
	if err != nil {
		return err
	}
	res := map[string]StoreChange{}
	for _, id := range todo {
		res[id] = StoreChange{Store: id, Since: since}
	}
	for _, ch := range chs {
		sc := StoreChange{Store: ch.Store, Since: since, Changed: true, Reasons: ch.Reasons, Files: ch.Files}
		if len(sc.Files) > MaxFiles {
			sc.Files = sc.Files[:MaxFiles]
		}
		res[ch.Store] = sc
	}
	for id, sc := range res {
		r.cache.keepChange(now.Commit+"|"+since+"|"+id, sc)
		out[id] = sc
	}
	return nil
}
