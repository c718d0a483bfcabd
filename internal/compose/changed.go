package compose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"sort"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/gitfs"
)

// Reason says why a store's composed content changed.
type Reason string

// Reasons, from the nearest layer to the farthest.
const (
	StoreChanged    Reason = "STORE_CHANGED"    // the store's own files (or it is new)
	AncestorChanged Reason = "ANCESTOR_CHANGED" // a parent store's files
	BaseAppChanged  Reason = "BASE_APP_CHANGED" // a base app's files
	ConfigChanged   Reason = "CONFIG_CHANGED"   // the store's or one of its apps' configuration
)

// ChangedFile is one path whose composed content differs.
type ChangedFile struct {
	App    string `json:"app"`
	Path   string `json:"path"`
	Reason Reason `json:"reason"`
	// Layer is the directory whose change caused it.
	Layer string `json:"layer,omitempty"`
}

// Change describes a store whose composed content differs from a past commit.
type Change struct {
	Store   string        `json:"store"`
	Reasons []Reason      `json:"reasons"`
	New     bool          `json:"new,omitempty"`
	Files   []ChangedFile `json:"files"`
}

// gitSource plans composition from a commit.
type gitSource struct{ t *gitfs.Tree }

func (g gitSource) List(dir string, skip map[string]bool) ([]Node, error) {
	e, ok := g.t.Entry(dir)
	if !ok || !e.IsDir() {
		return nil, nil
	}
	var out []Node
	var walk func(rel string) error
	walk = func(rel string) error {
		full := path.Join(dir, rel)
		names, _ := g.t.Children(full)
		for _, name := range names {
			if skip[name] {
				continue
			}
			r := path.Join(rel, name)
			e, _ := g.t.Entry(path.Join(dir, r))
			n := Node{Rel: r, Src: path.Join(dir, r), Hash: e.Hash}
			switch {
			case e.IsDir(), e.Mode == "160000":
				n.Kind, n.Mode, n.Hash = Dir, 0o755, ""
				out = append(out, n)
				if err := walk(r); err != nil {
					return err
				}
			case e.IsSymlink():
				b, err := g.t.Blob(e.Hash)
				if err != nil {
					return err
				}
				n.Kind, n.Link, n.Mode = Symlink, string(b), 0o777
				out = append(out, n)
			case e.IsFile():
				n.Kind, n.Mode = File, 0o644
				if e.Mode == "100755" {
					n.Mode = 0o755
				}
				out = append(out, n)
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	sortNodes(out)
	return out, nil
}

func (g gitSource) ReadFile(p string) ([]byte, error) { return g.t.ReadFile(p) }

func (g gitSource) Hash(n *Node) (string, error) {
	if n.Hash == "" {
		return "", fmt.Errorf("%s: no object id", n.Src)
	}
	return n.Hash, nil
}

var _ Source = gitSource{}

// Changed compares the composed content of every deployable store of cfg (the
// working tree) with the same stores at commit ref, inheritance-aware: a base app
// change that a store overrides does not change that store.
func (c *Composer) Changed(ctx context.Context, ref string) ([]Change, error) {
	tree, err := gitfs.Open(ctx, c.cfg.Root, ref)
	if err != nil {
		return nil, err
	}
	ids := c.cfg.DeployableIDs()
	now, _, err := c.PlanAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	if err := c.saveHashes(); err != nil {
		return nil, err
	}
	old, err := configAt(tree, c.cfg, ref)
	if err != nil {
		return nil, err
	}
	src := &listCache{Source: gitSource{tree}, m: map[string]*listing{}}
	var out []Change
	for i, id := range ids {
		ch := Change{Store: id}
		var before *StorePlan
		if old != nil && old.Store(id) != nil && old.Store(id).Deployable() {
			before, err = Plan(old, src, id)
			if err != nil {
				return nil, fmt.Errorf("planning %s at %s: %w", id, ref, err)
			}
		}
		if before == nil {
			ch.New = true
			ch.Reasons = []Reason{StoreChanged}
			out = append(out, ch)
			continue
		}
		changed, err := compareStore(&ch, old, c.cfg, c.list, src, before, now[i])
		if err != nil {
			return nil, err
		}
		if changed {
			out = append(out, ch)
		}
	}
	return out, nil
}

// configAt loads the config at ref from fsys, as cfg names it; nil when ref
// has none (every store is new there).
func configAt(fsys fs.FS, cfg *config.Config, ref string) (*config.Config, error) {
	old, err := config.LoadFS(fsys, cfg.Root, cfg.File)
	var ve *config.ValidationError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.As(err, &ve):
		return nil, fmt.Errorf("the config at %s is invalid, so nothing can be compared: %w", ref, err)
	case err != nil:
		return nil, fmt.Errorf("loading the config at %s: %w", ref, err)
	}
	return old, nil
}

// compareStore fills ch with the files and reasons that make a store's plan
// now (from nowSrc) differ from before (from oldSrc), and reports whether any do.
func compareStore(ch *Change, cfgOld, cfgNow *config.Config, nowSrc, oldSrc Source, before, after *StorePlan) (bool, error) {
	reasons := map[Reason]bool{}
	if configDiffers(cfgOld, cfgNow, ch.Store) {
		reasons[ConfigChanged] = true
	}
	files, err := diffStore(nowSrc, oldSrc, before, after)
	if err != nil {
		return false, err
	}
	for _, f := range files {
		reasons[f.Reason] = true
	}
	if len(reasons) == 0 {
		return false, nil
	}
	ch.Files = files
	for _, r := range []Reason{StoreChanged, AncestorChanged, BaseAppChanged, ConfigChanged} {
		if reasons[r] {
			ch.Reasons = append(ch.Reasons, r)
		}
	}
	return true, nil
}

// configDiffers compares what the config says about a store and its apps at two commits.
func configDiffers(a, b *config.Config, id string) bool {
	type view struct {
		Store     config.Store
		Framework string
		Env       map[string]string
		Apps      []config.App
		Chain     []string
	}
	mk := func(c *config.Config) view {
		s := *c.Store(id)
		s.Pos, s.Children, s.Configured = config.Pos{}, nil, false
		v := view{Store: s, Framework: c.Framework(id), Env: c.Env(id)}
		for _, p := range c.Chain(id) {
			v.Chain = append(v.Chain, p.ID)
		}
		for _, ap := range c.AppsFor(id) {
			x := *ap
			x.Pos = config.Pos{}
			v.Apps = append(v.Apps, x)
		}
		return v
	}
	ja, _ := json.Marshal(mk(a))
	jb, _ := json.Marshal(mk(b))
	return string(ja) != string(jb)
}

type fileKey struct {
	kind Kind
	exec bool
	hash string
	link string
}

func keyOf(n Node) fileKey {
	k := fileKey{kind: n.Kind}
	switch n.Kind {
	case File:
		k.exec, k.hash = isExec(n.Mode), n.Hash
	case Symlink:
		k.link = n.Link
	}
	return k
}

// diffStore lists composed paths that differ and attributes each to the nearest
// layer whose input differs at that path.
func diffStore(nowSrc, oldSrc Source, before, after *StorePlan) ([]ChangedFile, error) {
	var out []ChangedFile
	oldApps := map[string]*AppPlan{}
	for _, ap := range before.Apps {
		oldApps[ap.App.ID] = ap
	}
	for _, ap := range after.Apps {
		op := oldApps[ap.App.ID]
		if op == nil {
			out = append(out, ChangedFile{App: ap.App.ID, Path: ".", Reason: ConfigChanged})
			continue
		}
		oldM := entryMap(op)
		newM := entryMap(ap)
		var paths []string
		for p, e := range newM {
			if o, ok := oldM[p]; !ok || keyOf(o.Node) != keyOf(e.Node) {
				paths = append(paths, p)
			}
		}
		for p := range oldM {
			if _, ok := newM[p]; !ok {
				paths = append(paths, p)
			}
		}
		sort.Strings(paths)
		if len(paths) == 0 {
			continue
		}
		if !reflect.DeepEqual(op.Layers, ap.Layers) {
			for _, p := range paths {
				out = append(out, ChangedFile{App: ap.App.ID, Path: p, Reason: StoreChanged})
			}
			continue
		}
		for _, p := range paths {
			cf := ChangedFile{App: ap.App.ID, Path: p, Reason: StoreChanged}
			for li := len(ap.Layers) - 1; li >= 0; li-- {
				l := ap.Layers[li]
				differs, err := layerDiffers(nowSrc, oldSrc, l.Dir, p)
				if err != nil {
					return nil, err
				}
				if differs {
					cf.Layer = l.Dir
					switch l.Kind {
					case BaseLayer:
						cf.Reason = BaseAppChanged
					case AncestorLayer:
						cf.Reason = AncestorChanged
					}
					break
				}
			}
			out = append(out, cf)
		}
	}
	return out, nil
}

func entryMap(ap *AppPlan) map[string]Entry {
	m := make(map[string]Entry, len(ap.Entries))
	for _, e := range ap.Entries {
		if e.Node.Kind != Dir {
			m[e.Path] = e
		}
	}
	return m
}

// layerDiffers reports whether layer dir's input at path p (the file itself, or the
// layer's delete list) differs between the two sources.
func layerDiffers(nowSrc, oldSrc Source, dir, p string) (bool, error) {
	find := func(s Source, rel string) (Node, bool, error) {
		nodes, err := s.List(dir, nil)
		if err != nil {
			return Node{}, false, err
		}
		i := sort.Search(len(nodes), func(i int) bool { return nodes[i].Rel >= rel })
		if i < len(nodes) && nodes[i].Rel == rel {
			n := nodes[i]
			if n.Kind == File && n.Hash == "" {
				h, err := s.Hash(&n)
				if err != nil {
					return Node{}, false, err
				}
				n.Hash = h
			}
			return n, true, nil
		}
		return Node{}, false, nil
	}
	for _, rel := range []string{p, config.DeleteFile} {
		a, okA, err := find(nowSrc, rel)
		if err != nil {
			return false, err
		}
		b, okB, err := find(oldSrc, rel)
		if err != nil {
			return false, err
		}
		if okA != okB || (okA && keyOf(a) != keyOf(b)) {
			return true, nil
		}
	}
	return false, nil
}
